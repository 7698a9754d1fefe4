"""``GET /v1/events``, ``GET /v1/{collection}/{id}/history`` and time travel,
``GET /v1/{collection}/{id}?as_of=…|version=…`` (PROTOCOL.md, "Audit and replay").

Handlers only translate HTTP (parameters checked here, 400 as problem+json); the reads are in
``sync_server/audit.py``, scoped by the authenticated user: another user's entity is a 404 just
like a missing one. Time travel is answered by ``entity_as_of``, which the REST item route
(``routes/entities.py``) hands its request to when it carries ``as_of`` or ``version``.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from event_store import MAX_POSITION, MAX_VERSION
from projections.rows import TABLES
from schemas.audit import EventsPage, HistoryPage
from schemas.moments import parse_moment
from schemas.values import parse_uuid

from .. import audit
from ..api_spec import Body, Operation, Param, Reply
from ..auth import principal_of
from ..problems import Problem
from ..query_params import bad_parameter, bounded_int, refuse_unknown
from ..request_body import json_response
from ..resources import COLLECTIONS, Collection
from ..services import services_of
from . import entities

_EVENTS_LIMIT = 1000
_HISTORY_LIMIT = 5000


def _uuid(raw: str) -> UUID | None:
    try:
        return parse_uuid(raw)
    except ValueError:
        return None


# -- /v1/events ---------------------------------------------------------------------------------


async def events_endpoint(request: Request) -> Response:
    refuse_unknown(request, ("after", "entity", "id", "limit"))
    after = bounded_int(request, "after", 0, 0, MAX_POSITION)
    limit = bounded_int(request, "limit", 100, 1, _EVENTS_LIMIT)
    entity = request.query_params.get("entity") or None
    if entity is not None and entity not in TABLES:
        raise bad_parameter("entity", f"unknown entity {entity!r}; known: {', '.join(TABLES)}")
    raw_id = request.query_params.get("id") or None
    id_ = None if raw_id is None else _uuid(raw_id)
    if raw_id is not None and id_ is None:
        raise bad_parameter("id", "must be a UUID")
    owner = principal_of(request).user.id
    page = await run_in_threadpool(
        audit.events, services_of(request).store, owner, after, limit, entity, id_
    )
    return json_response(page)


# -- history ------------------------------------------------------------------------------------


def history_endpoint(collection: Collection) -> entities.Endpoint:
    async def history(request: Request) -> Response:
        refuse_unknown(request, ("after", "limit"))
        id_ = entities.path_id(request, collection)
        after = bounded_int(request, "after", 0, 0, MAX_VERSION)
        limit = bounded_int(request, "limit", 500, 1, _HISTORY_LIMIT)
        owner = principal_of(request).user.id
        page = await run_in_threadpool(
            audit.history, services_of(request).store, owner, collection.entity, id_, after, limit
        )
        if page is None:
            raise Problem(404, "not_found", f"{collection.entity} {id_} not found")
        return json_response(page)

    return history


# -- time travel --------------------------------------------------------------------------------


def _moment(request: Request) -> tuple[datetime | None, int | None]:
    refuse_unknown(request, entities.TIME_TRAVEL_PARAMS)
    raw_time = request.query_params.get("as_of")
    if raw_time is not None and "version" in request.query_params:
        raise bad_parameter("as_of", "give as_of or version, not both")
    as_of = None
    if raw_time is not None:
        try:
            as_of = parse_moment(raw_time)
        except ValueError as error:
            raise bad_parameter("as_of", str(error)) from None
    version = None
    if "version" in request.query_params:
        version = bounded_int(request, "version", 1, 1, MAX_VERSION)
    return as_of, version


async def entity_as_of(request: Request) -> Response:
    """``GET /v1/{collection}/{id}?as_of=<RFC 3339>|version=<n>``: the entity as it was then,
    rebuilt from the log (not read from the read table); without either, as it is now, still
    rebuilt from the log. Answered like the REST item: the row, its ``ETag``; 404 when the
    entity did not exist then or was deleted by then."""
    collection = COLLECTIONS[request.scope["path"].split("/")[2]]
    return await _as_of(request, collection)


async def _as_of(request: Request, collection: Collection) -> Response:
    id_ = entities.path_id(request, collection)
    as_of, version = _moment(request)
    owner = principal_of(request).user.id
    store = services_of(request).store
    row = await run_in_threadpool(
        lambda: audit.state(store, owner, collection.entity, id_, as_of=as_of, version=version)
    )
    if row is None or row.deleted:
        moment = (
            f"at {request.query_params['as_of']}"
            if as_of is not None
            else f"at version {version}"
            if version is not None
            else "now"
        )
        state = "was deleted" if row is not None else "did not exist"
        raise Problem(404, "not_found", f"{collection.entity} {id_} {state} {moment}")
    return entities.row_response(row)


async def _time_travel(request: Request, collection: Collection) -> Response:
    return await entity_as_of(request)


# The REST item route hands ?as_of= and ?version= requests over (its own collection is the one
# in the path, which entity_as_of reads).
entities.time_travel = _time_travel


routes = [
    Route("/v1/events", events_endpoint, methods=["GET"]),
    *(
        Route(f"{c.path}/{{id}}/history", history_endpoint(c), methods=["GET"])
        for c in COLLECTIONS.values()
    ),
]


# -- the OpenAPI description ---------------------------------------------------------------------

operations = [
    Operation(
        "GET",
        "/v1/events",
        "The user's events, in log order",
        "audit",
        {200: Reply("A page of events; pass next as after while has_more", Body(EventsPage))},
        params=(
            Param("after", "query", {"type": "integer", "minimum": 0}, "a position (0: start)"),
            Param("entity", "query", {"enum": list(TABLES)}, "only this entity type"),
            Param("id", "query", {"type": "string", "format": "uuid"}, "only this entity"),
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": _EVENTS_LIMIT}),
        ),
        problems=(400,),
        description="Raw events with who caused them and from where (actor, client_id, "
        "device, op_id, request_id, client_ts, source); data in the current schema version.",
    ),
    *(
        Operation(
            "GET",
            f"{c.path}/{{id}}/history",
            f"Every version of a {c.entity}",
            c.name,
            {200: Reply("Versions, oldest first", Body(HistoryPage))},
            params=(
                Param("after", "query", {"type": "integer", "minimum": 0}, "a version"),
                Param(
                    "limit", "query", {"type": "integer", "minimum": 1, "maximum": _HISTORY_LIMIT}
                ),
            ),
            problems=(400, 404),
            description="Each version with its type, time, actor, client and device, the "
            "event's data, and the fields it changed as [before, after], derived ones included.",
        )
        for c in COLLECTIONS.values()
    ),
]
