"""The in-memory fan-out of one server process: change notices to that process's connections.

Everything here runs in the process's event loop, so it needs no lock. Delivering never waits
for a connection: it merges the notice into the connection's one pending ``Poke`` and wakes it.
A slow client therefore holds at most one pending poke, however many commits it missed, and
never delays anyone else; it learns of them all at once when it next reads.
"""

from __future__ import annotations

import asyncio
from typing import Final
from uuid import UUID

from event_store.changes import Committed

from .pokes import Poke

REPLACED: Final = "replaced"
"""Closed because its user opened more connections than allowed (the oldest goes)."""
SHUTDOWN: Final = "shutdown"
"""Closed because the server process is stopping (reconnect, perhaps to another process)."""
IDLE: Final = "idle"
"""Closed because nothing happened for a long time (reconnect if still interested)."""


class HubClosed(Exception):
    """The process is shutting down and takes no new connections."""


class Subscriber:
    """One live connection of one user: an open stream, or a long poll that waits."""

    def __init__(self, owner: UUID) -> None:
        self.owner = owner
        self.closed: str | None = None
        self._pending: Poke | None = None
        self._ready = asyncio.Event()

    def offer(self, poke: Poke) -> None:
        if self.closed is None:
            self._pending = poke if self._pending is None else self._pending.merge(poke)
            self._ready.set()

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
            self._pending = None
            self._ready.set()

    async def next(self, timeout: float) -> Poke | None:
        """What was offered since the last call, coalesced; None when nothing was within
        ``timeout`` seconds, or when the subscriber is closed (see ``closed``)."""
        if self._pending is None and self.closed is None and timeout > 0:
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                pass
        self._ready.clear()
        poke, self._pending = self._pending, None
        return poke


class Hub:
    def __init__(self, max_per_owner: int) -> None:
        self.max_per_owner = max_per_owner
        self.closing = False
        # Insertion-ordered: the first of an owner's subscribers is its oldest.
        self._owners: dict[UUID, dict[Subscriber, None]] = {}

    def subscribe(self, owner: UUID) -> Subscriber:
        """A new subscriber of ``owner``: it is offered every notice of that owner from now on.

        If the owner now has more than ``max_per_owner``, the oldest is closed.
        """
        if self.closing:
            raise HubClosed
        subscriber = Subscriber(owner)
        mine = self._owners.setdefault(owner, {})
        mine[subscriber] = None
        while len(mine) > self.max_per_owner:
            oldest = next(iter(mine))
            self.unsubscribe(oldest)
            oldest.close(REPLACED)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        mine = self._owners.get(subscriber.owner)
        if mine is not None:
            mine.pop(subscriber, None)
            if not mine:
                del self._owners[subscriber.owner]

    def deliver(self, notice: Committed | None) -> None:
        """Offer ``notice`` to its owner's subscribers; ``None`` (notices may have been
        missed) to every subscriber."""
        poke = Poke.of(notice)
        if notice is None:
            targets = [s for mine in self._owners.values() for s in mine]
        else:
            targets = list(self._owners.get(notice.owner, ()))
        for subscriber in targets:
            subscriber.offer(poke)

    def close_all(self, reason: str) -> None:
        """Close every subscriber and take no new ones (the process is stopping)."""
        self.closing = True
        for mine in list(self._owners.values()):
            for subscriber in list(mine):
                self.unsubscribe(subscriber)
                subscriber.close(reason)

    def count(self, owner: UUID | None = None) -> int:
        if owner is not None:
            return len(self._owners.get(owner, ()))
        return sum(len(mine) for mine in self._owners.values())
