"""The Starlette application: routes, middleware, error handlers, and the store's lifetime."""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Scope

from event_store import ConcurrencyError, StoreUnavailable

from . import metrics, pull_cursors
from .api_spec import Operation
from .auth import Auth, AuthMiddleware, load_signing_key
from .catching_up import CatchingUp
from .live import Live
from .middleware import RequestContext
from .openapi import build as build_openapi
from .problems import (
    Problem,
    concurrent_write,
    handle_problem,
    problem_response,
    request_id_of,
    unavailable,
)
from .routes import audit, docs, entities, health, live, reports, stats, sync
from .routes import auth as auth_routes
from .routes import metrics as metrics_routes
from .services import Services, connect, migrate_all
from .settings import Settings

log = logging.getLogger("sync_server")


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    # Starlette's headers go along: a 405 names the methods the path takes (``Allow``, which
    # RFC 9110 requires of it).
    problem = Problem(
        exc.status_code,
        codes.get(exc.status_code, "http_error"),
        exc.detail,
        headers=dict(exc.headers or {}),
    )
    return problem_response(problem, request_id_of(request))


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable", extra={"error": str(exc)})
    return problem_response(unavailable(), request_id_of(request))


async def _concurrent_write(request: Request, exc: Exception) -> Response:
    log.warning("concurrent write", extra={"error": str(exc)})
    return problem_response(concurrent_write(), request_id_of(request))


def _route_table(routes: list[BaseRoute], prefix: str = "") -> dict[Any, str]:
    table: dict[Any, str] = {}
    for route in routes:
        if isinstance(route, Route):
            table[route.endpoint] = prefix + route.path
        elif isinstance(route, Mount):
            table.update(_route_table(list(route.routes), prefix + route.path))
    return table


# Every route module: its ``routes`` and the ``operations`` that describe them for OpenAPI.
ROUTE_MODULES = (
    health,
    metrics_routes,
    docs,
    auth_routes,
    sync,
    live,
    entities,
    stats,
    audit,
    reports,
)


def build_routes() -> list[BaseRoute]:
    return [route for module in ROUTE_MODULES for route in module.routes]


def build_operations() -> list[Operation]:
    return [operation for module in ROUTE_MODULES for operation in module.operations]


def openapi_document() -> dict[str, Any]:
    return build_openapi(build_operations(), "sync-server", _version())


def _version() -> str:
    try:
        return importlib.metadata.version("sync-server")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def tune_collector() -> None:
    """Make the cyclic garbage collector cheap for a server's kind of work.

    What is alive once the app has started (modules, the app, pools, caches) lives as long as
    the process: ``gc.freeze`` takes it out of the collector's generations, so that a full
    collection no longer walks it. A request builds many short-lived containers (a push of 500
    ops, tens of thousands), and with the default first generation of 700 allocations such a
    push set off about 20 collections. Measured with ``bench/push_cpu.py`` (``--default-gc``
    for the default): collections took 5 to 7 ms of a 500-op push, under 1.5 ms with both
    changes.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 10, 10)


def create_app(settings: Settings | None = None, services: Services | None = None) -> Starlette:
    settings = settings or (services.settings if services else Settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        signing_key = load_signing_key(settings)  # before connecting: no secret, no start
        own = services is None
        running = services or Services(settings, connect(settings))
        if own and settings.should_migrate_on_start:
            applied = await anyio.to_thread.run_sync(migrate_all, running.store)
            for migration in applied:
                log.info("migration applied", extra={"migration": migration.name})
        if "auth" not in running.extras:
            running.extras["auth"] = await Auth.create(settings, running.store, signing_key)
        running.cursor_key = pull_cursors.derive_key(signing_key)
        app.state.services = running
        for hook in app.state.startup_hooks:
            await hook(running)
        catching_up = CatchingUp.start(running.store, settings.catch_up_interval)
        if own:
            tune_collector()
        log.info(
            "serving",
            extra={"database": settings.display_database, "backend": running.store.backend},
        )
        try:
            yield
        finally:
            await catching_up.stop()
            for hook in app.state.shutdown_hooks:
                await hook(running)
            if own:
                await anyio.to_thread.run_sync(running.store.close)
            metrics.process_exited(os.getpid())

    routes = build_routes()
    route_table = _route_table(routes)

    def route_of(scope: Scope) -> str:
        return route_table.get(scope.get("endpoint"), "unmatched")

    def observe(method: str, route: str, status: int, seconds: float) -> None:
        metrics.observe_request(method, route, status, seconds)
        services_now = getattr(app.state, "services", None)
        if services_now is not None:
            metrics.record_pool(services_now.store)

    middleware = [Middleware(RequestContext, route_of=route_of, observe=observe)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "Idempotency-Key",
                    "If-Match",
                    "If-None-Match",
                    "X-Request-ID",
                ],
                expose_headers=["ETag", "Location", "X-Request-ID", "Retry-After"],
            )
        )
    # Inside CORS, so that preflights are answered before it and its 401s carry CORS headers.
    middleware.append(Middleware(AuthMiddleware))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            Problem: handle_problem,
            HTTPException: _http_exception,
            StoreUnavailable: _unavailable,
            ConcurrencyError: _concurrent_write,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.openapi = openapi_document()
    live_updates = Live(settings)
    app.state.startup_hooks = [live_updates.start]
    app.state.shutdown_hooks = [live_updates.stop]
    return app
