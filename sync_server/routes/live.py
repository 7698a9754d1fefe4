"""``GET /v1/sync/stream``: Server-Sent Events that poke a client when its user's data changed
(``live/stream.py`` describes the events).

``since`` (optional) is the client's own pull cursor. With it, a client that is already behind
is poked at once, and every poke's cursor follows on from it; without it, pokes count from the
moment the stream opened, and the client should pull from its own cursor once it is open.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import pull_cursors
from ..api_spec import Operation, Param, Reply
from ..auth import principal_of
from ..live import HubClosed, live_of
from ..live.stream import EventStream, events
from ..problems import Problem
from ..pull import head_cursor
from ..query_params import refuse_unknown
from ..services import services_of
from .sync import since_cursor


async def stream_endpoint(request: Request) -> Response:
    services = services_of(request)
    live = live_of(request)
    owner = principal_of(request).user.id
    refuse_unknown(request, ["since"])
    raw = request.query_params.get("since")
    since = since_cursor(request, services, raw) if raw else None
    try:
        subscriber = live.hub.subscribe(owner)
    except HubClosed:
        raise Problem(
            503,
            "unavailable",
            "the server is shutting down; reconnect",
            headers={"Retry-After": "1"},
        ) from None
    try:
        # Read after subscribing: a commit in between is both in the head and poked.
        head = await run_in_threadpool(head_cursor, services.store, owner)
    except BaseException:
        live.hub.unsubscribe(subscriber)
        raise
    first = None
    announced = pull_cursors.Cursor(head.position, head.epoch)
    if since is not None:
        current = pull_cursors.Cursor(head.position, head.epoch, since.entities)
        if since.epoch != head.epoch or head.position > since.position:
            # Behind already (or behind a rebuild, which the pull answers with a reset).
            first, announced = since, current
        else:
            announced = since

    def encode(cursor: pull_cursors.Cursor) -> str:
        return pull_cursors.encode(services.cursor_key, owner, cursor)

    return EventStream(
        events(subscriber, announced, encode, live.timing, first),
        on_close=lambda: live.hub.unsubscribe(subscriber),
    )


EVENT_SCHEMA = {
    "description": "One event of the stream (comments, such as heartbeats, are not events)",
    "type": "object",
    "properties": {
        "event": {"enum": ["poke", "bye"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": '{"cursor": "…"} for a poke, {"reason": "…"} for a bye',
        },
    },
    "required": ["event", "data"],
}

routes = [Route("/v1/sync/stream", stream_endpoint, methods=["GET"])]

operations = [
    Operation(
        "GET",
        "/v1/sync/stream",
        "Server-Sent Events: a poke whenever this user's data changes",
        "sync",
        {
            200: Reply(
                'An event stream: `: open`; `event: poke` with `data: {"cursor": "…"}` '
                "(pulling from it never skips a change); `: heartbeat`; `event: bye` with "
                '`data: {"reason": "replaced" | "idle" | "shutdown"}` before the server ends it',
                media_type="text/event-stream",
                schema=EVENT_SCHEMA,
            )
        },
        params=(
            Param(
                "since",
                "query",
                {"type": "string"},
                "the client's pull cursor: a client already behind is poked at once, and "
                "every poke's cursor follows on from it",
            ),
        ),
        problems=(400,),
    ),
]
