"""What deciding reads and what it answers.

Deciding sees an entity only through ``EntityState``, which is built from the entity's read row
alone. That is on purpose: within a push batch, the rows are updated in memory after each
accepted op, and the next op is decided on states rebuilt from those rows, so a show created by
op 1 is visible to a cost created by op 2 without any other bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

import msgspec

from event_store.events import EventMetadata, NewEvent, StreamId
from projections.rows import ReadRow, field_versions
from schemas.events import SCHEMA_VERSIONS
from schemas.results import VALIDATION_FAILED, Conflict, ConflictReason, FieldError, OpError


# gc=False (here and below): made by the thousand in a push and never part of a reference
# cycle, so the cyclic garbage collector need not track them (msgspec's option).
class EntityState(msgspec.Struct, frozen=True, gc=False):
    entity: str
    id: UUID
    version: int
    deleted: bool
    data: dict[str, Any]
    """The public row (client and derived fields): what a conflict shows as ``server_data``."""
    field_versions: Mapping[str, int]
    """Client-writable field -> the stream version at which it last changed (the row's own
    mapping, not a copy: rows are never changed in place)."""

    @classmethod
    def from_row(cls, entity: str, row: ReadRow) -> EntityState:
        return cls(
            entity=entity,
            id=row.id,
            version=row.version,
            deleted=row.deleted,
            data=row.data,
            field_versions=field_versions(row),
        )

    @property
    def stream(self) -> StreamId:
        return StreamId(self.entity, self.id)


class References(msgspec.Struct, frozen=True, gc=False):
    """Other entities an op's validity depends on, loaded by the caller (see ``inputs.py``)."""

    shows: Mapping[UUID, EntityState] = {}
    """Shows named by a cost op's ``show_id``, live or deleted; the owner's only."""
    products_by_sku: Mapping[str, UUID] = {}
    """The owner's live products by sku, for the skus the op names."""
    costs_by_show: Mapping[UUID, Sequence[UUID]] = {}
    """Live cost ids of a show being deleted: the deletion cascades to them."""


class PendingEvent(msgspec.Struct, frozen=True, gc=False):
    """An event decided but not yet recorded: no position, version or time yet."""

    stream: StreamId
    type: str
    data: dict[str, Any]

    def new_event(self, metadata: EventMetadata) -> NewEvent:
        """The event to append, at its type's current schema version."""
        return NewEvent(self.stream, self.type, self.data, SCHEMA_VERSIONS[self.type], metadata)


class Accepted(msgspec.Struct, frozen=True, gc=False):
    """The op is applied. No events means an update that changed nothing: still ``applied``."""

    events: list[PendingEvent]

    def version_after(self, stream: StreamId, current: int) -> int:
        """The version ``stream`` reaches once these events are appended to it at ``current``."""
        return current + sum(1 for event in self.events if event.stream == stream)


class Conflicted(msgspec.Struct, frozen=True, gc=False):
    conflict: Conflict


class Rejected(msgspec.Struct, frozen=True, gc=False):
    error: OpError


Decision = Accepted | Conflicted | Rejected


def rejected(code: str, message: str, errors: Iterable[FieldError] | None = None) -> Rejected:
    return Rejected(OpError(code, message, None if errors is None else list(errors)))


def invalid(errors: Iterable[FieldError], message: str = "the op is invalid") -> Rejected:
    return rejected(VALIDATION_FAILED, message, errors)


def conflicted(
    reason: ConflictReason, state: EntityState, fields: Iterable[str] = ()
) -> Conflicted:
    return Conflicted(Conflict(reason, state.version, state.data, sorted(fields)))
