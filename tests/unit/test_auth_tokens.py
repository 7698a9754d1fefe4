"""Access tokens: HS256 only, with issuer, audience, expiry and a session; refresh tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from sync_server.auth.tokens import (
    AccessTokens,
    TokenExpired,
    TokenInvalid,
    hash_refresh_token,
    new_refresh_token,
)

SECRET = "unit-secret-" + "s" * 60
tokens = AccessTokens(SECRET, "sync-server", "sync-clients", 900)


def claims(**changes: object) -> dict[str, object]:
    now = int(datetime.now(UTC).timestamp())
    base: dict[str, object] = {
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 900,
        "iss": "sync-server",
        "aud": "sync-clients",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_an_issued_token_verifies_to_its_user_and_session() -> None:
    user, session = uuid.uuid4(), uuid.uuid4()
    token = tokens.issue(user, session, datetime.now(UTC))
    verified = tokens.verify(token)
    assert (verified.user_id, verified.session_id) == (user, session)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_an_expired_token_is_told_apart() -> None:
    token = tokens.issue(uuid.uuid4(), uuid.uuid4(), datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(TokenExpired):
        tokens.verify(token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b.c",
        "x" * 5000,
        jwt.encode(claims(), SECRET, algorithm="HS512"),
        jwt.encode(claims(), "another-secret-" + "o" * 40, algorithm="HS256"),
        jwt.encode(claims(aud="other"), SECRET, algorithm="HS256"),
        jwt.encode(claims(iss="other"), SECRET, algorithm="HS256"),
        jwt.encode(claims(sid=None), SECRET, algorithm="HS256"),
        jwt.encode(claims(iat=None), SECRET, algorithm="HS256"),
        jwt.encode(claims(sub="not-a-uuid"), SECRET, algorithm="HS256"),
        jwt.encode(claims(sid=12), SECRET, algorithm="HS256"),
        jwt.encode(claims(), None, algorithm="none"),
    ],
    ids=[
        "empty", "garbage", "three-parts", "huge", "HS512", "other-secret", "audience",
        "issuer", "no-sid", "no-iat", "bad-sub", "int-sid", "alg-none",
    ],
)  # fmt: skip
def test_anything_else_is_invalid(token: str) -> None:
    with pytest.raises(TokenInvalid):
        tokens.verify(token)


def test_refresh_tokens_are_256_bit_random_and_stored_as_sha256() -> None:
    token, digest = new_refresh_token()
    other, _ = new_refresh_token()
    assert token != other and len(token) >= 43
    assert digest == hash_refresh_token(token) and len(digest) == 32
