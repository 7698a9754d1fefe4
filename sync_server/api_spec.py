"""How a route describes itself for the OpenAPI document (``openapi.py`` builds the document).

Each route module lists an ``Operation`` per method and path next to its ``routes``; bodies and
answers are named by their msgspec types, never by hand-written schemas, so the document is
generated from the same definitions that decode requests and encode answers. A test checks
that every route of the app has its operation and every operation its route.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

JSON = "application/json"
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["query", "path", "header"]
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Body:
    """A JSON body: ``type`` is a msgspec-known type; ``extra`` adds JSON Schema keywords."""

    type: Any
    extra: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Reply:
    description: str
    body: Body | None = None
    media_type: str = JSON
    headers: Mapping[str, str] = field(default_factory=dict)
    """Header name -> what it carries."""
    schema: Mapping[str, Any] | None = None
    """A literal schema, for bodies that are not JSON (the metrics text, the docs page)."""


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    replies: Mapping[int, Reply]
    body: Body | None = None
    params: tuple[Param, ...] = ()
    problems: tuple[int, ...] = ()
    """Error statuses this operation answers with problem+json, besides the automatic ones
    (401 for a protected route, 400/413/415/422 for a route with a body, 503 under ``/v1/``)."""
    public: bool = False
    """No bearer token needed (auth endpoints, health, docs)."""
    description: str = ""
    operation_id: str | None = None
