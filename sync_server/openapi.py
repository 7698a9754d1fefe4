"""The OpenAPI 3.1 document of the API, generated from the routes' ``Operation``s.

Schemas come from the msgspec types that decode requests and encode answers
(``msgspec.json.schema_components``); the scalar wire types msgspec cannot describe alone
(exact decimals, ISO codes, stock deltas, moments: ``schemas/values.py``) get their schema
here, once.
Every error is the one problem+json shape of PROTOCOL.md, "Errors".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any, Final

import msgspec

from schemas.codes import COUNTRIES, CURRENCIES
from schemas.moments import MAX_TEXT, Moment
from schemas.values import (
    MAX_COUNT,
    MAX_MAGNITUDE,
    CountryCode,
    CurrencyCode,
    Measure,
    Money,
    Percent,
    StockDelta,
    WireDecimal,
    enc_hook,
)

from .api_spec import JSON, PROBLEM, Body, Operation, Reply
from .problems import ProblemBody

REF: Final = "#/components/schemas/{name}"


class ConflictProblem(ProblemBody, omit_defaults=True):
    """A 409 of the entity API: the problem, and the entity as it is now where there is one."""

    current: dict[str, Any] | None = None
    """The entity as GET shows it now."""
    version: int | None = None
    """Its current version: resend with If-Match set to it."""
    fields: list[str] | None = None
    """The fields another write changed since the version given."""


_STANDARD_PROBLEMS: Final = {
    400: "Malformed request: bad JSON, or a bad query parameter or header",
    401: "No, invalid or expired access token",
    403: "Not allowed",
    404: "Not found (also for other users' data)",
    405: "Method not allowed",
    409: "Version or state conflict; carries the current state where there is one",
    410: "Gone: a list cursor that can no longer be continued",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Well-formed but invalid; ``errors`` names each field",
    429: "Rate limited; see Retry-After",
    503: "The database is unavailable; retry after Retry-After seconds",
}

# Plain decimal text, at most 4 places. Bounds a pattern cannot express (at most 10^12) are in
# the description; the server answers 422 beyond them.
_DECIMAL = r"^[0-9]{1,13}(\.[0-9]{1,4})?$"
_PERCENT = r"^(100(\.0{1,4})?|[0-9]{1,2}(\.[0-9]{1,4})?)$"


def _decimal(cls: type[WireDecimal], description: str) -> dict[str, Any]:
    text = {"type": "string", "pattern": _PERCENT if cls is Percent else _DECIMAL}
    number = {"type": "integer", "minimum": int(cls.low), "maximum": int(cls.high)}
    return {"anyOf": [text, number], "description": description}


_SCALARS: Final[Mapping[type, dict[str, Any]]] = {
    Money: _decimal(
        Money,
        f'Money as a decimal string ("12000.00"), >= 0 and <= {MAX_MAGNITUDE:.0f}, at most 4 '
        "decimal places; answers carry at least 2. A JSON integer is accepted; a float is not.",
    ),
    Percent: _decimal(Percent, 'A percentage from 0 to 100 as a decimal string ("12.5").'),
    Measure: _decimal(Measure, 'A non-negative quantity as a decimal string ("82.5").'),
    CountryCode: {
        "type": "string",
        "enum": sorted(COUNTRIES),
        "description": "ISO 3166-1 alpha-2",
    },
    CurrencyCode: {"type": "string", "enum": sorted(CURRENCIES), "description": "ISO 4217"},
    StockDelta: {
        "type": "integer",
        "minimum": -MAX_COUNT,
        "maximum": MAX_COUNT,
        "not": {"const": 0},
        "description": "A change of stock, never 0",
    },
    Moment: {
        "type": "string",
        "format": "date-time",
        "maxLength": MAX_TEXT,
        "description": "RFC 3339 with a zone, within the years 1 to 9999 in UTC; answered in UTC",
    },
}


def _schema_hook(type_: type) -> dict[str, Any]:
    for cls, schema in _SCALARS.items():
        if isinstance(type_, type) and issubclass(type_, cls):
            return dict(schema)
    raise NotImplementedError(f"no schema for {type_!r}")


@cache
def documentable(cls: Any) -> Any:
    """``cls`` with its defaults as JSON (msgspec cannot render a ``Percent(0)`` default)."""
    if not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
        return cls
    members: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    changed = False
    for field in msgspec.structs.fields(cls):
        if field.required:
            members.append((field.name, field.type))
            continue
        default = (
            field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
        )
        plain = (
            default if default is msgspec.UNSET else msgspec.to_builtins(default, enc_hook=enc_hook)
        )
        changed = changed or type(plain) is not type(default)
        members.append((field.name, field.type, plain))
    if not changed:
        return cls
    config = cls.__struct_config__
    return msgspec.defstruct(
        cls.__name__,
        members,
        kw_only=True,
        forbid_unknown_fields=config.forbid_unknown_fields,
        module=cls.__module__,
    )


def build(operations: Sequence[Operation], title: str, version: str) -> dict[str, Any]:
    """The whole document."""
    bodies = list(_bodies(operations))
    problems = [documentable(ProblemBody), ConflictProblem]
    types = list(dict.fromkeys([*problems, *(documentable(b.type) for b in bodies)]))
    schemas, components = msgspec.json.schema_components(
        types, schema_hook=_schema_hook, ref_template=REF
    )
    by_type = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(
            operation, by_type
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                "Event-sourced, offline-first sync backend. Every error is "
                "application/problem+json (RFC 9457). Entity versions travel as ETags."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}],
    }


def _bodies(operations: Iterable[Operation]) -> Iterable[Body]:
    for operation in operations:
        if operation.body is not None:
            yield operation.body
        for reply in operation.replies.values():
            if reply.body is not None:
                yield reply.body


def _schema(body: Body, by_type: Mapping[Any, Any]) -> dict[str, Any]:
    schema = dict(by_type[documentable(body.type)])
    schema.update(body.extra)
    if body.description:
        schema["description"] = body.description
    return schema


def _operation(operation: Operation, by_type: Mapping[Any, Any]) -> dict[str, Any]:
    path_params = [
        part[1:-1]
        for part in operation.path.split("/")
        if part.startswith("{") and part.endswith("}")
    ]
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in path_params
        if all(param.name != name for param in operation.params)
    ]
    for param in operation.params:
        entry: dict[str, Any] = {
            "name": param.name,
            "in": param.where,
            "required": param.required or param.where == "path",
            "schema": dict(param.schema),
        }
        if param.description:
            entry["description"] = param.description
        parameters.append(entry)
    responses = {str(status): _reply(reply, by_type) for status, reply in operation.replies.items()}
    for status in _problems(operation):
        responses.setdefault(str(status), _problem_reply(status, by_type))
    document: dict[str, Any] = {
        "summary": operation.summary,
        "operationId": operation.operation_id or _operation_id(operation),
        "tags": [operation.tag],
        "responses": responses,
    }
    if operation.description:
        document["description"] = operation.description
    if parameters:
        document["parameters"] = parameters
    if operation.body is not None:
        document["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": _schema(operation.body, by_type)}},
        }
    if operation.public:
        document["security"] = []
    return document


def _problems(operation: Operation) -> list[int]:
    statuses = set(operation.problems)
    if not operation.public:
        statuses.add(401)
    if operation.body is not None:
        statuses |= {400, 413, 415, 422}
    if operation.path.startswith("/v1/"):
        statuses.add(503)
    return sorted(statuses)


def _reply(reply: Reply, by_type: Mapping[Any, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": reply.description}
    if reply.body is not None:
        answer["content"] = {reply.media_type: {"schema": _schema(reply.body, by_type)}}
    elif reply.schema is not None:
        answer["content"] = {reply.media_type: {"schema": dict(reply.schema)}}
    if reply.headers:
        answer["headers"] = {
            name: {"description": description, "schema": {"type": "string"}}
            for name, description in reply.headers.items()
        }
    return answer


def _problem_reply(status: int, by_type: Mapping[Any, Any]) -> dict[str, Any]:
    shape = ConflictProblem if status == 409 else documentable(ProblemBody)
    return {
        "description": _STANDARD_PROBLEMS.get(status, "Error"),
        "content": {PROBLEM: {"schema": by_type[shape]}},
    }


def _operation_id(operation: Operation) -> str:
    words = [
        part.strip("{}") for part in operation.path.strip("/").split("/") if part and part != "v1"
    ]
    return "_".join([operation.method.lower(), *words]).replace("-", "_")
