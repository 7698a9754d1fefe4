"""The read row every projector produces, and the helpers they share.

A projector is a pure function of (row, event): it never reads the clock, the database or any
state other than its arguments, so a rebuild from the log gives back exactly the live rows
(DESIGN.md, "Rebuild equals live"). Rows are never mutated in place: each change builds a new
``ReadRow`` with new dicts, because the push layer keeps earlier rows (and states derived from
them) around while it decides the rest of a batch.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Any
from uuid import UUID

import msgspec

from event_store.events import RecordedEvent, StreamId


# gc=False: made by the thousand in a push and never part of a reference cycle, so the
# cyclic garbage collector need not track them (msgspec's option).
class ReadRow(msgspec.Struct, gc=False):
    id: UUID
    version: int
    """The entity's own stream version. Derived-only changes (a cost added to a show) keep it."""
    sync_pos: int
    """Position of the last event that changed this row, derived fields included."""
    created_at: datetime
    updated_at: datetime
    """``recorded_at`` of the last event that changed this row."""
    deleted_at: datetime | None
    data: dict[str, Any]
    """The public row: client fields and derived fields, JSON-ready. What pulls send as ``data``."""
    hidden: dict[str, Any]
    """Projector-private state, JSON-ready, never sent to clients: ``field_versions`` (the merge
    policy's input) and whatever a projector needs to keep its derived fields exact."""

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


TABLES: dict[str, str] = {
    "show": "shows",
    "cost": "costs",
    "workout": "workouts",
    "product": "inventory",
}
"""Entity type -> the read table that holds it."""

ENTITIES: dict[str, str] = {table: entity for entity, table in TABLES.items()}

RowKey = tuple[str, UUID]
"""(table, id): where a row lives."""

FIELD_VERSIONS = "field_versions"


def key_of(stream: StreamId) -> RowKey | None:
    """The row a stream projects into, or None for a stream no read table holds."""
    table = TABLES.get(stream.type)
    return None if table is None else (table, stream.id)


def field_versions(row: ReadRow) -> Mapping[str, int]:
    """Client-writable field -> the stream version at which it last changed: the row's own
    mapping, not a copy (rows are never changed in place)."""
    return row.hidden.get(FIELD_VERSIONS, _NO_VERSIONS)  # type: ignore[no-any-return]


_NO_VERSIONS: Mapping[str, int] = {}


def with_field_versions(
    hidden: Mapping[str, Any], fields: Iterable[str], version: int
) -> dict[str, Any]:
    """``hidden`` with ``fields`` marked as changed at ``version``."""
    versions = dict(hidden.get(FIELD_VERSIONS, {}))
    versions.update(dict.fromkeys(fields, version))
    return {**hidden, FIELD_VERSIONS: versions}


def created(event: RecordedEvent, data: dict[str, Any], hidden: dict[str, Any]) -> ReadRow:
    return ReadRow(
        id=event.stream.id,
        version=event.version,
        sync_pos=event.position,
        created_at=event.recorded_at,
        updated_at=event.recorded_at,
        deleted_at=None,
        data=data,
        hidden=hidden,
    )


def changed(
    row: ReadRow,
    event: RecordedEvent,
    data: dict[str, Any],
    hidden: dict[str, Any],
    *,
    own: bool,
) -> ReadRow:
    """``row`` changed by ``event``; ``own`` when the event is of the row's own stream, which is
    the only kind that moves ``version``."""
    return msgspec.structs.replace(
        row,
        version=event.version if own else row.version,
        sync_pos=event.position,
        updated_at=event.recorded_at,
        data=data,
        hidden=hidden,
    )


def tombstone(row: ReadRow, event: RecordedEvent) -> ReadRow:
    """A deleted row keeps its last data, so a late reader still learns what disappeared."""
    return msgspec.structs.replace(
        row,
        version=event.version,
        sync_pos=event.position,
        updated_at=event.recorded_at,
        deleted_at=event.recorded_at,
    )


# An explicit context rather than the ambient one: derived values must not depend on what some
# other code did to the thread's decimal context. 50 digits hold any product of two accepted
# values (at most 10^12 with 4 places) exactly.
DECIMAL = Context(
    prec=50, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow]
)
_CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    """``value`` rounded half up to cents, never a negative zero: the number ``money`` writes,
    for sums that must add up to what a reader sees."""
    return DECIMAL.plus(value.quantize(_CENT, None, DECIMAL))  # positional: half the time


def money(value: Decimal) -> str:
    """A derived amount: rounded half up to cents, as a plain string ("-150.00")."""
    # str is format(..., "f") here, for less: with two places, the exponent is -2 and str never
    # turns to exponent notation (it does only for a positive exponent or below 1E-6).
    return str(cents(value))


@functools.lru_cache(maxsize=4096)
def uuid_of(text: str) -> UUID:
    """``UUID(text)``, remembered: a row names another by id as text (a cost its show), and
    projecting one event reads the same reference several times."""
    return UUID(text)
