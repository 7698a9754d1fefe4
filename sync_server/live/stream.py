"""The Server-Sent Events of ``GET /v1/sync/stream``.

On the wire (``text/event-stream``):

* ``: open`` once the stream is subscribed: every commit from then on is announced;
* ``event: poke`` / ``data: {"cursor": "…"}`` when the user's data changed (``pokes.py`` says
  which cursor, and why a client can always pull from it);
* ``: heartbeat`` every ``heartbeat`` seconds with nothing else to say, so that proxies keep
  the connection open and a dead client is noticed;
* ``event: bye`` / ``data: {"reason": "replaced" | "idle" | "shutdown"}`` just before the
  server ends the stream (``hub.py`` says what each reason means).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import msgspec
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..pull_cursors import Cursor
from .hub import IDLE, Subscriber
from .pokes import announce

OPEN = b": open\n\n"
HEARTBEAT = b": heartbeat\n\n"
HEADERS = {
    "Cache-Control": "no-cache",
    # Proxies that buffer responses (nginx) would hold the pokes back.
    "X-Accel-Buffering": "no",
}

_encode = msgspec.json.Encoder().encode


def event(name: str, data: dict[str, str]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


@dataclass(frozen=True)
class Timing:
    heartbeat: float
    idle_timeout: float
    """A stream that had no poke for this long is closed."""


async def events(
    subscriber: Subscriber,
    announced: Cursor,
    encode: Callable[[Cursor], str],
    timing: Timing,
    first: Cursor | None = None,
) -> AsyncIterator[bytes]:
    """The stream of one subscriber, from ``announced`` on, until it is closed or idle;
    ``first``, if given, is poked at once (the client is behind already)."""
    yield OPEN
    if first is not None:
        yield event("poke", {"cursor": encode(first)})
    now = time.monotonic()
    idle_at, beat_at = now + timing.idle_timeout, now + timing.heartbeat
    while True:
        now = time.monotonic()
        if now >= idle_at:
            subscriber.close(IDLE)
        elif now >= beat_at:
            yield HEARTBEAT
            beat_at = now + timing.heartbeat
        poke = await subscriber.next(min(idle_at, beat_at) - now)
        if subscriber.closed is not None:
            yield event("bye", {"reason": subscriber.closed})
            return
        if poke is not None:
            send, announced = announce(announced, poke)
            yield event("poke", {"cursor": encode(send)})
            now = time.monotonic()
            idle_at, beat_at = now + timing.idle_timeout, now + timing.heartbeat


class EventStream(StreamingResponse):
    """A streaming response that runs ``on_close`` however it ends (the client went away,
    the stream ended, the task was cancelled)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(content, headers=HEADERS)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()
