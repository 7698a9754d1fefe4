"""``GET /v1/events``, ``GET /v1/{collection}/{id}/history`` and time travel,
``GET /v1/{collection}/{id}?as_of=…|version=…`` (PROTOCOL.md, "Audit and replay").

Handlers only translate HTTP (parameters checked here, 400 as problem+json); the reads are in
``sync_server/audit.py``, scoped by the authenticated user: another user's entity is a 404 just
like a missing one.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from projections.rows import TABLES

from .. import audit
from ..auth import principal_of
from ..http import bad_parameter, int_parameter, json_response, rfc3339
from ..problems import Problem
from ..services import Services

_LAST_POSITION = 2**63 - 1
_MAX_VERSION = 2**31 - 1


def _store(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _uuid(raw: str) -> UUID | None:
    try:
        return UUID(raw)
    except ValueError:
        return None


def _not_found(detail: str) -> Problem:
    return Problem(404, "not_found", detail)


class _Collection(Convertor[str]):
    """Only the four collections match ``{collection:collection}``: any other path falls
    through to the routes (and the 404 / 405) it would have had."""

    regex = "|".join(audit.COLLECTIONS)

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("collection", _Collection())


def _target(request: Request) -> tuple[str, UUID]:
    """The entity a ``/v1/{collection}/{id}…`` path names; 404 for anything that cannot be one.

    The collection comes from the path parameter, or from the path itself when another route
    (``/v1/shows/{id}``) hands its request over."""
    collection = request.path_params.get("collection") or request.scope["path"].split("/")[2]
    entity = audit.COLLECTIONS.get(collection)
    if entity is None:
        raise _not_found(f"no collection {collection!r}; known: {', '.join(audit.COLLECTIONS)}")
    id_ = _uuid(request.path_params["id"])
    if id_ is None:
        raise _not_found(f"no {entity} {request.path_params['id']!r}: ids are UUIDs")
    return entity, id_


async def events_endpoint(request: Request) -> Response:
    after = int_parameter(request, "after", 0, 0, _LAST_POSITION)
    limit = int_parameter(request, "limit", 100, 1, 1000)
    entity = request.query_params.get("entity") or None
    if entity is not None and entity not in TABLES:
        raise bad_parameter("entity", f"unknown entity {entity!r}; known: {', '.join(TABLES)}")
    raw_id = request.query_params.get("id") or None
    id_ = None if raw_id is None else _uuid(raw_id)
    if raw_id is not None and id_ is None:
        raise bad_parameter("id", "must be a UUID")
    owner = principal_of(request).user.id
    page = await run_in_threadpool(
        audit.events, _store(request).store, owner, after, limit, entity, id_
    )
    return json_response(page)


async def history_endpoint(request: Request) -> Response:
    entity, id_ = _target(request)
    after = int_parameter(request, "after", 0, 0, _MAX_VERSION)
    limit = int_parameter(request, "limit", 500, 1, 5000)
    owner = principal_of(request).user.id
    page = await run_in_threadpool(
        audit.history, _store(request).store, owner, entity, id_, after, limit
    )
    if page is None:
        raise _not_found(f"no {entity} {id_}")
    return json_response(page)


def _moment(request: Request) -> tuple[datetime | None, int | None]:
    raw_time = request.query_params.get("as_of")
    raw_version = request.query_params.get("version")
    if raw_time is not None and raw_version is not None:
        raise bad_parameter("as_of", "give as_of or version, not both")
    as_of = None
    if raw_time is not None:
        try:
            as_of = rfc3339(raw_time)
        except ValueError as error:
            raise bad_parameter("as_of", str(error)) from None
    version = None
    if raw_version is not None:
        version = int_parameter(request, "version", 1, 1, _MAX_VERSION)
    return as_of, version


async def entity_as_of(request: Request) -> Response:
    """The entity as it was at ``as_of`` (RFC 3339) or just after its ``version``, rebuilt from
    the log; without either, as it is now (still rebuilt from the log). A deleted entity comes
    as its tombstone, with ``deleted_at``."""
    entity, id_ = _target(request)
    as_of, version = _moment(request)
    owner = principal_of(request).user.id
    body = await run_in_threadpool(
        lambda: audit.state(_store(request).store, owner, entity, id_, as_of=as_of, version=version)
    )
    if body is None:
        when = (
            f" at {request.query_params['as_of']}"
            if as_of is not None
            else f" with a version {version}"
            if version is not None
            else ""
        )
        raise _not_found(f"no {entity} {id_}{when}")
    return Response(body, media_type="application/json")


routes = [
    Route("/v1/events", events_endpoint, methods=["GET"]),
    Route("/v1/{collection:collection}/{id}/history", history_endpoint, methods=["GET"]),
    Route("/v1/{collection:collection}/{id}", entity_as_of, methods=["GET"]),
]
