"""Projector of the ``shows`` read table.

Derived fields (PROTOCOL.md, "Entities and their read tables"), all money rounded half up to
cents and sent as strings:

* ``cost_count``: every live cost of the show, whatever its currency.
* ``costs_total``: the sum of the live costs *in the show's currency*.
* ``foreign_costs``: ``{currency: total}`` of the costs in any other currency. There is no
  exchange rate anywhere in the system, and inventing one would make ``net`` depend on when it
  was computed (a rebuild would not equal live). So foreign costs are shown apart and left out
  of ``costs_total`` and ``net``; a client can convert them if it has a rate it trusts.
* ``commission_total`` = fee * (mgmt_pct + booking_pct) / 100; ``wht_total`` = fee * wht_pct / 100.
* ``net`` = fee - commission_total - wht_total - costs_total, computed from the rounded figures so
  that the numbers a reader sees add up to the cent.

The show keeps, in ``hidden["costs"]``, the amount and currency of each of its live costs, keyed
by cost id: that is what lets a cost event recompute the show's totals from the two rows alone
(no query over all costs), and what tells a show's deletion which costs to cascade.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from uuid import UUID

from event_store.events import RecordedEvent
from schemas.entities import writable_fields

from . import rows
from .rows import ReadRow

ENTITY = "show"
COSTS = "costs"
DERIVED = ("costs_total", "cost_count", "foreign_costs", "commission_total", "wht_total", "net")

CostEntry = dict[str, str]
"""``{"amount": "12.50", "currency": "EUR"}``: what a show needs to know of one of its costs."""


def created(event: RecordedEvent) -> ReadRow:
    hidden = rows.with_field_versions({COSTS: {}}, writable_fields(ENTITY), event.version)
    return rows.created(event, _with_derived(event.data, {}), hidden)


def updated(row: ReadRow, event: RecordedEvent) -> ReadRow:
    hidden = rows.with_field_versions(row.hidden, event.data, event.version)
    data = _with_derived({**row.data, **event.data}, hidden[COSTS])
    return rows.changed(row, event, data, hidden, own=True)


def deleted(row: ReadRow, event: RecordedEvent) -> ReadRow:
    return rows.tombstone(row, event)


def with_cost(
    row: ReadRow, event: RecordedEvent, cost_id: UUID, entry: CostEntry | None
) -> ReadRow | None:
    """``row`` with one of its costs set (or removed, ``entry=None``) by a cost event, or None
    when that changes nothing. A deleted show is left as it was when it was deleted."""
    if row.deleted:
        return None
    costs: dict[str, CostEntry] = dict(row.hidden.get(COSTS, {}))
    key = str(cost_id)
    if costs.get(key) == entry:
        return None
    if entry is None:
        del costs[key]
    else:
        costs[key] = dict(entry)
    hidden = {**row.hidden, COSTS: costs}
    return rows.changed(row, event, _with_derived(row.data, costs), hidden, own=False)


def live_cost_ids(row: ReadRow) -> list[UUID]:
    """The live costs of a show, in a stable order (for the cascade of its deletion)."""
    return sorted(UUID(key) for key in row.hidden.get(COSTS, {}))


def _with_derived(fields: Mapping[str, Any], costs: Mapping[str, CostEntry]) -> dict[str, Any]:
    return {**fields, **derived(fields, costs)}


_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


def derived(fields: Mapping[str, Any], costs: Mapping[str, CostEntry]) -> dict[str, Any]:
    # Runs for every show event and every event of a cost on a show: kept lean (no
    # comprehension when there is nothing foreign, no decimal string parsed twice, the context's
    # own methods rather than a local context entered and left on every call).
    context, cents = rows.DECIMAL, rows.cents
    currency = fields["currency"]
    own = _ZERO
    foreign: dict[str, Decimal] = {}
    for cost in costs.values():
        amount = Decimal(cost["amount"])
        code = cost["currency"]
        if code == currency:
            own = context.add(own, amount)
        else:
            foreign[code] = context.add(foreign.get(code, _ZERO), amount)
    fee = Decimal(fields["fee"])
    pct = context.add(Decimal(fields["mgmt_pct"]), Decimal(fields["booking_pct"]))
    commission = cents(context.divide(context.multiply(fee, pct), _HUNDRED))
    withholding = cents(context.divide(context.multiply(fee, Decimal(fields["wht_pct"])), _HUNDRED))
    costs_total = cents(own)
    subtract = context.subtract
    net = cents(subtract(subtract(subtract(cents(fee), commission), withholding), costs_total))
    return {
        "costs_total": str(costs_total),
        "cost_count": len(costs),
        "foreign_costs": (
            {code: rows.money(sum_) for code, sum_ in sorted(foreign.items())} if foreign else {}
        ),
        "commission_total": str(commission),
        "wht_total": str(withholding),
        "net": str(net),
    }
