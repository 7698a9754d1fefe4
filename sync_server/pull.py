"""Pull: the changes of one user since a cursor, read from one consistent snapshot.

Why no change is ever skipped (DESIGN.md, invariant 4): one owner's write transactions hold the
owner lock from before they take a position until they commit (``event_store/store.py``), so
every snapshot holds a *prefix* of that owner's sync positions; a later snapshot can only add
positions above every position an earlier one showed. A row changed again moves to a higher
``sync_pos``, so a page holds each entity at most once, in its latest state, and a reader that
follows cursors sees it again after its next change.

The page, its cursor and ``has_more`` come from one snapshot (REPEATABLE READ on PostgreSQL, a
WAL read transaction on SQLite), so they always agree with each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

import msgspec

from event_store import EventStore, Sql
from projections import tables
from projections.project import epoch
from projections.rows import TABLES

from . import pull_cursors

ENTITIES: Final = tuple(TABLES)


class WireChange(msgspec.Struct, frozen=True, omit_defaults=True):
    """``schemas.pull.Change`` with ``data`` spliced in as the stored JSON, never re-encoded."""

    entity: str
    id: UUID
    op: Literal["upsert", "delete"]
    version: int
    data: msgspec.Raw | None = None


class WirePage(msgspec.Struct, frozen=True):
    changes: list[WireChange]
    cursor: str
    has_more: bool
    reset: bool = False


@dataclass(frozen=True)
class Since:
    """Where a pull starts: a cursor, a moment, or the beginning (both None)."""

    cursor: pull_cursors.Cursor | None = None
    moment: datetime | None = None


def pull(
    store: EventStore,
    key: bytes,
    owner: UUID,
    since: Since,
    limit: int,
    entities: Sequence[str] = ENTITIES,
) -> WirePage:
    """One page of ``owner``'s changes to ``entities`` after ``since``, at most ``limit``."""
    wanted = frozenset(entities)
    with store.snapshot() as sql:
        current = epoch(sql)
        if since.cursor is not None and since.cursor.epoch != current:
            # Issued before the read tables were rebuilt under another definition: positions
            # may mean something else now. The client drops its copy and starts again.
            start = pull_cursors.Cursor(0, current, wanted)
            return WirePage([], pull_cursors.encode(key, owner, start), has_more=True, reset=True)
        after = _start(sql, owner, since)
        tables_ = [TABLES[name] for name in ENTITIES if name in wanted]
        records = tables.changes_after(sql, owner, after, limit + 1, tables_)
    page = records[:limit]
    end = page[-1].key if page else after
    changes = [
        WireChange(r.entity, r.id, "delete", r.version, _tombstone(r.body))
        if r.deleted
        else WireChange(r.entity, r.id, "upsert", r.version, msgspec.Raw(r.body.encode()))
        for r in page
    ]
    tie = None if end.id is None else (end.rank, end.id)
    cursor = pull_cursors.encode(
        key, owner, pull_cursors.Cursor(end.position, current, wanted, tie)
    )
    return WirePage(changes, cursor, has_more=len(records) > limit)


def _tombstone(body: str) -> msgspec.Raw:
    """A deleted row's ``data``: its id, version and times, ``deleted_at`` among them
    (PROTOCOL.md, "Every read row also carries…"), not the fields it held: a device that never
    had the entity has no use for them."""
    row = _decode_row(body)
    return msgspec.Raw(_encode_row({name: row[name] for name in tables.META if name in row}))


_decode_row = msgspec.json.Decoder(dict[str, Any]).decode
_encode_row = msgspec.json.Encoder().encode


def head_cursor(store: EventStore, owner: UUID) -> pull_cursors.Cursor:
    """A cursor after every change ``owner`` has now (under the current epoch)."""
    with store.snapshot() as sql:
        return pull_cursors.Cursor(tables.head(sql, owner), epoch(sql))


def _start(sql: Sql, owner: UUID, since: Since) -> tables.SyncKey:
    if since.cursor is not None:
        return since.cursor.after
    if since.moment is not None:
        # The owner's last event recorded at or before the moment: every change after it was
        # recorded after the moment (one owner's events are recorded in position order).
        row = sql.fetchone(
            "SELECT max(position) FROM events WHERE owner = ? AND recorded_at <= ?",
            [owner, since.moment],
        )
        return tables.SyncKey(int(row[0]) if row and row[0] is not None else 0)
    return tables.SyncKey(0)
