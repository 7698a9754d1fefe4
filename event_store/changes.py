"""Change notices: who learns, right after a commit, that an owner's events were written.

Whatever writes events (a push, the entity API, a test) writes them through
``EventStore.transaction(owner)``, so that is where the notice is sent, once per transaction
that wrote at least one event, and only if it commits. The one exception, an import, writes
every owner's events in one plain transaction and then ``announce``s one notice per owner.
How a notice travels:

* **PostgreSQL**: ``pg_notify`` right after the writing transaction commits, in a transaction
  of its own (``postgres._notify`` says why not inside it). PostgreSQL delivers it to every
  session listening on the channel, whichever server process it belongs to (``listener.py``
  holds one listening connection per process). The channel is named after the schema, so two
  deployments (or two test runs) sharing a database never hear each other.
* **SQLite**: one process owns the file, so the notice is an in-process callback, run after
  ``COMMIT``.

A notice is small: the owner and the first and last positions the transaction took. ``None``
in its place means "notices may have been missed" (the listener just (re)connected): every
owner should be treated as changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from .events import RecordedEvent

CHANNEL_SQL: Final = "'sync_changes_' || left(md5(current_schema()), 16)"
"""The channel name, computed by PostgreSQL in the session that sends or listens: one per schema,
and always shorter than the 63 bytes a channel name may have."""


@dataclass(frozen=True, slots=True)
class Committed:
    """One committed transaction's events of one owner: positions ``first`` to ``last``."""

    owner: UUID
    first: int
    last: int


Deliver = Callable[[Committed | None], None]
"""Receives each notice, in the event loop that watches; ``None``: notices may have been missed."""


def committed(owner: UUID, recorded: Sequence[RecordedEvent]) -> Committed | None:
    """The notice a transaction that recorded ``recorded`` sends (None when it wrote nothing)."""
    if not recorded:
        return None
    positions = [event.position for event in recorded]
    return Committed(owner, min(positions), max(positions))


def encode(notice: Committed) -> str:
    return f"{notice.owner.hex}:{notice.first}:{notice.last}"


def decode(payload: str) -> Committed | None:
    """The notice in ``payload``, or None for anything this version did not send."""
    parts = payload.split(":")
    if len(parts) != 3:
        return None
    try:
        return Committed(UUID(hex=parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None
