"""Pull cursors: opaque to clients, bound to their owner, and checked on the way back in.

A cursor names a sync position and the projection epoch it was issued under, and carries an
HMAC over both and the owner's id. So a cursor from another user, from another installation,
or one edited by hand is refused (400), and one from before a projection change is answered
with ``reset`` instead of being misread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from uuid import UUID

PREFIX = "c1"


class CursorError(ValueError):
    """Malformed, or not issued by this server for this user."""


@dataclass(frozen=True)
class Cursor:
    position: int
    epoch: int


def derive_key(secret: str) -> bytes:
    """A key for cursors only, so that it is never the key that signs tokens."""
    return hmac.new(secret.encode(), b"sync-server pull cursor v1", hashlib.sha256).digest()


def _mac(key: bytes, owner: UUID, position: int, epoch: int) -> str:
    message = owner.bytes + f"{position}.{epoch}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def encode(key: bytes, owner: UUID, position: int, epoch: int) -> str:
    return f"{PREFIX}.{position}.{epoch}.{_mac(key, owner, position, epoch)}"


def decode(key: bytes, owner: UUID, text: str) -> Cursor:
    parts = text.split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise CursorError("not a cursor of this server")
    try:
        position, epoch = int(parts[1]), int(parts[2])
    except ValueError:
        raise CursorError("not a cursor of this server") from None
    if position < 0 or epoch < 0 or len(text) > 100:
        raise CursorError("not a cursor of this server")
    if not hmac.compare_digest(parts[3], _mac(key, owner, position, epoch)):
        raise CursorError("this cursor was not issued to this user by this server")
    return Cursor(position, epoch)
