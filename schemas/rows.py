"""The read rows as clients receive them: a pull's ``data`` and the body of a REST answer.

A row is ``id`` and ``version``, every client-writable field of the entity (always present:
optional ones as ``null``), the derived fields its projector computes, and ``created_at`` /
``updated_at``. The writable fields come from ``fields.py``; only the derived ones are declared
here, and a test decodes projected rows with these types (unknown members refused), so the
documentation of a row cannot drift from what the projectors write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import Meta

from .entities import FIELDS

Amount = Annotated[
    str,
    Meta(
        pattern=r"^-?[0-9]+\.[0-9]{2}$",
        description="A derived amount rounded half up to cents; may be negative (net).",
    ),
]


class ShowDerived(msgspec.Struct, forbid_unknown_fields=True):
    costs_total: Amount
    """The live costs in the show's own currency."""
    cost_count: int
    foreign_costs: dict[str, Amount]
    """Costs in other currencies, by currency: never converted (there are no rates)."""
    commission_total: Amount
    wht_total: Amount
    net: Amount


class CostDerived(msgspec.Struct, forbid_unknown_fields=True):
    pass


class WorkoutDerived(msgspec.Struct, forbid_unknown_fields=True):
    total_sets: int
    total_reps: int
    volume_kg: Amount


class ProductDerived(msgspec.Struct, forbid_unknown_fields=True):
    low_stock: bool
    sold_30d: int
    avg_daily_sales: Amount
    days_left: int | None
    """Whole days the stock lasts at the 30-day sales rate; null when nothing was sold."""


DERIVED: Mapping[str, type[msgspec.Struct]] = MappingProxyType(
    {
        "show": ShowDerived,
        "cost": CostDerived,
        "workout": WorkoutDerived,
        "product": ProductDerived,
    }
)


@cache
def row_type(entity: str) -> type[msgspec.Struct]:
    """The Struct of a live ``entity`` row (``ShowRow``…), built from the field Structs."""
    members: list[tuple[str, object]] = [("id", UUID), ("version", int)]
    for source in (FIELDS[entity], DERIVED[entity]):
        members += [(f.name, f.type) for f in msgspec.structs.fields(source)]
    members += [("created_at", dt.datetime), ("updated_at", dt.datetime)]
    return msgspec.defstruct(
        f"{entity.capitalize()}Row", members, forbid_unknown_fields=True, module=__name__
    )
