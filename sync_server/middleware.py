"""Pure ASGI middleware: request ids, the access log, and turning crashes into problems."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import request_id_var, user_id_var
from .problems import Problem, problem_response

log = logging.getLogger("sync_server.access")

# An id a client sends is echoed only when it is short and plain; anything else is replaced
# (it ends up in logs and in event metadata).
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContext:
    """Gives every request an id (``X-Request-ID``, echoed when the client sent a safe one),
    logs one line per request, and answers 500 as problem+json if a handler crashed."""

    def __init__(
        self,
        app: ASGIApp,
        route_of: Callable[[Scope], str],
        observe: Callable[[str, str, int, float], None] | None = None,
    ) -> None:
        self.app = app
        self.route_of = route_of
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _SAFE_ID.match(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        user_token = user_id_var.set(None)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error")
            if not response_started:
                response = problem_response(
                    Problem(500, "internal_error", "an unexpected error; it has been logged"),
                    request_id,
                )
                await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = self.route_of(scope)
            method = scope["method"]
            if self.observe is not None:
                self.observe(method, route, status, elapsed)
            log.info(
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "user_id": scope.get("state", {}).get("user_id"),
                },
            )
            user_id_var.reset(user_token)
            request_id_var.reset(token)
