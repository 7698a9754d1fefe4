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

import contextlib
import threading
from collections.abc import Callable, Mapping
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
STREAM = "/v1/sync/stream"


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

    def stream(
        self, since: str | None, timeout: httpx.Timeout
    ) -> contextlib.closing[httpx.Response]:
        """``GET /v1/sync/stream`` (from ``since``, the client's pull cursor, if given): the
        answer whatever its status, its body left to read as it comes, closed on leaving the
        ``with``. Sent once (``Transport.open_stream``); a 401 refreshes the tokens first, as
        for every call."""
        params = {} if since is None else {"since": since}
        response = self._with_session(
            lambda tokens: self.transport.open_stream(
                STREAM, params=params, headers=_bearer(tokens), timeout=timeout
            )
        )
        return contextlib.closing(response)

    # -- the token dance -------------------------------------------------------------------------

    def _authorized(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        return self._with_session(
            lambda tokens: self.transport.request(
                method, path, body=body, params=params, headers=_bearer(tokens)
            )
        )

    def _with_session(self, send: Callable[[Tokens], httpx.Response]) -> httpx.Response:
        """``send(tokens)`` with the stored tokens; after a 401, once more with fresh ones."""
        tokens = self._tokens.load_tokens()
        if tokens is None:
            raise NotAuthenticated("no session in the store: register or log in first")
        response = send(tokens)
        if response.status_code != 401:
            return response
        response.close()
        self._refresh(tokens.access_token)
        fresh = self._tokens.load_tokens()
        if fresh is None:  # pragma: no cover - _refresh raises instead
            raise NotAuthenticated("the session was cleared")
        response = send(fresh)
        if response.status_code == 401:
            raise self._ended(response)
        return response

    def _refresh(self, failed_access_token: str) -> None:
        with self._refreshing:
            current = self._tokens.load_tokens()
            if current is None:
                # This call had a session; a call that refreshed meanwhile found it over.
                raise SessionRevoked("session_ended", "the session ended while this call waited")
            if current.access_token != failed_access_token:
                return  # another thread refreshed while this one waited
            response = self.transport.request(
                "POST", REFRESH, body={"refresh_token": current.refresh_token}, idempotent=False
            )
            if response.status_code == 401:
                raise self._ended(response)
            if response.status_code != 200:
                raise problem_of(response)
            self._tokens.save_tokens(_decode(response, Tokens))

    def _ended(self, refused: httpx.Response) -> SessionRevoked:
        """The session is over: forget its tokens; the error to raise."""
        with contextlib.closing(refused):
            refused.read()  # a streamed answer's body is not read yet
            problem = problem_of(refused)
        self._tokens.save_tokens(None)
        return SessionRevoked(problem.code, problem.detail)


def _decode(response: httpx.Response, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(response.content, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise SyncError(f"unexpected answer from {response.request.url.path}: {error}") from None


def _bearer(tokens: Tokens) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.access_token}"}


def _without_none(**values: str | None) -> dict[str, str]:
    return {key: value for key, value in values.items() if value is not None}
