"""Pull cursors: opaque to clients, bound to their owner, and checked on the way back in.

A cursor names a place in sync order, the projection epoch it was issued under, and the
entities it covers, and carries an HMAC over those and the owner's id. So a cursor from another
user, from another installation, or one edited by hand is refused (400); one from before a
projection change is answered with ``reset`` instead of being misread; and one issued for a pull
of ``entities=show`` is refused for a pull of every entity, which would silently skip the costs
before its position. (The other way round is safe: a cursor that covers every entity may be used
to pull any subset.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from projections import tables

PREFIX: Final = "c1"
ENTITY_BITS: Final = {"show": 1, "cost": 2, "workout": 4, "product": 8}
ALL: Final = frozenset(ENTITY_BITS)


class CursorError(ValueError):
    """Malformed, or not issued by this server for this user."""


@dataclass(frozen=True)
class Cursor:
    position: int
    """Every change at a sync position below this one has been seen."""
    epoch: int
    entities: frozenset[str] = ALL
    tie: tuple[int, UUID] | None = None
    """Which rows *at* ``position`` were seen: those up to this (table rank, id), in pull order;
    None when all of them were. One event can change several rows (a cost and its show), and a
    page may end between them."""

    @property
    def after(self) -> tables.SyncKey:
        return tables.SyncKey(self.position, *(self.tie or (tables.LAST_RANK, None)))


def derive_key(secret: str) -> bytes:
    """A key for cursors only, so that it is never the key that signs tokens."""
    return hmac.new(secret.encode(), b"sync-server pull cursor v1", hashlib.sha256).digest()


def _mask(entities: Iterable[str]) -> int:
    return sum(ENTITY_BITS[name] for name in set(entities))


def sign(key: bytes, owner: UUID, message: bytes) -> str:
    """A short MAC of ``message`` bound to ``owner`` (shared by every cursor of this server)."""
    digest = hmac.new(key, owner.bytes + message, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify(key: bytes, owner: UUID, message: bytes, mac: str) -> bool:
    return hmac.compare_digest(mac, sign(key, owner, message))


def _body(cursor: Cursor) -> str:
    tie = f"{cursor.tie[0]}.{cursor.tie[1].hex}" if cursor.tie else "-.-"
    return f"{cursor.position}.{tie}.{cursor.epoch}.{_mask(cursor.entities):x}"


def encode(key: bytes, owner: UUID, cursor: Cursor) -> str:
    body = _body(cursor)
    return f"{PREFIX}.{body}.{sign(key, owner, body.encode())}"


_MALFORMED = "not a cursor of this server"


def decode(key: bytes, owner: UUID, text: str) -> Cursor:
    parts = text.split(".")
    if len(text) > 160 or len(parts) != 7 or parts[0] != PREFIX:
        raise CursorError(_MALFORMED)
    try:
        position, epoch, mask = int(parts[1]), int(parts[4]), int(parts[5], 16)
        tie = None if parts[2:4] == ["-", "-"] else (int(parts[2]), UUID(hex=parts[3]))
    except ValueError:
        raise CursorError(_MALFORMED) from None
    if position < 0 or epoch < 0 or not 0 < mask <= _mask(ALL):
        raise CursorError(_MALFORMED)
    if tie is not None and not 0 <= tie[0] < tables.LAST_RANK:
        raise CursorError(_MALFORMED)
    entities = frozenset(name for name, bit in ENTITY_BITS.items() if mask & bit)
    cursor = Cursor(position, epoch, entities, tie)
    # The MAC is checked over the canonical form, so no two spellings of one cursor exist.
    if not verify(key, owner, _body(cursor).encode(), parts[6]):
        raise CursorError("this cursor was not issued to this user by this server")
    return cursor
