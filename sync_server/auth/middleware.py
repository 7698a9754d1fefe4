"""The one gate in front of every ``/v1/`` route: no route can forget to check the token.

A pure ASGI middleware. Any HTTP (or WebSocket) request under ``/v1/`` other than the public
auth endpoints needs ``Authorization: Bearer <access token>`` of a live session, or it is
answered 401 here and never reaches a route. Routes added later are protected by living under
``/v1/``. On success the request's ``scope["state"]`` carries ``user_id`` (a UUID string, read
by the access log), ``user`` (``models.User``) and ``session_id`` (``UUID``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from event_store import StoreUnavailable

from ..logs import user_id_var
from ..problems import Problem, problem_response, unavailable
from .models import Principal, User
from .service import unauthorized

if TYPE_CHECKING:
    from .service import Auth

PROTECTED_PREFIX = "/v1/"
REGISTER = "/v1/auth/register"
LOGIN = "/v1/auth/login"
REFRESH = "/v1/auth/refresh"
LOGOUT = "/v1/auth/logout"
# Each of these authenticates by what its body carries (credentials or a refresh token).
PUBLIC_PATHS = frozenset({REGISTER, LOGIN, REFRESH, LOGOUT})


def auth_of(scope: Scope) -> Auth:
    """The running ``Auth`` (made in the app's lifespan)."""
    return scope["app"].state.services.extras["auth"]  # type: ignore[no-any-return]


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def is_protected(path: str) -> bool:
    return (path == "/v1" or path.startswith(PROTECTED_PREFIX)) and path not in PUBLIC_PATHS


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


class AuthMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not is_protected(_route_path(scope)):
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._authenticate(scope)
        except Problem as problem:
            await self._refuse(scope, receive, send, problem)
            return
        except StoreUnavailable:
            # Outside the routes' exception handlers: answer the 503 they would.
            await self._refuse(scope, receive, send, unavailable())
            return
        state = scope.setdefault("state", {})
        state["user_id"] = str(principal.user.id)
        state["user"] = principal.user
        state["session_id"] = principal.session_id
        state["principal"] = principal
        token = user_id_var.set(state["user_id"])
        try:
            await self.app(scope, receive, send)
        finally:
            user_id_var.reset(token)

    async def _authenticate(self, scope: Scope) -> Principal:
        token = _bearer(scope)
        if token is None:
            raise unauthorized(
                "unauthenticated", "send an access token (Authorization: Bearer)", None
            )
        return await auth_of(scope).authenticate(token)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        request_id = scope.get("state", {}).get("request_id")
        await problem_response(problem, request_id)(scope, receive, send)


def principal_of(request: Request) -> Principal:
    """The authenticated user and session of a request under ``/v1/``."""
    principal: Principal = request.state.principal
    return principal


def user_of(request: Request) -> User:
    return principal_of(request).user


def session_id_of(request: Request) -> UUID:
    return principal_of(request).session_id
