"""Entities as they were: rebuilt from the log at a past moment or version, never read from
the read tables (PROTOCOL.md, "Audit and replay").

What shapes an entity's row is its own stream and, for a show, the stream of every cost that was
ever on it: a show's totals follow its costs' events, which are not versions of the show. Those
events are applied in log order by the same pure ``apply_event`` as a push and a rebuild, so a
replay up to the present gives exactly the live row, and one up to a past moment gives the row a
pull would have sent then.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from event_store import EventStore, RecordedEvent, StreamId, as_uuid

from .apply import apply_event
from .rows import ReadRow, RowKey, key_of

SHAPED_BY: Final[Mapping[str, tuple[str, str]]] = {"show": ("cost", "show_id")}
"""entity -> (the stream type whose events also change it, the data field that names it)."""

_PAGE = 5000


def _head(store: EventStore, owner: UUID) -> int:
    """The owner's last position now: the cut that keeps several reads consistent (one owner's
    positions commit in order, so every later read holds everything up to it)."""
    with store.snapshot() as sql:
        row = sql.fetchone("SELECT max(position) FROM events WHERE owner = ?", [owner])
    return int(row[0]) if row and row[0] is not None else 0


def shaping_events(
    store: EventStore,
    owner: UUID,
    stream: StreamId,
    *,
    until_position: int | None = None,
    as_of: datetime | None = None,
) -> list[RecordedEvent]:
    """Every event that shapes ``stream``'s row, up to a position or a moment, in log order."""
    if until_position is None and as_of is None:
        until_position = _head(store, owner)
    events = store.read_stream(owner, stream, as_of=as_of)
    related = SHAPED_BY.get(stream.type)
    if related is not None:
        other_type, field = related
        for other in store.streams_naming(owner, other_type, field, str(stream.id)):
            events += store.read_stream(owner, StreamId(other_type, other), as_of=as_of)
    if until_position is not None:
        events = [event for event in events if event.position <= until_position]
    events.sort(key=lambda event: event.position)
    return events


def entity_at(
    store: EventStore,
    owner: UUID,
    stream: StreamId,
    *,
    as_of: datetime | None = None,
    version: int | None = None,
) -> ReadRow | None:
    """``stream``'s row as it was at ``as_of``, or just after its ``version`` was recorded, or
    now; None if it did not exist then (or has no such version). A deleted entity comes back as
    its tombstone (``deleted_at`` set)."""
    key = key_of(stream)
    if key is None:
        return None
    until: int | None = None
    if version is not None:
        own = store.read_stream(owner, stream, to_version=version)
        if not own or own[-1].version != version:
            return None
        until = own[-1].position
    rows: dict[RowKey, ReadRow] = {}
    for event in shaping_events(store, owner, stream, until_position=until, as_of=as_of):
        apply_event(rows, event)
    return rows.get(key)


@dataclass(frozen=True)
class Version:
    """One version of an entity: the event that made it and the fields it changed."""

    event: RecordedEvent
    changes: dict[str, tuple[Any, Any]]
    """field -> (before, after), over the public fields, derived ones included."""


def history(store: EventStore, owner: UUID, stream: StreamId) -> list[Version]:
    """Every version of ``stream``, oldest first; empty when the owner has no such entity."""
    key = key_of(stream)
    if key is None:
        return []
    rows: dict[RowKey, ReadRow] = {}
    versions = []
    for event in shaping_events(store, owner, stream):
        before = rows.get(key)
        apply_event(rows, event)
        if event.stream == stream:
            versions.append(Version(event, changes(before, rows[key])))
    return versions


def changes(before: ReadRow | None, after: ReadRow) -> dict[str, tuple[Any, Any]]:
    old = before.data if before is not None else {}
    return {
        field: (old.get(field), after.data.get(field))
        for field in dict.fromkeys([*old, *after.data])
        if old.get(field) != after.data.get(field)
    }


def owner_at(store: EventStore, owner: UUID, as_of: datetime) -> dict[RowKey, ReadRow]:
    """Every row of ``owner`` as it was at ``as_of``, tombstones included."""
    rows: dict[RowKey, ReadRow] = {}
    for event in _owner_events(store, owner, as_of):
        apply_event(rows, event)
    return rows


def _owner_events(store: EventStore, owner: UUID, as_of: datetime) -> Iterator[RecordedEvent]:
    after = 0
    while True:
        page = store.read_owner(owner, after, _PAGE, recorded_until=as_of)
        yield from page
        if len(page) < _PAGE:
            return
        after = page[-1].position


def owners(store: EventStore) -> list[UUID]:
    """Every owner with events, in a stable order."""
    with store.snapshot() as sql:
        rows = sql.fetchall("SELECT owner FROM event_chains ORDER BY owner")
    return [as_uuid(row[0]) for row in rows]
