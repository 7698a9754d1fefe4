"""Projector of the ``inventory`` read table (entity ``product``).

Derived fields:

* ``low_stock`` = quantity <= reorder_point.
* ``sold_30d``: units sold with ``sold_at`` in (t - 30 days, t], where t is the ``recorded_at``
  of the event being applied. Never the wall clock: a rebuild from the log must give the same
  value as live processing did. So the figure is "as of the product's last event", which is
  also when the row (and its ``sync_pos``) last moved for pulls.
* ``avg_daily_sales`` = sold_30d / 30, rounded half up to two places, as a string.
* ``days_left`` = floor(quantity / (sold_30d / 30)), computed exactly as
  floor(quantity * 30 / sold_30d); null when nothing was sold in the window.

The sales that may still count are kept in ``hidden["sales"]`` as ``[sold_at, quantity]``
pairs: those with ``sold_at`` after t - 30 days, including ones dated after t (a device with a
fast clock), which will count once t catches up. Older ones are dropped for good.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from event_store.events import RecordedEvent
from schemas.entities import writable_fields

from . import rows
from .rows import ReadRow

ENTITY = "product"
SALES = "sales"
WINDOW = timedelta(days=30)
WINDOW_DAYS = 30
DERIVED = ("low_stock", "sold_30d", "avg_daily_sales", "days_left")

Sale = list[Any]
"""``[sold_at, quantity]``, sold_at as RFC 3339 text (JSON-ready)."""


def created(event: RecordedEvent) -> ReadRow:
    hidden = rows.with_field_versions({SALES: []}, writable_fields(ENTITY), event.version)
    data, hidden = _derive(event.data, hidden, event.recorded_at)
    return rows.created(event, data, hidden)


def updated(row: ReadRow, event: RecordedEvent) -> ReadRow:
    hidden = rows.with_field_versions(row.hidden, event.data, event.version)
    return _changed(row, event, {**row.data, **event.data}, hidden)


def deleted(row: ReadRow, event: RecordedEvent) -> ReadRow:
    return rows.tombstone(row, event)


def stock_adjusted(row: ReadRow, event: RecordedEvent) -> ReadRow:
    quantity = row.data["quantity"] + event.data["delta"]
    hidden = rows.with_field_versions(row.hidden, ["quantity"], event.version)
    return _changed(row, event, {**row.data, "quantity": quantity}, hidden)


def sale_recorded(row: ReadRow, event: RecordedEvent) -> ReadRow:
    quantity = row.data["quantity"] - event.data["quantity"]
    sales = [*row.hidden.get(SALES, []), [event.data["sold_at"], event.data["quantity"]]]
    hidden = rows.with_field_versions({**row.hidden, SALES: sales}, ["quantity"], event.version)
    return _changed(row, event, {**row.data, "quantity": quantity}, hidden)


def _changed(
    row: ReadRow, event: RecordedEvent, fields: Mapping[str, Any], hidden: dict[str, Any]
) -> ReadRow:
    data, hidden = _derive(fields, hidden, event.recorded_at)
    return rows.changed(row, event, data, hidden, own=True)


def _derive(
    fields: Mapping[str, Any], hidden: dict[str, Any], now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fields plus derived ones as of ``now``; ``hidden`` with the sales out of reach dropped."""
    start = now - WINDOW
    kept: list[Sale] = []
    sold = 0
    for sale in hidden.get(SALES, []):
        sold_at = _instant(sale[0])
        if sold_at > start:
            kept.append(sale)
            if sold_at <= now:
                sold += sale[1]
    return {**fields, **derived(fields["quantity"], fields["reorder_point"], sold)}, {
        **hidden,
        SALES: kept,
    }


def derived(quantity: int, reorder_point: int, sold_30d: int) -> dict[str, Any]:
    # One operation, so done by the context itself rather than under a localcontext.
    average = rows.money(rows.DECIMAL.divide(sold_30d, WINDOW_DAYS))
    return {
        "low_stock": quantity <= reorder_point,
        "sold_30d": sold_30d,
        "avg_daily_sales": average,
        "days_left": quantity * WINDOW_DAYS // sold_30d if sold_30d else None,
    }


@functools.lru_cache(maxsize=4096)
def _instant(text: str) -> datetime:
    # Remembered: every event of a product reads every sale of its window again.
    return datetime.fromisoformat(text)
