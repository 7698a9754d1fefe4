"""``/health`` (the process answers) and ``/ready`` (the database answers, migrations current)."""

from __future__ import annotations

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from event_store import EventStoreError, pending

from ..api_spec import Body, Operation, Reply
from ..problems import RETRY_AFTER_UNAVAILABLE
from ..request_body import json_response
from ..services import MIGRATIONS, services_of


class Health(msgspec.Struct, frozen=True):
    status: str


class Ready(msgspec.Struct, frozen=True):
    status: str
    backend: str


class NotReady(msgspec.Struct, frozen=True, omit_defaults=True):
    status: str
    """``unavailable`` (the database does not answer) or ``migrations_pending``."""
    detail: str | None = None
    pending: list[str] | None = None


async def health(request: Request) -> Response:
    return json_response(Health("ok"))


async def ready(request: Request) -> Response:
    services = services_of(request)

    def check() -> list[str]:
        waiting = pending(services.store, MIGRATIONS)
        return [f"{m.component}/{m.version:04d}_{m.name}" for m in waiting]

    try:
        waiting = await run_in_threadpool(check)
    except Exception as error:  # a database that is down fails in many ways; all mean not ready
        detail = str(error) if isinstance(error, EventStoreError) else type(error).__name__
        return json_response(
            NotReady("unavailable", detail),
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)},
        )
    if waiting:
        return json_response(NotReady("migrations_pending", pending=waiting), status=503)
    return json_response(Ready("ready", services.store.backend))


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
]

operations = [
    Operation(
        "GET",
        "/health",
        "The process answers",
        "operations",
        {200: Reply("Alive", Body(Health))},
        public=True,
    ),
    Operation(
        "GET",
        "/ready",
        "The database answers and its migrations are current",
        "operations",
        {
            200: Reply("Ready to serve", Body(Ready)),
            503: Reply(
                "Not ready: the database is unreachable or migrations are pending", Body(NotReady)
            ),
        },
        public=True,
    ),
]
