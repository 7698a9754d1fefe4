"""What a poke says: which commits it stands for, and the cursor a client may pull from.

A stream remembers the cursor it last announced (at first: the client's own ``since``, or
the head of the user's changes when the stream opened). A poke carries a cursor from which a
pull returns every change since that announcement, then the stream moves its announcement
past the poke's commits. So a client that opened the stream with its own cursor (or pulled
once after opening it) can always pull from a poke's cursor and never skip a change: at worst
it sees a change twice, which an upsert by version absorbs. Sending the *latest* cursor would
be wrong: a client that pulled from it would skip the very change it was poked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from event_store.changes import Committed

from ..pull_cursors import Cursor


@dataclass(frozen=True, slots=True)
class Poke:
    """Commits a connection has not been told about yet, coalesced into one."""

    first: int | None
    """The lowest position they took; None: unknown (notices may have been missed), so
    everything since the last announcement counts."""
    last: int | None
    """The highest position known to be among them (None: none known)."""

    @classmethod
    def of(cls, notice: Committed | None) -> Poke:
        return cls(None, None) if notice is None else cls(notice.first, notice.last)

    def merge(self, other: Poke) -> Poke:
        first = None if self.first is None or other.first is None else min(self.first, other.first)
        lasts = [n for n in (self.last, other.last) if n is not None]
        return Poke(first, max(lasts) if lasts else None)


def announce(announced: Cursor, poke: Poke) -> tuple[Cursor, Cursor]:
    """The cursor to send with ``poke``, and the stream's announcement afterwards."""
    send = announced
    if poke.first is not None and poke.first - 1 < announced.position:
        # A commit the announcement already counted (it raced the stream's opening): go back.
        send = Cursor(poke.first - 1, announced.epoch, announced.entities)
    after = announced
    if poke.last is not None and poke.last > announced.position:
        after = Cursor(poke.last, announced.epoch, announced.entities)
    return send, after
