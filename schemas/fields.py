"""The client-writable fields of each entity, and the payloads of the extra actions.

One Struct per shape is the single definition of its fields, their types, bounds and defaults
(PROTOCOL.md, "Entities and their read tables"); ``validate.py`` derives create and update
checking from it. Derived fields (``net``, ``low_stock``…) are not here: clients never write them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from .moments import Moment
from .values import MAX_COUNT, CountryCode, CurrencyCode, Measure, Money, Percent, StockDelta

# Text never holds NUL: PostgreSQL cannot store it in a text column, and nobody types it.
NO_NUL = r"^[^\x00]*$"
# Required names must say something: a value of only spaces is refused like an empty one.
NOT_BLANK = r"^[^\x00]*[^\x00\s][^\x00]*$"


def _name(low: int, high: int) -> Meta:
    return Meta(min_length=low, max_length=high, pattern=NOT_BLANK)


def _text(high: int) -> Meta:
    return Meta(max_length=high, pattern=NO_NUL)


Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
ShowStatus = Literal["draft", "pending", "confirmed", "completed", "canceled"]
WeightUnit = Literal["kg", "lb"]
Reps = Annotated[int, Meta(ge=1, le=100)]
ExerciseName = Annotated[str, _name(1, 100)]

EUR = CurrencyCode("EUR")


class ShowFields(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    date: dt.date
    city: Annotated[str, _name(1, 100)]
    country: CountryCode
    venue: Annotated[str, _text(200)] | None = None
    fee: Money
    currency: CurrencyCode = EUR
    status: ShowStatus = "draft"
    mgmt_agency: Annotated[str, _text(200)] | None = None
    mgmt_pct: Percent = Percent(0)
    booking_agency: Annotated[str, _text(200)] | None = None
    booking_pct: Percent = Percent(0)
    wht_pct: Percent = Percent(0)
    notes: Annotated[str, _text(5000)] | None = None


class CostFields(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    show_id: UUID
    type: Annotated[str, _name(1, 50)]
    amount: Money
    currency: CurrencyCode = EUR
    description: Annotated[str, _text(2000)] | None = None


class WorkoutSet(msgspec.Struct, forbid_unknown_fields=True):
    reps: Reps
    weight: Measure
    unit: WeightUnit


class Exercise(msgspec.Struct, forbid_unknown_fields=True):
    name: ExerciseName
    sets: Annotated[list[WorkoutSet], Meta(min_length=1, max_length=20)]


MAX_EXERCISES = 50
MAX_SETS = 20


class WorkoutFields(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    date: dt.date
    name: Annotated[str, _name(3, 100)]
    notes: Annotated[str, _text(5000)] | None = None
    exercises: Annotated[list[Exercise], Meta(min_length=1, max_length=MAX_EXERCISES)]


class ProductFields(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    sku: Annotated[str, _name(1, 64)]
    name: Annotated[str, _name(1, 200)]
    unit: Annotated[str, _name(1, 20)] = "unit"
    quantity: Count = 0
    """Only on create: afterwards stock moves through ``adjust_stock`` and ``record_sale``, which
    commute, so that two devices counting stock offline never overwrite each other."""
    reorder_point: Count = 0


class LogSet(msgspec.Struct, forbid_unknown_fields=True):
    """``workout.log_set``: append one set to the named exercise (added if new)."""

    exercise: ExerciseName
    reps: Reps
    weight: Measure
    unit: WeightUnit


class AdjustStock(msgspec.Struct, forbid_unknown_fields=True):
    delta: StockDelta
    reason: Annotated[str, _name(1, 200)]


class RecordSale(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Annotated[int, Meta(ge=1, le=MAX_COUNT)]
    unit_price: Money
    sold_at: Moment
    """In UTC: "…+02:00" and the same moment in "…Z" must compare equal as strings in the
    30-day sales window."""
