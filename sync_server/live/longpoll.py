"""``GET /v1/sync/pull?since=…&wait=N``: a pull that waits up to N seconds for a change.

The order of the steps is what makes it safe: subscribe first, then pull. A commit after the
subscription wakes the wait; a commit before it is in the pull. So a change that lands between
the client's last pull and this request is never missed, whichever of the two it races.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from uuid import UUID

from ..pull import WirePage
from .hub import Hub, HubClosed


def worth_answering(page: WirePage) -> bool:
    return bool(page.changes) or page.has_more or page.reset


async def long_poll(
    hub: Hub, owner: UUID, fetch: Callable[[], Awaitable[WirePage]], wait: float
) -> WirePage:
    """The first page with something in it, or the empty page once ``wait`` seconds passed
    (or the process began to shut down, or the user opened too many live connections)."""
    try:
        subscriber = hub.subscribe(owner)
    except HubClosed:
        return await fetch()
    try:
        deadline = time.monotonic() + wait
        while True:
            page = await fetch()
            remaining = deadline - time.monotonic()
            if worth_answering(page) or remaining <= 0:
                return page
            # A poke for entities this pull does not cover wakes it too; it then waits on.
            poke = await subscriber.next(remaining)
            if poke is None:
                return page
    finally:
        hub.unsubscribe(subscriber)
