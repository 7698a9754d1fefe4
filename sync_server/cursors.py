"""Pull cursors: opaque to clients, bound to their owner, and checked on the way back in.

A cursor names a sync position, the projection epoch it was issued under, and the entities it
covers, and carries an HMAC over those and the owner's id. So a cursor from another user, from
another installation, or one edited by hand is refused (400); one from before a projection
change is answered with ``reset`` instead of being misread; and one issued for a pull of
``entities=show`` is refused for a pull of every entity, which would silently skip the costs
before its position. (The other way round is safe: a cursor that covers every entity may be
used to pull any subset.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from uuid import UUID

PREFIX: Final = "c1"
ENTITY_BITS: Final = {"show": 1, "cost": 2, "workout": 4, "product": 8}
ALL: Final = frozenset(ENTITY_BITS)


class CursorError(ValueError):
    """Malformed, or not issued by this server for this user."""


@dataclass(frozen=True)
class Cursor:
    position: int
    epoch: int
    entities: frozenset[str] = ALL


def derive_key(secret: str) -> bytes:
    """A key for cursors only, so that it is never the key that signs tokens."""
    return hmac.new(secret.encode(), b"sync-server pull cursor v1", hashlib.sha256).digest()


def _mask(entities: Iterable[str]) -> int:
    return sum(ENTITY_BITS[name] for name in set(entities))


def _mac(key: bytes, owner: UUID, position: int, epoch: int, mask: int) -> str:
    message = owner.bytes + f"{position}.{epoch}.{mask}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def encode(key: bytes, owner: UUID, cursor: Cursor) -> str:
    mask = _mask(cursor.entities)
    mac = _mac(key, owner, cursor.position, cursor.epoch, mask)
    return f"{PREFIX}.{cursor.position}.{cursor.epoch}.{mask:x}.{mac}"


def decode(key: bytes, owner: UUID, text: str) -> Cursor:
    parts = text.split(".")
    if len(text) > 100 or len(parts) != 5 or parts[0] != PREFIX:
        raise CursorError("not a cursor of this server")
    try:
        position, epoch, mask = int(parts[1]), int(parts[2]), int(parts[3], 16)
    except ValueError:
        raise CursorError("not a cursor of this server") from None
    if position < 0 or epoch < 0 or not 0 < mask <= _mask(ALL):
        raise CursorError("not a cursor of this server")
    if not hmac.compare_digest(parts[4], _mac(key, owner, position, epoch, mask)):
        raise CursorError("this cursor was not issued to this user by this server")
    entities = frozenset(name for name, bit in ENTITY_BITS.items() if mask & bit)
    return Cursor(position, epoch, entities)
