"""The REST collections (PROTOCOL.md, "Entity REST"): what each one lists, filters, sorts and does.

One declaration per collection, read by the routes (``routes/entities.py``), the listing query
and the OpenAPI document, so that a filter or an action exists in all three or in none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, get_args

import msgspec

from projections.listing import Op, SortColumn
from projections.rows import TABLES
from schemas.entities import ACTION_PAYLOADS, FIELDS
from schemas.fields import ShowStatus
from schemas.values import parse_uuid

from .query_params import bad_parameter, iso_date

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200


def _date(raw: str) -> str:
    return iso_date(raw).isoformat()


def _status(raw: str) -> str:
    allowed = get_args(ShowStatus)
    if raw not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return raw


def _uuid(raw: str) -> str:
    try:
        return str(parse_uuid(raw))
    except ValueError:
        raise ValueError("must be a UUID") from None


def _bool(raw: str) -> bool:
    if raw not in ("true", "false"):
        raise ValueError("must be true or false")
    return raw == "true"


@dataclass(frozen=True)
class Filter:
    """A query parameter that keeps rows whose ``column`` compares with it by ``op``."""

    name: str
    column: str
    op: Op
    parse: Callable[[str], str | bool]
    schema: Mapping[str, Any]
    description: str

    def value(self, raw: str) -> str | bool:
        try:
            return self.parse(raw)
        except ValueError as error:
            raise bad_parameter(self.name, str(error)) from None


FROM = Filter(
    "from", "date", "ge", _date, {"type": "string", "format": "date"}, "on or after this date"
)
TO = Filter(
    "to", "date", "le", _date, {"type": "string", "format": "date"}, "on or before this date"
)
STATUS = Filter(
    "status",
    "status",
    "eq",
    _status,
    {"enum": list(get_args(ShowStatus))},
    "only shows with this status",
)
SHOW_ID = Filter(
    "show_id",
    "show_id",
    "eq",
    _uuid,
    {"type": "string", "format": "uuid"},
    "only this show's costs",
)
LOW_STOCK = Filter(
    "low_stock",
    "low_stock",
    "eq",
    _bool,
    {"type": "boolean"},
    "only products at or below (true) or above (false) their reorder point",
)


@dataclass(frozen=True)
class Action:
    """``POST /v1/{collection}/{id}/{path}``: a commutative action of the entity."""

    path: str
    action: str
    summary: str

    def payload(self, entity: str) -> type[msgspec.Struct]:
        return ACTION_PAYLOADS[(entity, self.action)]


@dataclass(frozen=True)
class Collection:
    name: str
    entity: str
    filters: tuple[Filter, ...]
    sorts: tuple[SortColumn, ...]
    default_sort: str
    """A member of ``sort_values``: the column, ``-`` in front for descending."""
    actions: tuple[Action, ...] = ()
    description: str = ""

    @property
    def table(self) -> str:
        return TABLES[self.entity]

    @property
    def fields(self) -> type[msgspec.Struct]:
        return FIELDS[self.entity]

    @property
    def sort_values(self) -> tuple[str, ...]:
        return tuple(value for column in self.sorts for value in (column, f"-{column}"))

    @property
    def path(self) -> str:
        return f"/v1/{self.name}"


COLLECTIONS: Mapping[str, Collection] = MappingProxyType(
    {
        collection.name: collection
        for collection in (
            Collection(
                "shows",
                "show",
                (STATUS, FROM, TO),
                ("date", "created_at"),
                "date",
                description="Shows of a tour: fee, agencies, withholding, and their net.",
            ),
            Collection(
                "costs",
                "cost",
                (SHOW_ID,),
                ("created_at",),
                "created_at",
                description="Costs of shows; each counts in its show's totals.",
            ),
            Collection(
                "workouts",
                "workout",
                (FROM, TO),
                ("date", "created_at"),
                "-date",
                (Action("sets", "log_set", "Log one set of an exercise"),),
                description="Workouts with their exercises and sets, and their volume.",
            ),
            Collection(
                "inventory",
                "product",
                (LOW_STOCK,),
                ("sku", "created_at"),
                "sku",
                (
                    Action("adjust", "adjust_stock", "Adjust the stock by a delta"),
                    Action("sales", "record_sale", "Record a sale"),
                ),
                description="Products in stock, with their sales rate and days of stock left.",
            ),
        )
    }
)
