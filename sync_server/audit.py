"""The audit reads behind ``/v1/events``, ``/v1/{collection}/{id}/history`` and time travel.

Every read is scoped by the owner it is given: another user's entity is simply not found.
States and histories are rebuilt from the log (``projections/replay.py``), never read from the
read tables.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from event_store import EventStore, RecordedEvent, StreamId
from projections import replay
from projections.rows import ReadRow
from schemas.audit import EntityVersion, EventsPage, HistoryPage, LoggedEvent


def _origin(event: RecordedEvent) -> dict[str, str]:
    return {k: v for k, v in msgspec.structs.asdict(event.metadata).items() if v is not None}


def events(
    store: EventStore,
    owner: UUID,
    after: int,
    limit: int,
    entity: str | None = None,
    id_: UUID | None = None,
) -> EventsPage:
    """The owner's events after position ``after``, in log order, at most ``limit``."""
    found = store.read_owner(owner, after, limit + 1, stream_type=entity, stream_id=id_)
    page = found[:limit]
    logged = [
        LoggedEvent(
            position=event.position,
            entity=event.stream.type,
            id=event.stream.id,
            version=event.version,
            type=event.type,
            schema_version=event.schema_version,
            data=event.data,
            metadata=_origin(event),
            recorded_at=event.recorded_at,
        )
        for event in page
    ]
    return EventsPage(logged, page[-1].position if page else after, len(found) > limit)


def history(
    store: EventStore, owner: UUID, entity: str, id_: UUID, after: int, limit: int
) -> HistoryPage | None:
    """The entity's versions after version ``after``, at most ``limit``; None if the owner
    has no such entity."""
    versions = replay.history(store, owner, StreamId(entity, id_))
    if not versions:
        return None
    shown = [v for v in versions if v.event.version > after][:limit]
    wire = [
        EntityVersion(
            version=v.event.version,
            type=v.event.type,
            recorded_at=v.event.recorded_at,
            changes=v.changes,
            data=v.event.data,
            position=v.event.position,
            actor=v.event.metadata.actor,
            client_id=v.event.metadata.client_id,
            device=v.event.metadata.device,
            op_id=v.event.metadata.op_id,
            source=v.event.metadata.source,
        )
        for v in shown
    ]
    last = wire[-1].version if wire else after
    return HistoryPage(entity, id_, wire, last, versions[-1].event.version > last)


def state(
    store: EventStore,
    owner: UUID,
    entity: str,
    id_: UUID,
    *,
    as_of: datetime | None = None,
    version: int | None = None,
) -> ReadRow | None:
    """The entity's row as it was at ``as_of`` or just after its ``version`` (now, without
    either), a tombstone if it was deleted by then; None if it did not exist then."""
    return replay.entity_at(store, owner, StreamId(entity, id_), as_of=as_of, version=version)
