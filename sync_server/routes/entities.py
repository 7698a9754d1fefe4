"""``/v1/{shows,costs,workouts,inventory}``: the entity REST API (PROTOCOL.md, "Entity REST").

Reads come from the read tables; every write is one op through the push command path
(``commands.py``), answered with the row read back as a pull shows it. Versions travel as HTTP
entity tags: ``GET`` answers ``ETag: "<version>"`` (and 304 to a matching ``If-None-Match``),
``PATCH`` and ``DELETE`` take ``If-Match: "<version>"`` as the op's ``base_version``, so the
merge policy of push applies; without ``If-Match`` they write at the current version. Every
write takes an ``Idempotency-Key`` (``idempotency.py``): a retry answers what the first did.

A deleted entity is 404 everywhere here (pulls still carry its tombstone). Lists are keyset
pages pinned to the moment the listing began (``projections/listing.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final
from uuid import UUID, uuid4

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from event_store import MAX_VERSION
from projections import listing, tables
from projections.project import epoch
from projections.rows import ReadRow
from schemas.entities import CREATE, DELETE, UPDATE
from schemas.rows import row_type
from schemas.values import parse_uuid

from .. import list_cursors
from ..api_spec import Body, Operation, Param, Reply
from ..auth import principal_of
from ..commands import Write, etag, execute, read_row, refusal
from ..idempotency import HEADER, MAX_LENGTH, IdempotencyKey, claim, key_of, request_digest
from ..problems import FieldProblem, Problem
from ..pull_cursors import CursorError
from ..push import Origin
from ..query_params import bad_parameter, bounded_int, digits_in_range, refuse_unknown
from ..request_body import read_json
from ..resource_shapes import create_type, page_type, patch_type
from ..resources import COLLECTIONS, DEFAULT_LIMIT, MAX_LIMIT, Collection
from ..services import Services, services_of

TIME_TRAVEL_PARAMS: Final = ("as_of", "version")

Endpoint = Callable[[Request], Awaitable[Response]]
TimeTravel = Callable[[Request, Collection], Awaitable[Response]]


class ListBody(msgspec.Struct, frozen=True):
    items: list[msgspec.Raw]
    next_cursor: str | None
    has_more: bool


async def _no_time_travel(request: Request, collection: Collection) -> Response:
    raise bad_parameter("as_of", "reading an entity as it was is not available on this server")


time_travel: TimeTravel = _no_time_travel
"""What ``GET …/{id}?as_of=…`` or ``?version=…`` answers: the audit routes set it."""


def _origin(request: Request) -> Origin:
    principal = principal_of(request)
    return Origin(
        owner=principal.user.id,
        client_id=principal.session_id,
        device=str(principal.session_id),
        request_id=getattr(request.state, "request_id", None),
        source="api",
    )


def path_id(request: Request, collection: Collection) -> UUID:
    """The id in the path; an id that cannot exist is simply not found."""
    try:
        return parse_uuid(request.path_params["id"])
    except ValueError:
        raise _not_found(collection, request.path_params["id"]) from None


def _not_found(collection: Collection, id_: object) -> Problem:
    return Problem(404, "not_found", f"{collection.entity} {id_} not found")


def row_response(
    row: ReadRow, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        tables.body_of(row),
        status_code=status,
        media_type="application/json",
        headers={"ETag": etag(row.version), **(headers or {})},
    )


def _if_match(request: Request) -> int | None:
    """The version ``If-Match`` names; None when absent or ``*`` (write at the current one)."""
    raw = request.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    tag = raw.strip()
    quoted = len(tag) > 2 and tag[0] == tag[-1] == '"'
    version = digits_in_range(tag[1:-1], 0, MAX_VERSION) if quoted else None
    if version is None:
        raise Problem(
            400,
            "invalid_header",
            'If-Match must be one entity tag from an ETag of this API, such as "3"',
        )
    return version


def _not_modified(request: Request, version: int) -> bool:
    raw = request.headers.get("if-none-match")
    if raw is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in raw.split(",")}
    return "*" in tags or etag(version) in tags


# -- list ----------------------------------------------------------------------------------------


def list_endpoint(collection: Collection) -> Endpoint:
    async def list_items(request: Request) -> Response:
        services = services_of(request)
        refuse_unknown(request, ["limit", "cursor", "sort", *(f.name for f in collection.filters)])
        limit = bounded_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        sort = request.query_params.get("sort", collection.default_sort)
        if sort not in collection.sort_values:
            raise bad_parameter("sort", f"must be one of {', '.join(collection.sort_values)}")
        conditions = []
        given: list[tuple[str, object]] = []
        for filter_ in collection.filters:
            raw = request.query_params.get(filter_.name)
            if raw is not None:
                value = filter_.value(raw)
                conditions.append(listing.Condition(filter_.column, filter_.op, value))
                given.append((filter_.name, value))
        digest = list_cursors.query_digest(collection.name, sort, given)
        owner = principal_of(request).user.id
        after = _after(request, services, owner, digest)
        order = listing.Order(sort.lstrip("-"), descending=sort.startswith("-"))  # type: ignore[arg-type]

        def read() -> tuple[listing.ListPage, int]:
            with services.store.snapshot() as sql:
                current = epoch(sql)
                if after is not None and after[1] != current:
                    raise listing.ListingExpired("the read tables were rebuilt since")
                page = listing.list_page(
                    sql,
                    owner,
                    collection.table,
                    conditions,
                    order,
                    limit,
                    None if after is None else after[0],
                    services.store.registry,
                )
                return page, current

        try:
            page, current = await run_in_threadpool(read)
        except listing.ListingExpired as expired:
            raise Problem(
                410, "cursor_expired", f"{expired}; start the listing again without a cursor"
            ) from None
        next_cursor = None
        if page.has_more and page.items:
            last = page.items[-1]
            cursor = list_cursors.ListCursor(digest, current, page.pinned, last.key, last.id)
            next_cursor = list_cursors.encode(services.cursor_key, owner, cursor)
        body = ListBody(
            [msgspec.Raw(item.body.encode()) for item in page.items], next_cursor, page.has_more
        )
        return Response(msgspec.json.encode(body), media_type="application/json")

    return list_items


def _after(
    request: Request, services: Services, owner: UUID, digest: str
) -> tuple[listing.After, int] | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    try:
        cursor = list_cursors.decode(services.cursor_key, owner, raw)
    except CursorError as error:
        raise bad_parameter("cursor", str(error)) from None
    if cursor.query != digest:
        raise bad_parameter(
            "cursor", "this cursor belongs to a listing with another sort or other filters"
        )
    return cursor.after, cursor.epoch


# -- one entity ----------------------------------------------------------------------------------


def get_endpoint(collection: Collection) -> Endpoint:
    async def get_item(request: Request) -> Response:
        if any(name in request.query_params for name in TIME_TRAVEL_PARAMS):
            return await time_travel(request, collection)
        refuse_unknown(request, TIME_TRAVEL_PARAMS)
        id_ = path_id(request, collection)
        owner = principal_of(request).user.id
        store = services_of(request).store
        row = await run_in_threadpool(read_row, store, owner, collection.table, id_)
        if row is None or row.deleted:
            raise _not_found(collection, id_)
        if _not_modified(request, row.version):
            return Response(status_code=304, headers={"ETag": etag(row.version)})
        return row_response(row)

    return get_item


async def _write(request: Request, collection: Collection, write: Write) -> ReadRow:
    """Run ``write``; the row read back when applied, or the problem that says why not."""
    store = services_of(request).store
    origin = _origin(request)
    result = await run_in_threadpool(execute, store, origin, write)
    row = await run_in_threadpool(read_row, store, origin.owner, collection.table, write.id)
    if result.status != "applied":
        raise refusal(result, write, row)
    if row is None or row.deleted:
        # Applied, then deleted by someone else before it could be read back.
        raise _not_found(collection, write.id)
    return row


async def _op_id(
    request: Request, key: IdempotencyKey | None, sent: object, base: int | None
) -> UUID:
    """The op's id: the key's once the key is claimed for this very request, else a fresh one.
    Called once the request has passed every check of its own, so a refused one claims nothing.
    """
    if key is None:
        return uuid4()
    digest = request_digest(request.method, request.url.path, base, sent)
    owner = principal_of(request).user.id
    await run_in_threadpool(claim, services_of(request).store, owner, key, digest)
    return key.op_id


async def _body(request: Request) -> dict[str, Any]:
    limit = services_of(request).settings.max_body_bytes
    return await read_json(request, dict[str, Any], limit)


def create_endpoint(collection: Collection) -> Endpoint:
    async def create_item(request: Request) -> Response:
        refuse_unknown(request, ())
        key = key_of(request)
        data = await _body(request)
        sent = dict(data)
        given = "id" in data
        raw_id = data.pop("id", None)
        try:
            if given:
                id_ = parse_uuid(raw_id)
            else:
                # A retry must create the same entity, so a keyed create's id is the key's.
                id_ = uuid4() if key is None else key.entity_id(principal_of(request).user.id)
        except (TypeError, ValueError, AttributeError):
            raise Problem(
                422,
                "validation_failed",
                "id must be a UUID",
                errors=[FieldProblem("id", "must be a UUID")],
            ) from None
        op_id = await _op_id(request, key, sent, None)
        write = Write(collection.entity, collection.table, id_, CREATE, data, op_id=op_id)
        row = await _write(request, collection, write)
        return row_response(row, 201, {"Location": f"{collection.path}/{row.id}"})

    return create_item


def update_endpoint(collection: Collection) -> Endpoint:
    async def update_item(request: Request) -> Response:
        refuse_unknown(request, ())
        key = key_of(request)
        id_ = path_id(request, collection)
        base = _if_match(request)
        data = await _body(request)
        op_id = await _op_id(request, key, data, base)
        write = Write(collection.entity, collection.table, id_, UPDATE, data, base, op_id)
        return row_response(await _write(request, collection, write))

    return update_item


def delete_endpoint(collection: Collection) -> Endpoint:
    async def delete_item(request: Request) -> Response:
        refuse_unknown(request, ())
        key = key_of(request)
        id_ = path_id(request, collection)
        base = _if_match(request)
        op_id = await _op_id(request, key, None, base)
        write = Write(collection.entity, collection.table, id_, DELETE, {}, base, op_id)
        store = services_of(request).store
        origin = _origin(request)
        result = await run_in_threadpool(execute, store, origin, write)
        if result.status != "applied":
            row = await run_in_threadpool(read_row, store, origin.owner, collection.table, id_)
            raise refusal(result, write, row)
        return Response(status_code=204)

    return delete_item


def action_endpoint(collection: Collection, action: str) -> Endpoint:
    async def act(request: Request) -> Response:
        refuse_unknown(request, ())
        key = key_of(request)
        id_ = path_id(request, collection)
        data = await _body(request)
        op_id = await _op_id(request, key, data, None)
        write = Write(collection.entity, collection.table, id_, action, data, op_id=op_id)
        return row_response(await _write(request, collection, write))

    return act


_CRUD: Final[tuple[tuple[str, str, Callable[[Collection], Endpoint], str], ...]] = (
    ("", "GET", list_endpoint, "list"),
    ("", "POST", create_endpoint, "create"),
    ("/{id}", "GET", get_endpoint, "get"),
    ("/{id}", "PATCH", update_endpoint, "update"),
    ("/{id}", "DELETE", delete_endpoint, "delete"),
)


def build_routes() -> list[Route]:
    routes: list[Route] = []
    for collection in COLLECTIONS.values():
        for suffix, method, endpoint, name in _CRUD:
            routes.append(
                Route(
                    collection.path + suffix,
                    endpoint(collection),
                    methods=[method],
                    name=f"{collection.name}_{name}",
                )
            )
        for action in collection.actions:
            routes.append(
                Route(
                    f"{collection.path}/{{id}}/{action.path}",
                    action_endpoint(collection, action.action),
                    methods=["POST"],
                    name=f"{collection.name}_{action.path}",
                )
            )
    return routes


routes = build_routes()


# -- the OpenAPI description ---------------------------------------------------------------------

_ETAG = {"ETag": 'The entity\'s version as an entity tag ("3"): send it back in If-Match'}
_IF_MATCH = Param(
    "If-Match",
    "header",
    {"type": "string"},
    'The version the change is based on ("3"), as ETag gave it: the merge policy of push '
    "applies; without it the write is unconditional",
)


_IDEMPOTENCY_KEY = Param(
    HEADER,
    "header",
    {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH, "pattern": "^[!-~]+$"},
    "Any string you choose for this request (a UUID will do), at most 255 visible ASCII "
    "characters, per user. A retry with the same key applies nothing again and answers what the "
    "first request did: its status, and the entity as it is now (a create without an id creates "
    "the same id). The same key with another method, path, If-Match or body is 422 "
    "idempotency_key_reused. Keys are kept for good.",
)


def _collection_operations(collection: Collection) -> list[Operation]:
    row = Body(row_type(collection.entity))
    one = f"{collection.path}/{{id}}"
    entity = collection.entity
    listing_params = [
        Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
        Param("cursor", "query", {"type": "string"}, "next_cursor of the previous page"),
        Param(
            "sort",
            "query",
            {"enum": list(collection.sort_values), "default": collection.default_sort},
            "a column, - in front for descending",
        ),
        *(Param(f.name, "query", f.schema, f.description) for f in collection.filters),
    ]
    operations = [
        Operation(
            "GET",
            collection.path,
            f"List {collection.name}",
            collection.name,
            {
                200: Reply(
                    "A page; follow next_cursor while has_more", Body(page_type(collection.entity))
                )
            },
            params=tuple(listing_params),
            problems=(400, 410),
            description=collection.description
            + " A listing holds the rows as they were when its first page was read, each once.",
        ),
        Operation(
            "POST",
            collection.path,
            f"Create a {entity}",
            collection.name,
            {201: Reply("Created", row, headers={**_ETAG, "Location": "The new entity's URL"})},
            body=Body(create_type(collection.entity)),
            params=(_IDEMPOTENCY_KEY,),
            problems=(409,),
        ),
        Operation(
            "GET",
            one,
            f"Get a {entity}",
            collection.name,
            {
                200: Reply("The entity", row, headers=_ETAG),
                304: Reply("Not modified since the version If-None-Match named"),
            },
            params=(
                Param("If-None-Match", "header", {"type": "string"}),
                Param(
                    "as_of",
                    "query",
                    {"type": "string", "format": "date-time"},
                    "the entity as it was at this moment, rebuilt from the log",
                ),
                Param(
                    "version",
                    "query",
                    {"type": "integer", "minimum": 1},
                    "the entity as it was at this version, rebuilt from the log",
                ),
            ),
            problems=(400, 404),
        ),
        Operation(
            "PATCH",
            one,
            f"Change fields of a {entity}",
            collection.name,
            {200: Reply("Changed (or unchanged: nothing differed)", row, headers=_ETAG)},
            body=Body(patch_type(collection.entity), {"minProperties": 1}),
            params=(_IF_MATCH, _IDEMPOTENCY_KEY),
            problems=(400, 404, 409),
        ),
        Operation(
            "DELETE",
            one,
            f"Delete a {entity}",
            collection.name,
            {204: Reply("Deleted")},
            params=(_IF_MATCH, _IDEMPOTENCY_KEY),
            problems=(400, 404, 409, 422),
        ),
    ]
    for action in collection.actions:
        operations.append(
            Operation(
                "POST",
                f"{one}/{action.path}",
                action.summary,
                collection.name,
                {200: Reply(f"The {entity} after the {action.action}", row, headers=_ETAG)},
                body=Body(action.payload(entity)),
                params=(_IDEMPOTENCY_KEY,),
                problems=(404, 409),
                description="Commutes with other writes: no If-Match; checked against the "
                "current state instead (409 insufficient_stock if stock would go below 0).",
            )
        )
    return operations


operations = [
    operation
    for collection in COLLECTIONS.values()
    for operation in _collection_operations(collection)
]
