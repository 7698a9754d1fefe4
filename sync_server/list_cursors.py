"""Cursors of the REST lists: opaque to clients, signed, bound to their owner and their query.

A list cursor names where the next page starts (``projections.listing.After``: the listing's
pin, and the sort key and id of the last row sent), the projection epoch it was issued under,
and a digest of the query (collection, sort, filters) it belongs to. It is signed like a pull
cursor (``pull_cursors.sign``), so one edited by hand, issued to someone else, or presented with
other filters than it was issued for is refused (400) rather than answered with a page of some
other listing.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Final
from uuid import UUID

import msgspec

from projections.listing import After

from .pull_cursors import CursorError, sign, verify

PREFIX: Final = "l1"
_MAX_LENGTH: Final = 600


class ListCursor(msgspec.Struct, frozen=True, array_like=True):
    query: str
    epoch: int
    pinned: int
    key: str
    id: UUID

    @property
    def after(self) -> After:
        return After(self.pinned, self.key, self.id)


_decode = msgspec.json.Decoder(ListCursor).decode


def query_digest(collection: str, sort: str, filters: Iterable[tuple[str, object]]) -> str:
    """What a cursor's query must equal: the collection, the sort and the filters, normalized."""
    text = "&".join([collection, sort, *(f"{name}={value}" for name, value in sorted(filters))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode(key: bytes, owner: UUID, cursor: ListCursor) -> str:
    payload = msgspec.json.encode(cursor)
    text = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{PREFIX}.{text}.{sign(key, owner, payload)}"


def decode(key: bytes, owner: UUID, text: str) -> ListCursor:
    parts = text.split(".")
    if len(text) > _MAX_LENGTH or len(parts) != 3 or parts[0] != PREFIX:
        raise CursorError("not a list cursor of this server")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
    except ValueError:
        raise CursorError("not a list cursor of this server") from None
    if not verify(key, owner, payload, parts[2]):
        raise CursorError("this cursor was not issued to this user by this server")
    try:
        return _decode(payload)
    except msgspec.DecodeError:
        raise CursorError("not a list cursor of this server") from None
