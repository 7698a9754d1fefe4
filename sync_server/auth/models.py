"""The wire shapes of the auth endpoints (PROTOCOL.md, "Auth"): request bodies and answers.

Bodies only fix types here; lengths and syntax are checked by ``validation.py`` so that every
problem of a body is reported at once, with its path.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec


class RegisterBody(msgspec.Struct, frozen=True):
    email: str
    password: str
    name: str | None = None
    device_id: str | None = None


class LoginBody(msgspec.Struct, frozen=True):
    email: str
    password: str
    device_id: str | None = None


class RefreshBody(msgspec.Struct, frozen=True):
    """The body of both ``/refresh`` and ``/logout``."""

    refresh_token: str


class User(msgspec.Struct, frozen=True):
    id: UUID
    email: str
    name: str | None
    created_at: datetime


class Session(msgspec.Struct, frozen=True):
    id: UUID
    device_id: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool = False


class Tokens(msgspec.Struct, frozen=True):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


class SignedIn(msgspec.Struct, frozen=True):
    """The answer of register and login."""

    user: User
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


class Me(msgspec.Struct, frozen=True):
    user: User


class Sessions(msgspec.Struct, frozen=True):
    sessions: list[Session]


class Principal(msgspec.Struct, frozen=True):
    """Who an authenticated request acts for: set by the middleware in ``scope["state"]``."""

    user: User
    session_id: UUID
