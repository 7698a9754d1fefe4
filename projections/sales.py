"""Daily sales per product (``sales_daily``): a read model caught up from the log, not inline.

For each owner, UTC day of ``sold_at`` and product: units sold, revenue (the sum of quantity x
unit price, exact, as a decimal string) and the number of sales. It answers "what sold, when,
for how much" without a scan of the log, for reports (``GET /v1/reports/sales``).

Why it follows the log instead of being written by push: no push decision reads it (stock checks
read the inventory row), so it need not be current inside the push's transaction; keeping it off
the push path keeps pushes as fast as they were; and a report that trails the log by a moment is
fine. A sale dated long ago (a device that was offline for a month) lands on its own day, which
a running total on the product row could not do. Deleting a product keeps its sales: they
happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple
from uuid import UUID

import msgspec

from event_store import RecordedEvent, Sql, as_uuid, chunks
from schemas.events import PRODUCT_SALE_RECORDED
from schemas.values import Money

from .rows import DECIMAL

NAME: Final = "sales_daily"
DEFINITION: Final = 1
"""Raise it when the same events would give other rows: the table is then rebuilt."""


class Day(NamedTuple):
    owner: UUID
    day: str
    """YYYY-MM-DD, the UTC date of ``sold_at``."""
    product_id: UUID


# A NamedTuple and the context's own methods rather than a frozen dataclass and a local context
# entered per sale: every server process catches up on every sale pushed, while pushes run.
class Totals(NamedTuple):
    units: int = 0
    revenue: Decimal = Decimal(0)
    sales: int = 0

    def plus(self, other: Totals) -> Totals:
        return Totals(
            self.units + other.units,
            DECIMAL.add(self.revenue, other.revenue),
            self.sales + other.sales,
        )


def sale_of(event: RecordedEvent) -> tuple[Day, Totals] | None:
    """What one event adds to the report (None for every event but a sale)."""
    if event.type != PRODUCT_SALE_RECORDED:
        return None
    data = event.data
    sold_at = datetime.fromisoformat(data["sold_at"]).astimezone(UTC)
    quantity = int(data["quantity"])
    revenue = DECIMAL.multiply(quantity, Decimal(data["unit_price"]))
    return Day(event.owner, sold_at.date().isoformat(), event.stream.id), Totals(
        quantity, revenue, 1
    )


def totals_of(events: Iterable[RecordedEvent]) -> dict[Day, Totals]:
    """The sums a batch of events adds, per day and product."""
    sums: dict[Day, Totals] = {}
    for event in events:
        sale = sale_of(event)
        if sale is not None:
            day, totals = sale
            sums[day] = sums.get(day, Totals()).plus(totals)
    return sums


# -- the table ---------------------------------------------------------------------------------


class SalesDaily:
    """The catch-up projection the runner drives (``runner.CatchUp``)."""

    name = NAME
    definition = DEFINITION
    types = frozenset({PRODUCT_SALE_RECORDED})

    def reset(self, sql: Sql) -> None:
        sql.execute("DELETE FROM sales_daily")

    def apply(self, sql: Sql, events: Sequence[RecordedEvent]) -> None:
        sums = totals_of(events)
        if not sums:
            return
        current = _load(sql, sums)
        rows = []
        for day, added in sums.items():
            total = current.get(day, Totals()).plus(added)
            rows.append(
                (day.owner, day.day, day.product_id, total.units, _text(total.revenue),
                 total.sales)
            )  # fmt: skip
        upsert = (
            "ON CONFLICT (owner, day, product_id) DO UPDATE SET "
            "units = excluded.units, revenue = excluded.revenue, sales = excluded.sales"
        )
        if sql.backend == "postgres":
            # One JSON document parsed in C: executemany dumped every value in Python, and
            # this runs in every server process while pushes are being served.
            sql.execute(
                "INSERT INTO sales_daily (owner, day, product_id, units, revenue, sales) "
                "SELECT o, d, p, u, r, s FROM json_to_recordset(?::json) "
                f"AS x(o uuid, d text, p uuid, u bigint, r text, s integer) {upsert}",
                [_encode([_SalesRow(*row) for row in rows]).decode()],
            )
            return
        sql.executemany(
            "INSERT INTO sales_daily (owner, day, product_id, units, revenue, sales) "
            f"VALUES (?, ?, ?, ?, ?, ?) {upsert}",
            rows,
        )


class _SalesRow(msgspec.Struct):
    o: UUID
    d: str
    p: UUID
    u: int
    r: str
    s: int


class _Wanted(msgspec.Struct):
    o: UUID
    d: str
    p: UUID


_encode = msgspec.json.Encoder().encode


def _text(amount: Decimal) -> str:
    """Money's canonical form (at least two places, no more than the sum needs), which a
    revenue may exceed in size, so it is not parsed as Money."""
    return Money(amount).canonical()


def _load(sql: Sql, days: Mapping[Day, Totals]) -> dict[Day, Totals]:
    found: dict[Day, Totals] = {}
    for owner, day, product_id, units, revenue, sales in _select_days(sql, list(days)):
        found[Day(as_uuid(owner), day, as_uuid(product_id))] = Totals(
            int(units), Decimal(revenue), int(sales)
        )
    return found


_COLUMNS = "s.owner, s.day, s.product_id, s.units, s.revenue, s.sales"


def _select_days(sql: Sql, days: list[Day]) -> list[Sequence[Any]]:
    if sql.backend == "postgres":
        # One JSON parameter, so the statement's text never changes (psycopg converts a
        # statement of hundreds of placeholders in Python each time).
        return sql.fetchall(
            f"SELECT {_COLUMNS} FROM json_to_recordset(?::json) AS w(o uuid, d text, p uuid) "
            "JOIN sales_daily s ON s.owner = w.o AND s.day = w.d AND s.product_id = w.p",
            [_encode([_Wanted(*day) for day in days]).decode()],
        )
    rows: list[Sequence[Any]] = []
    for chunk in chunks(days, 300):  # SQLite caps the number of parameters
        rows += sql.fetchall(
            f"WITH w (o, d, p) AS (VALUES {','.join('(?, ?, ?)' for _ in chunk)}) "
            f"SELECT {_COLUMNS} FROM sales_daily s "
            "JOIN w ON s.owner = w.o AND s.day = w.d AND s.product_id = w.p",
            [value for day in chunk for value in day],
        )
    return rows


class DayRow(NamedTuple):
    day: str
    product_id: UUID
    sku: str | None
    units: int
    revenue: str
    sales: int


def report(
    sql: Sql, owner: UUID, start: str, end: str, product_id: UUID | None = None
) -> list[DayRow]:
    """The owner's daily sales from ``start`` to ``end`` (dates, inclusive), by day, then sku."""
    query = (
        "SELECT s.day, s.product_id, i.sku, s.units, s.revenue, s.sales FROM sales_daily s "
        "LEFT JOIN inventory i ON i.owner = s.owner AND i.id = s.product_id "
        "WHERE s.owner = ? AND s.day >= ? AND s.day <= ?"
    )
    params: list[Any] = [owner, start, end]
    if product_id is not None:
        query += " AND s.product_id = ?"
        params.append(product_id)
    rows = sql.fetchall(query + " ORDER BY s.day, i.sku, s.product_id", params)
    return [
        DayRow(day, as_uuid(pid), sku, int(units), revenue, int(sales))
        for day, pid, sku, units, revenue, sales in rows
    ]
