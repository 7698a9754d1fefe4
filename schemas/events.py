"""Event types of the log, their schema versions, and the upcaster registry that declares them.

Event data, per type (all JSON-ready, in the canonical form of ``validate.py``):

* ``<entity>.created``: every client-writable field, defaults filled in.
* ``<entity>.updated``: only the fields whose value actually changes. An update that changes
  nothing writes no event at all.
* ``<entity>.deleted``: ``{}``. Deleting a show also writes ``cost.deleted`` for each live cost.
* ``workout.set_logged``: the ``log_set`` payload ``{exercise, reps, weight, unit}``.
* ``product.stock_adjusted``: ``{delta, reason}``; ``product.sale_recorded``:
  ``{quantity, unit_price, sold_at}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from event_store.upcasting import UpcasterRegistry

SHOW_CREATED: Final = "show.created"
SHOW_UPDATED: Final = "show.updated"
SHOW_DELETED: Final = "show.deleted"
COST_CREATED: Final = "cost.created"
COST_UPDATED: Final = "cost.updated"
COST_DELETED: Final = "cost.deleted"
WORKOUT_CREATED: Final = "workout.created"
WORKOUT_UPDATED: Final = "workout.updated"
WORKOUT_DELETED: Final = "workout.deleted"
WORKOUT_SET_LOGGED: Final = "workout.set_logged"
PRODUCT_CREATED: Final = "product.created"
PRODUCT_UPDATED: Final = "product.updated"
PRODUCT_DELETED: Final = "product.deleted"
PRODUCT_STOCK_ADJUSTED: Final = "product.stock_adjusted"
PRODUCT_SALE_RECORDED: Final = "product.sale_recorded"

SCHEMA_VERSIONS: Mapping[str, int] = MappingProxyType(
    {
        SHOW_CREATED: 1,
        SHOW_UPDATED: 1,
        SHOW_DELETED: 1,
        COST_CREATED: 1,
        COST_UPDATED: 1,
        COST_DELETED: 1,
        WORKOUT_CREATED: 1,
        WORKOUT_UPDATED: 1,
        WORKOUT_DELETED: 1,
        WORKOUT_SET_LOGGED: 1,
        PRODUCT_CREATED: 1,
        PRODUCT_UPDATED: 1,
        PRODUCT_DELETED: 1,
        PRODUCT_STOCK_ADJUSTED: 1,
        PRODUCT_SALE_RECORDED: 1,
    }
)
"""The current schema version of every event type; new events are written at this version."""

ACTION_EVENTS: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("workout", "log_set"): WORKOUT_SET_LOGGED,
        ("product", "adjust_stock"): PRODUCT_STOCK_ADJUSTED,
        ("product", "record_sale"): PRODUCT_SALE_RECORDED,
    }
)


def created(entity: str) -> str:
    return f"{entity}.created"


def updated(entity: str) -> str:
    return f"{entity}.updated"


def deleted(entity: str) -> str:
    return f"{entity}.deleted"


def build_registry() -> UpcasterRegistry:
    """A strict registry that knows every event type (and, later, the steps between versions)."""
    registry = UpcasterRegistry()
    for type_, version in SCHEMA_VERSIONS.items():
        registry.declare(type_, version)
    return registry
