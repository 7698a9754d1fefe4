"""The SQL of accounts: users, sessions and refresh-token digests. Each function runs inside a
transaction its caller opened (``store.sql()`` or ``store.snapshot()``) and takes ``now`` from
it, so that one request sees one time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from uuid import UUID

from event_store import Sql, as_uuid

from .models import Session, User


@dataclass(frozen=True)
class Credentials:
    user: User
    password_hash: str


class Rotation(Enum):
    ROTATED = "rotated"
    UNKNOWN = "unknown"  # no such token, or it expired
    REUSED = "reused"  # it was rotated already: the session was revoked just now
    ENDED = "ended"  # the session was revoked or expired before


@dataclass(frozen=True)
class RotationResult:
    outcome: Rotation
    user_id: UUID | None = None
    session_id: UUID | None = None


_USER_COLUMNS = "u.id, u.email, u.name, u.created_at"


def _user(row: tuple[object, ...]) -> User:
    id_, email, name, created_at = row[:4]
    return User(as_uuid(id_), str(email), name if name is None else str(name), _at(created_at))


def _at(value: object) -> datetime:
    assert isinstance(value, datetime)
    return value


# -- users --------------------------------------------------------------------------------------


def insert_user(sql: Sql, user: User, password_hash: str) -> bool:
    """Insert ``user``; False (and nothing written) when the email is taken."""
    row = sql.fetchone(
        "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (email) DO NOTHING RETURNING id",
        [user.id, user.email, user.name, password_hash, user.created_at, user.created_at],
    )
    return row is not None


def credentials(sql: Sql, email: str) -> Credentials | None:
    row = sql.fetchone(
        f"SELECT {_USER_COLUMNS}, u.password_hash FROM users u WHERE u.email = ?", [email]
    )
    return None if row is None else Credentials(_user(row), str(row[4]))


def replace_password_hash(sql: Sql, user_id: UUID, password_hash: str, now: datetime) -> None:
    sql.execute(
        "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
        [password_hash, now, user_id],
    )


# -- sessions -----------------------------------------------------------------------------------


def open_session(
    sql: Sql,
    session_id: UUID,
    user_id: UUID,
    device_id: str | None,
    token_hash: bytes,
    now: datetime,
    expires_at: datetime,
) -> None:
    sql.execute(
        "INSERT INTO sessions (id, user_id, device_id, created_at, last_used_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [session_id, user_id, device_id, now, now, expires_at],
    )
    _insert_refresh_token(sql, token_hash, session_id, now, expires_at)


def live_user(sql: Sql, session_id: UUID, user_id: UUID, now: datetime) -> User | None:
    """The user of a session that is neither revoked nor expired: the check behind every
    authenticated request, one primary-key lookup on each table."""
    row = sql.fetchone(
        f"SELECT {_USER_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.id = ? AND s.user_id = ? AND s.revoked_at IS NULL AND s.expires_at > ?",
        [session_id, user_id, now],
    )
    return None if row is None else _user(row)


def live_sessions(sql: Sql, user_id: UUID, now: datetime) -> list[Session]:
    rows = sql.fetchall(
        "SELECT id, device_id, created_at, last_used_at, expires_at FROM sessions "
        "WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? "
        "ORDER BY created_at DESC, id",
        [user_id, now],
    )
    return [
        Session(as_uuid(i), d if d is None else str(d), _at(c), _at(lu), _at(e))
        for i, d, c, lu, e in rows
    ]


def session_owner(sql: Sql, session_id: UUID) -> UUID | None:
    row = sql.fetchone("SELECT user_id FROM sessions WHERE id = ?", [session_id])
    return None if row is None else as_uuid(row[0])


def revoke_session(sql: Sql, session_id: UUID, reason: str, now: datetime) -> bool:
    """Revoke a session (its refresh tokens and access tokens stop working); False if it was
    revoked already."""
    changed = sql.execute(
        "UPDATE sessions SET revoked_at = ?, revoked_reason = ? "
        "WHERE id = ? AND revoked_at IS NULL",
        [now, reason, session_id],
    )
    return changed > 0


# -- refresh tokens -----------------------------------------------------------------------------


def _insert_refresh_token(
    sql: Sql, token_hash: bytes, session_id: UUID, now: datetime, expires_at: datetime
) -> None:
    sql.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) "
        "VALUES (?, ?, ?, ?)",
        [token_hash, session_id, now, expires_at],
    )


def refresh_token_session(sql: Sql, token_hash: bytes) -> tuple[UUID, UUID] | None:
    """(session id, user id) of a refresh token, whatever its state."""
    row = sql.fetchone(
        "SELECT t.session_id, s.user_id FROM refresh_tokens t "
        "JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = ?",
        [token_hash],
    )
    return None if row is None else (as_uuid(row[0]), as_uuid(row[1]))


def rotate_refresh_token(
    sql: Sql, old_hash: bytes, new_hash: bytes, now: datetime, expires_at: datetime
) -> RotationResult:
    """Spend ``old_hash`` and issue ``new_hash`` in its session, or say why not.

    Spending is one conditional UPDATE: of two requests racing with the same token exactly one
    wins (the row lock on PostgreSQL, the single writer on SQLite), and the other is seen as a
    reuse.
    """
    spent = sql.fetchone(
        "UPDATE refresh_tokens SET used_at = ? "
        "WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING session_id",
        [now, old_hash, now],
    )
    if spent is None:
        row = sql.fetchone(
            "SELECT t.session_id, t.used_at, s.user_id FROM refresh_tokens t "
            "JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = ?",
            [old_hash],
        )
        if row is None or row[1] is None:  # unknown, or expired without ever being used
            return RotationResult(Rotation.UNKNOWN)
        session_id, user_id = as_uuid(row[0]), as_uuid(row[2])
        revoke_session(sql, session_id, "refresh_token_reuse", now)
        return RotationResult(Rotation.REUSED, user_id, session_id)

    session_id = as_uuid(spent[0])
    row = sql.fetchone(
        "SELECT user_id FROM sessions WHERE id = ? AND revoked_at IS NULL AND expires_at > ?",
        [session_id, now],
    )
    if row is None:
        return RotationResult(Rotation.ENDED, session_id=session_id)
    user_id = as_uuid(row[0])
    sql.execute(
        "UPDATE sessions SET last_used_at = ?, expires_at = ? WHERE id = ?",
        [now, expires_at, session_id],
    )
    _insert_refresh_token(sql, new_hash, session_id, now, expires_at)
    # Spent tokens are kept to recognise a reuse, until they would have expired anyway.
    sql.execute(
        "DELETE FROM refresh_tokens WHERE session_id = ? AND expires_at <= ?", [session_id, now]
    )
    return RotationResult(Rotation.ROTATED, user_id, session_id)
