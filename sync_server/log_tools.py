"""The ``sync-server`` commands that work on the log: rebuild, verify, project, export, import,
replay. Each takes an open store and the streams to write to, and returns the exit status; the
argument parsing is in ``cli.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO

import msgspec

from event_store import EventStore
from event_store.integrity import verify_chains
from projections import rebuild as rebuilding
from projections.state import LeaseHeld

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
