"""``/v1/auth/*``: register, login, refresh, logout, me, sessions (PROTOCOL.md, "Auth")."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from schemas.values import parse_uuid

from ..api_spec import Body, Operation, Reply
from ..auth import Auth, principal_of
from ..auth.middleware import LOGIN, LOGOUT, REFRESH, REGISTER, auth_of
from ..auth.models import LoginBody, Me, RefreshBody, RegisterBody, Sessions, SignedIn, Tokens
from ..logs import user_id_var
from ..problems import Problem
from ..request_body import json_response, read_json

# Auth bodies are a few short strings: a small cap refuses a megabyte password with 413
# before it is even decoded.
MAX_AUTH_BODY = 16 * 1024

T = TypeVar("T")


def _auth(request: Request) -> Auth:
    return auth_of(request.scope)


async def _read(request: Request, type_: type[T]) -> T:
    limit = min(MAX_AUTH_BODY, _auth(request).settings.max_body_bytes)
    return await read_json(request, type_, limit)


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _identify(request: Request, user_id: UUID) -> None:
    """Name the user in the access log of a public endpoint once they are known."""
    request.state.user_id = str(user_id)
    user_id_var.set(str(user_id))


def _answer(content: msgspec.Struct, status: int = 200) -> Response:
    # Tokens must never be kept by a cache or proxy (RFC 6749, section 5.1).
    return json_response(
        content, status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )


async def register(request: Request) -> Response:
    auth = _auth(request)
    body = await _read(request, RegisterBody)
    signed_in = await auth.register(
        body.email, body.password, body.name, body.device_id, _address(request)
    )
    _identify(request, signed_in.user.id)
    return _answer(signed_in, 201)


async def login(request: Request) -> Response:
    auth = _auth(request)
    body = await _read(request, LoginBody)
    signed_in = await auth.login(body.email, body.password, body.device_id, _address(request))
    _identify(request, signed_in.user.id)
    return _answer(signed_in)


async def refresh(request: Request) -> Response:
    auth = _auth(request)
    body = await _read(request, RefreshBody)
    user_id, tokens = await auth.refresh(body.refresh_token, _address(request))
    _identify(request, user_id)
    return _answer(tokens)


async def logout(request: Request) -> Response:
    auth = _auth(request)
    body = await _read(request, RefreshBody)
    user_id = await auth.logout(body.refresh_token, _address(request))
    _identify(request, user_id)
    return Response(status_code=204)


async def me(request: Request) -> Response:
    return _answer(Me(principal_of(request).user))


async def list_sessions(request: Request) -> Response:
    sessions = await _auth(request).sessions(principal_of(request))
    return _answer(Sessions(sessions))


async def revoke_session(request: Request) -> Response:
    try:
        session_id = parse_uuid(request.path_params["id"])
    except ValueError:
        raise Problem(404, "not_found", "no such session") from None
    await _auth(request).revoke(principal_of(request), session_id)
    return Response(status_code=204)


routes = [
    Route(REGISTER, register, methods=["POST"]),
    Route(LOGIN, login, methods=["POST"]),
    Route(REFRESH, refresh, methods=["POST"]),
    Route(LOGOUT, logout, methods=["POST"]),
    Route("/v1/auth/me", me, methods=["GET"]),
    Route("/v1/auth/sessions", list_sessions, methods=["GET"]),
    Route("/v1/auth/sessions/{id}", revoke_session, methods=["DELETE"]),
]

_NO_STORE = {"Cache-Control": "no-store"}
operations = [
    Operation(
        "POST",
        REGISTER,
        "Create an account and sign in",
        "auth",
        {201: Reply("Signed in", Body(SignedIn), headers=_NO_STORE)},
        body=Body(RegisterBody),
        problems=(409, 429),
        public=True,
    ),
    Operation(
        "POST",
        LOGIN,
        "Sign in with email and password",
        "auth",
        {200: Reply("Signed in", Body(SignedIn), headers=_NO_STORE)},
        body=Body(LoginBody),
        problems=(401, 429),
        public=True,
    ),
    Operation(
        "POST",
        REFRESH,
        "Rotate a refresh token for new tokens",
        "auth",
        {200: Reply("New tokens", Body(Tokens), headers=_NO_STORE)},
        body=Body(RefreshBody),
        problems=(401, 429),
        public=True,
    ),
    Operation(
        "POST",
        LOGOUT,
        "Revoke the session of a refresh token",
        "auth",
        {204: Reply("Signed out")},
        body=Body(RefreshBody),
        problems=(401, 429),
        public=True,
    ),
    Operation(
        "GET", "/v1/auth/me", "The signed-in user", "auth", {200: Reply("The user", Body(Me))}
    ),
    Operation(
        "GET",
        "/v1/auth/sessions",
        "The user's device sessions",
        "auth",
        {200: Reply("Sessions", Body(Sessions))},
    ),
    Operation(
        "DELETE",
        "/v1/auth/sessions/{id}",
        "Revoke one session",
        "auth",
        {204: Reply("Revoked")},
        problems=(404,),
    ),
]
