"""``POST /v1/sync/push`` and ``GET /v1/sync/pull`` (PROTOCOL.md, "Push" and "Pull"; ``wait=``
makes a pull a long poll, ``live/longpoll.py``).

Handlers only translate HTTP: the envelope is checked here (400/413/415/422, nothing written),
the work is done by ``push.py`` and ``pull.py`` in a worker thread.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Awaitable

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from schemas.moments import parse_moment
from schemas.ops import LooseRequest, PushRequest, read_ops
from schemas.pull import PullPage
from schemas.results import OpError, PushResponse

from .. import metrics, pull_cursors
from ..api_spec import Body, Operation, Param, Reply
from ..auth import principal_of
from ..live import live_of
from ..live.longpoll import long_poll
from ..problems import Problem
from ..pull import ENTITIES, Since, WirePage, pull
from ..push import Origin, push
from ..query_params import bad_parameter, bounded_int, refuse_unknown
from ..request_body import convert, json_response, parse_json, read_json_body, wrong_shape
from ..services import Services, services_of

log = logging.getLogger("sync_server.sync")


async def push_endpoint(request: Request) -> Response:
    services = services_of(request)
    settings = services.settings
    body, unreadable = await read_push(request, settings.max_body_bytes)
    if len(body.ops) > settings.max_ops_per_batch:
        raise Problem(
            413,
            "too_many_ops",
            f"a batch holds at most {settings.max_ops_per_batch} ops; "
            f"this one has {len(body.ops)}: split it",
        )
    principal = principal_of(request)
    origin = Origin(
        owner=principal.user.id,
        client_id=body.client_id,
        device=str(principal.session_id),
        request_id=getattr(request.state, "request_id", None),
    )
    pushed = await run_in_threadpool(
        functools.partial(push, unreadable=unreadable), services.store, body, origin
    )
    metrics.record_ops(origin.source, pushed.results, len(pushed.events))
    statuses = Counter(result.status for result in pushed.results)
    if statuses["conflict"] or statuses["rejected"]:
        # One line per push, not per op: an offline queue of a thousand stale ops must not
        # flood the log.
        log.warning(
            "push refused ops",
            extra={"ops": len(body.ops), "atomic": body.atomic, **dict(statuses)},
        )
    cursor = pull_cursors.encode(services.cursor_key, origin.owner, pushed.cursor)
    return json_response(PushResponse(pushed.results, cursor))


async def read_push(request: Request, max_bytes: int) -> tuple[PushRequest, dict[int, OpError]]:
    """The push envelope, and the answers of the ops in it that cannot be read as ops (by
    index; ``schemas.ops.read_ops``). A good body is read in one pass."""
    body = await read_json_body(request, max_bytes)
    try:
        return _decode_push(body), {}
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass
    loose = convert(parse_json(body), LooseRequest)
    try:
        return read_ops(loose)
    except msgspec.ValidationError as error:
        raise wrong_shape(error) from None


_decode_push = msgspec.json.Decoder(PushRequest).decode


def since_cursor(request: Request, services: Services, raw: str) -> pull_cursors.Cursor:
    """The cursor a ``since`` parameter holds, or a 400."""
    try:
        return pull_cursors.decode(services.cursor_key, principal_of(request).user.id, raw)
    except pull_cursors.CursorError as error:
        raise bad_parameter("since", str(error)) from None


def _since(request: Request, services: Services) -> Since:
    raw = request.query_params.get("since")
    if raw is None or raw == "":
        return Since()
    if raw.startswith(pull_cursors.PREFIX + "."):
        return Since(cursor=since_cursor(request, services, raw))
    try:
        return Since(moment=parse_moment(raw))
    except ValueError as error:
        message = f"must be a cursor from this server, or a time that {error}"
        raise bad_parameter("since", message) from None


def _limit(request: Request, services: Services) -> int:
    settings = services.settings
    return bounded_int(request, "limit", settings.pull_default_limit, 1, settings.pull_max_limit)


def _wait(request: Request, services: Services) -> int:
    return bounded_int(request, "wait", 0, 0, services.settings.live_max_wait)


def _entities(request: Request) -> tuple[str, ...]:
    # ``entities=show&entities=cost`` asks for both, as ``entities=show,cost`` does: taking
    # only the last would answer a narrower pull than asked, and a cursor that skips the rest.
    names = [
        name.strip()
        for raw in request.query_params.getlist("entities")
        for name in raw.split(",")
        if name.strip()
    ]
    if not names:  # absent, empty, or separators only: no filter
        return ENTITIES
    unknown = [name for name in names if name not in ENTITIES]
    if unknown:
        raise bad_parameter(
            "entities", f"unknown entity {unknown[0]!r}; known: {', '.join(ENTITIES)}"
        )
    return tuple(name for name in ENTITIES if name in names)


PULL_PARAMETERS = ("since", "limit", "entities", "wait")


async def pull_endpoint(request: Request) -> Response:
    services = services_of(request)
    # A misspelt ``since`` ignored would send the whole history again.
    refuse_unknown(request, PULL_PARAMETERS, repeatable=["entities"])
    since = _since(request, services)
    limit = _limit(request, services)
    entities = _entities(request)
    wait = _wait(request, services)
    if since.cursor is not None and not set(entities) <= since.cursor.entities:
        raise bad_parameter(
            "since",
            "this cursor was issued for a pull of fewer entities; pulling more from it "
            "would skip their earlier changes (start those from the beginning)",
        )
    owner = principal_of(request).user.id

    def fetch() -> Awaitable[WirePage]:
        return run_in_threadpool(
            pull, services.store, services.cursor_key, owner, since, limit, entities
        )

    if wait:
        page = await long_poll(live_of(request).hub, owner, fetch, wait)
    else:
        page = await fetch()
    metrics.record_pull(len(page.changes))
    return json_response(page)


routes = [
    Route("/v1/sync/push", push_endpoint, methods=["POST"]),
    Route("/v1/sync/pull", pull_endpoint, methods=["GET"]),
]

operations = [
    Operation(
        "POST",
        "/v1/sync/push",
        "Push a batch of ops",
        "sync",
        {200: Reply("One result per op, in order, and a cursor", Body(PushResponse))},
        body=Body(PushRequest),
    ),
    Operation(
        "GET",
        "/v1/sync/pull",
        "Pull the changes since a cursor",
        "sync",
        {200: Reply("A page of changes", Body(PullPage))},
        params=(
            Param(
                "since",
                "query",
                {"type": "string"},
                "a cursor from an earlier pull or push, or an RFC 3339 time; omit for everything",
            ),
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 5000}),
            Param(
                "wait",
                "query",
                {"type": "integer", "minimum": 0, "maximum": 300},
                "seconds to hold the request until there is a change after the cursor (a long "
                "poll; at most SYNC_LIVE_MAX_WAIT, 60 by default); the empty page if none came",
            ),
            Param(
                "entities",
                "query",
                {"type": "string"},
                f"comma-separated subset of {', '.join(ENTITIES)}",
            ),
        ),
        problems=(400,),
    ),
]
