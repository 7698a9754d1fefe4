"""``/health`` (the process answers) and ``/ready`` (the database answers, migrations current)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from event_store import EventStoreError, pending

from ..http import json_response
from ..services import MIGRATIONS, Services


async def health(request: Request) -> Response:
    return json_response({"status": "ok"})


async def ready(request: Request) -> Response:
    services: Services = request.app.state.services

    def check() -> list[str]:
        waiting = pending(services.store, MIGRATIONS)
        return [f"{m.component}/{m.version:04d}_{m.name}" for m in waiting]

    try:
        waiting = await run_in_threadpool(check)
    except EventStoreError as error:
        return json_response({"status": "unavailable", "detail": str(error)}, status=503)
    except Exception as error:  # a database that is down fails in many ways; all mean not ready
        return json_response({"status": "unavailable", "detail": type(error).__name__}, status=503)
    if waiting:
        return json_response({"status": "migrations_pending", "pending": waiting}, status=503)
    return json_response({"status": "ready", "backend": services.store.backend})


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
]
