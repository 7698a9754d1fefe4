"""Every error the SDK raises, one type per thing an app may want to handle differently.

``ClientError`` is the root. Local mistakes (``ValidationError``, ``NotFound``,
``AlreadyExists``) are raised before anything is queued. Server answers that retrying cannot fix
are ``ApiError`` (with the problem+json details); failures that outlived the retries are
``NetworkError``, ``ServerError`` or ``RateLimited``. Auth trouble that needs the user to sign in
again is ``NotAuthenticated`` or ``SessionRevoked``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.results import FieldError


class ClientError(Exception):
    """Base of every error raised by ``client_sdk``."""


class ValidationError(ClientError):
    """A write was refused locally by the same field rules the server applies."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        summary = "; ".join(f"{e.path}: {e.message}" for e in self.errors)
        super().__init__(f"invalid fields: {summary}")


class NotFound(ClientError):
    """The local copy has no live entity with this id (never pulled, or deleted)."""


class AlreadyExists(ClientError):
    """A create names an id the local copy already holds (ids are never reused, even deleted)."""


class StoreInUse(ClientError):
    """Another process has this store file open; one process per file at a time."""


class WrongUser(ClientError):
    """The store holds another user's data: open a different file for this account."""


class ApiError(ClientError):
    """The server answered with a problem (RFC 9457) that retrying will not fix."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        errors: Sequence[dict[str, Any]] = (),
        request_id: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = list(errors)
        self.request_id = request_id
        super().__init__(f"{status} {code}: {detail or ''}".rstrip(": "))


class ServerError(ApiError):
    """A 5xx that persisted through every retry."""


class RateLimited(ApiError):
    """A 429 whose ``Retry-After`` is longer than the client is willing to wait."""

    def __init__(self, retry_after: float | None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class NetworkError(ClientError):
    """The server could not be reached (or answered nothing) through every retry."""


class AuthError(ApiError):
    """Credentials refused at register or login (wrong password, email taken…)."""


class NotAuthenticated(ClientError):
    """No session in the store: call ``register`` or ``login`` first."""


class SessionRevoked(ClientError):
    """The session ended (logged out, revoked on another device, refresh token reused or
    expired). The stored tokens are cleared; local data and queued ops are kept, and are pushed
    once the same user logs in again."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        self.code = code
        super().__init__(f"session ended ({code}): {detail or 'log in again'}")


class SyncError(ClientError):
    """A sync could not complete for a reason other than the network (e.g. resets that never
    settle)."""
