"""The server's endpoints as typed calls (PROTOCOL.md), with the access token handled here.

An authenticated call that gets a 401 refreshes the tokens once and is sent again. Refresh
tokens rotate: the new pair replaces the old one in the store in one transaction, and refreshes
are serialized, because presenting an already-rotated refresh token ends the whole session.
When the refresh itself is refused, the stored tokens are cleared and ``SessionRevoked`` is
raised: only a new login helps.

A refresh is not idempotent: it is resent only if it certainly never reached the server. Had
its answer been lost, the old refresh token is spent and the next refresh ends the session;
the app sees ``SessionRevoked`` and signs in again (nothing queued is lost).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar
from uuid import UUID

import httpx
import msgspec

from schemas.pull import PullPage
from schemas.results import PushResponse

from .errors import AuthError, NotAuthenticated, SessionRevoked, SyncError
from .transport import Transport, problem_of

T = TypeVar("T")

REGISTER = "/v1/auth/register"
LOGIN = "/v1/auth/login"
REFRESH = "/v1/auth/refresh"
LOGOUT = "/v1/auth/logout"
PUSH = "/v1/sync/push"
PULL = "/v1/sync/pull"


class Tokens(msgspec.Struct, frozen=True):
    access_token: str
    refresh_token: str


class User(msgspec.Struct, frozen=True):
    id: UUID
    email: str
    name: str | None = None


class SignedIn(msgspec.Struct, frozen=True):
    user: User
    access_token: str
    refresh_token: str

    @property
    def tokens(self) -> Tokens:
        return Tokens(self.access_token, self.refresh_token)


class TokenStore(Protocol):
    """Where the tokens live (the local store); ``save_tokens(None)`` forgets them."""

    def load_tokens(self) -> Tokens | None: ...
    def save_tokens(self, tokens: Tokens | None) -> None: ...


class Api:
    def __init__(self, transport: Transport, tokens: TokenStore) -> None:
        self.transport = transport
        self._tokens = tokens
        self._refreshing = threading.Lock()

    # -- auth ------------------------------------------------------------------------------------

    def register(
        self, email: str, password: str, name: str | None = None, device_id: str | None = None
    ) -> SignedIn:
        body = _without_none(email=email, password=password, name=name, device_id=device_id)
        return self._sign_in(REGISTER, body, 201)

    def login(self, email: str, password: str, device_id: str | None = None) -> SignedIn:
        body = _without_none(email=email, password=password, device_id=device_id)
        return self._sign_in(LOGIN, body, 200)

    def _sign_in(self, path: str, body: Mapping[str, str], success: int) -> SignedIn:
        response = self.transport.request("POST", path, body=body, idempotent=False)
        if response.status_code != success:
            raise problem_of(response, AuthError)
        return _decode(response, SignedIn)

    def logout(self) -> None:
        """End the session on the server (best effort if it already ended) and forget it."""
        tokens = self._tokens.load_tokens()
        if tokens is None:
            return
        try:
            response = self.transport.request(
                "POST", LOGOUT, body={"refresh_token": tokens.refresh_token}, idempotent=False
            )
            if response.status_code not in (204, 401):
                raise problem_of(response)
        finally:
            self._tokens.save_tokens(None)

    def me(self) -> dict[str, Any]:
        return _decode(self._authorized("GET", "/v1/auth/me"), dict[str, Any])

    # -- sync ------------------------------------------------------------------------------------

    def push(self, request: msgspec.Struct) -> PushResponse:
        """``POST /v1/sync/push``. A 413 (batch too large) is raised as ``ApiError`` for the
        caller to split the batch."""
        response = self._authorized("POST", PUSH, body=request)
        if response.status_code != 200:
            raise problem_of(response)
        return _decode(response, PushResponse)

    def pull(self, since: str | None, limit: int) -> PullPage:
        params = {"limit": str(limit)}
        if since is not None:
            params["since"] = since
        response = self._authorized("GET", PULL, params=params)
        if response.status_code != 200:
            raise problem_of(response)
        return _decode(response, PullPage)

    # -- the token dance -------------------------------------------------------------------------

    def _authorized(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        tokens = self._tokens.load_tokens()
        if tokens is None:
            raise NotAuthenticated("no session in the store: register or log in first")
        response = self._send(method, path, tokens, body, params)
        if response.status_code != 401:
            return response
        self._refresh(tokens.access_token)
        fresh = self._tokens.load_tokens()
        if fresh is None:  # pragma: no cover - _refresh raises instead
            raise NotAuthenticated("the session was cleared")
        response = self._send(method, path, fresh, body, params)
        if response.status_code == 401:
            problem = problem_of(response)
            self._tokens.save_tokens(None)
            raise SessionRevoked(problem.code, problem.detail)
        return response

    def _send(
        self,
        method: str,
        path: str,
        tokens: Tokens,
        body: object,
        params: Mapping[str, str] | None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {tokens.access_token}"}
        return self.transport.request(method, path, body=body, params=params, headers=headers)

    def _refresh(self, failed_access_token: str) -> None:
        with self._refreshing:
            current = self._tokens.load_tokens()
            if current is None:
                raise NotAuthenticated("no session in the store: register or log in first")
            if current.access_token != failed_access_token:
                return  # another thread refreshed while this one waited
            response = self.transport.request(
                "POST", REFRESH, body={"refresh_token": current.refresh_token}, idempotent=False
            )
            if response.status_code == 401:
                problem = problem_of(response)
                self._tokens.save_tokens(None)
                raise SessionRevoked(problem.code, problem.detail)
            if response.status_code != 200:
                raise problem_of(response)
            self._tokens.save_tokens(_decode(response, Tokens))


def _decode(response: httpx.Response, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(response.content, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise SyncError(f"unexpected answer from {response.request.url.path}: {error}") from None


def _without_none(**values: str | None) -> dict[str, str]:
    return {key: value for key, value in values.items() if value is not None}
