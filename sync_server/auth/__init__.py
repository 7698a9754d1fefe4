"""Accounts and authentication (PROTOCOL.md, "Auth").

``service.Auth`` does the work, ``middleware.AuthMiddleware`` guards every ``/v1/`` route,
``accounts`` holds the SQL, and ``passwords``, ``tokens``, ``rate_limit``, ``signing_key`` one
concern each. Nothing here ever logs a password, token, secret or hash.
"""

from .middleware import AuthMiddleware, principal_of, session_id_of, user_of
from .models import Principal, User
from .service import Auth
from .signing_key import ConfigurationError, load_signing_key

__all__ = [
    "Auth",
    "AuthMiddleware",
    "ConfigurationError",
    "Principal",
    "User",
    "load_signing_key",
    "principal_of",
    "session_id_of",
    "user_of",
]
