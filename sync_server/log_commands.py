"""The ``sync-server`` commands that work on the log: rebuild, verify, project, export, import,
replay. Each takes an open store and the streams to write to, and returns the exit status; the
argument parsing is in ``cli.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, BinaryIO, TextIO
from uuid import UUID

import msgspec

from event_store import EventStore, Sql, StreamId, as_uuid, transfer
from event_store.integrity import verify_chains
from projections import rebuild as rebuilding
from projections import replay as replayer
from projections import runner, tables
from projections.projection_state import LeaseHeld
from projections.rows import ENTITIES, ReadRow

from .progress import Progress

OK, FAILED, ERROR = 0, 1, 2

_encode = msgspec.json.Encoder().encode


def _shown(value: Any) -> str:
    """A value as JSON, as close as possible to how the row holds it."""
    try:
        return _encode(value).decode()
    except TypeError:
        return repr(value)


def rebuild(store: EventStore, names: Sequence[str], out: TextIO, err: TextIO) -> int:
    progress = Progress("rebuild", err)
    try:
        done = rebuilding.rebuild(store, names or None, progress=progress)
    except (rebuilding.RebuildError, LeaseHeld) as error:
        progress.close()
        err.write(f"sync-server rebuild: {error}\n")
        return ERROR
    progress.close()
    out.write(
        f"rebuilt {', '.join(done.tables)} from {done.events:,} events: "
        f"{done.changed:,} rows changed\n"
    )
    if done.reset:
        out.write(f"epoch is now {done.epoch}: clients will reset on their next pull\n")
    else:
        out.write("the live tables already equalled the log; clients keep their cursors\n")
    return OK


def verify(store: EventStore, out: TextIO, err: TextIO) -> int:
    progress = Progress("verify: read tables", err)
    try:
        differences = rebuilding.verify(store, progress=progress)
    except LeaseHeld as error:
        progress.close()
        err.write(f"sync-server verify: {error}\n")
        return ERROR
    progress.close()
    out.write(f"read tables: {len(differences)} difference(s)\n")
    if differences:
        out.write("  table\towner\tid\tfield\tlive\treplayed\n")
    for found in differences:
        out.write(
            f"  {found.table}\t{found.owner}\t{found.id}\t{found.field}\t"
            f"{_shown(found.live)}\t{_shown(found.replayed)}\n"
        )
    chains = Progress("verify: hash chains", err)
    total = store.count_events()
    breaks = list(verify_chains(store, lambda done: chains(done, total)))
    chains.close()
    out.write(f"hash chains: {len(breaks)} broken\n")
    for broken in breaks:
        out.write(f"  {broken}\n")
    if differences or breaks:
        out.write("verify: FAILED\n")
        return FAILED
    out.write("verify: OK: the read tables equal the log, and every hash chain holds\n")
    return OK


def _epochs(sql: Sql) -> dict[str, Any]:
    rows = sql.fetchall("SELECT name, epoch FROM projection_state")
    return {"epochs": {str(name): int(epoch) for name, epoch in rows}}


def _after_restore(sql: Sql, counts: transfer.Counts) -> None:
    """A restored log gets epochs past the exporting store's: the clients of that store hold
    cursors that may point past the end of the export, which new events will reuse, so every
    one of them must be answered ``reset``."""
    exported = (counts.about or {}).get("epochs", {})
    for name, exported_epoch in exported.items():
        sql.execute(
            "UPDATE projection_state SET epoch = ? WHERE name = ? AND epoch <= ?",
            [int(exported_epoch) + 1, name, int(exported_epoch)],
        )


def export(store: EventStore, out: BinaryIO, err: TextIO) -> int:
    progress = Progress("export", err)
    total = store.count_events()
    counts = transfer.export(store, out, lambda done: progress(done, total), about=_epochs)
    out.flush()
    progress.close()
    err.write(f"exported {counts.events:,} events and {counts.keys:,} idempotency keys\n")
    return OK


def import_(store: EventStore, source: BinaryIO, out: TextIO, err: TextIO) -> int:
    progress = Progress("import", err)
    try:
        counts = transfer.import_log(
            store, source, lambda done: progress(done, done), then=_after_restore
        )
    except (transfer.BadLine, transfer.NotEmpty) as error:
        progress.close()
        err.write(f"sync-server import: {error}; nothing was imported\n")
        return FAILED
    progress.close()
    out.write(f"imported {counts.events:,} events and {counts.keys:,} idempotency keys\n")
    return rebuild(store, [], out, err)


def replay(
    store: EventStore,
    as_of: datetime,
    owner: UUID | None,
    entity: str | None,
    id_: UUID | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Print, one JSON line per entity, the state at ``as_of`` rebuilt from the log: of one
    entity (of ``owner``, or of whichever owner has it), of one owner, or of every owner."""
    if entity is not None and id_ is not None:
        stream = StreamId(entity, id_)
        owners = [owner] if owner is not None else _owners_of(store, stream)
        found = 0
        for who in owners:
            row = replayer.entity_at(store, who, stream, as_of=as_of)
            if row is not None:
                _print_row(out, who, entity, row)
                found += 1
        if not found:
            err.write(f"sync-server replay: no {entity} {id_} at {as_of.isoformat()}\n")
            return FAILED
        return OK
    for who in [owner] if owner is not None else replayer.owners(store):
        for (table, _), row in sorted(
            replayer.owner_at(store, who, as_of).items(),
            key=lambda item: (item[0][0], str(item[0][1])),
        ):
            _print_row(out, who, ENTITIES[table], row)
    return OK


def _owners_of(store: EventStore, stream: StreamId) -> list[UUID]:
    with store.snapshot() as sql:
        rows = sql.fetchall(
            "SELECT DISTINCT owner FROM events WHERE stream_type = ? AND stream_id = ?",
            [stream.type, stream.id],
        )
    return sorted(as_uuid(row[0]) for row in rows)


def _print_row(out: TextIO, owner: UUID, entity: str, row: ReadRow) -> None:
    line = {"owner": str(owner), "entity": entity, "data": msgspec.Raw(tables.body_of(row))}
    out.write(_encode(line).decode() + "\n")


def project(
    store: EventStore,
    once: bool,
    interval: float,
    out: TextIO,
    stop: threading.Event | None = None,
) -> int:
    """Keep the catch-up read models up with the log (and rebuild the read tables if their
    definition changed): until caught up with ``once``, else until ``stop`` is set."""
    stop = stop or threading.Event()
    names = ", ".join(model.name for model in runner.CATCH_UP)
    out.write(f"projecting {names}{'' if once else f', every {interval:g} s'}\n")
    out.flush()
    while True:
        rebuilt = runner.check_read_tables(store)
        if rebuilt is not None:
            out.write(f"read tables rebuilt under a new definition: epoch {rebuilt.epoch}\n")
        applied = runner.catch_up(store, stop=stop)
        if applied:
            out.write(f"caught up over {applied:,} events\n")
            out.flush()
        if once or stop.wait(interval):
            return OK
