"""Access tokens (short-lived JWTs) and refresh tokens (opaque, random, stored as hashes)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from uuid import UUID

import jwt
import msgspec

ALGORITHM = "HS256"  # the only one accepted: "none" and every other algorithm are refused
# Several processes, possibly on several hosts, issue and check tokens: a few seconds of
# clock skew must not make a fresh token "issued in the future".
LEEWAY_SECONDS = 5
MAX_TOKEN_LENGTH = 4096
REFRESH_TOKEN_BYTES = 32  # 256 bits: unguessable, so a fast hash is enough to store it


class TokenExpired(Exception):
    pass


class TokenInvalid(Exception):
    pass


class AccessClaims(msgspec.Struct, frozen=True):
    user_id: UUID
    session_id: UUID


class AccessTokens:
    def __init__(self, secret: str, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: UUID, session_id: UUID, now: datetime) -> str:
        claims = {
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.ttl_seconds)).timestamp()),
            "iss": self.issuer,
            "aud": self.audience,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid("malformed token")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["sub", "sid", "iat", "exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("the access token expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise TokenInvalid("invalid token") from None
        try:
            return AccessClaims(UUID(str(claims["sub"])), UUID(str(claims["sid"])))
        except ValueError:
            raise TokenInvalid("invalid token") from None


def new_refresh_token() -> tuple[str, bytes]:
    """A fresh refresh token and the digest that is all the database ever sees of it."""
    token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
