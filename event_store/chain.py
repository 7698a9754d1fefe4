"""Tamper evidence: each owner's events form a hash chain, and a head record closes it.

Every event stores ``hash = sha256(previous hash || canonical content)``, where the previous hash
is that of the same owner's event just before it (in position order), or 32 zero bytes for the
owner's first event. The owner's last hash and position are kept in ``event_chains`` (the head),
written in the same transaction as the events. So:

* an edited event no longer matches its hash (or, if its hash was edited too, the next event no
  longer follows it);
* a deleted event breaks the link of the event after it;
* a deleted *last* event leaves the head pointing past the end of the chain;
* a deleted head, with events left, is itself reported.

The content covers the owner, the stream, the version, the type, the schema version, the data
and the metadata exactly as stored (never upcast), and the recording time. Positions and ``tx``
are not covered: the chain fixes the order of one owner's events, and a log exported and
imported elsewhere may take other transaction ids. All hashing is ``hashlib.sha256``.

What it does not do: someone with write access to the database who recomputes every later hash
and the head leaves a consistent chain. Against that, keep a copy of the heads somewhere else
(``heads`` gives them): any later rewrite of an event before a recorded head changes that head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec

from .events import EventMetadata
from .rows import as_uuid

GENESIS = bytes(32)
"""The "previous hash" of an owner's first event."""

_canonical = msgspec.json.Encoder(order="sorted").encode
_data_decoder = msgspec.json.Decoder(dict[str, Any])
_metadata_decoder = msgspec.json.Decoder(EventMetadata)


def instant(moment: datetime) -> str:
    """The one spelling of a recording time that the chain covers (microseconds, UTC)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are not recorded; use UTC")
    # Not strftime: its %Y drops the leading zeros of a year before 1000 (on glibc), and the
    # text must keep its width to keep text order equal to time order (SQLite compares it).
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


# gc=False: made by the thousand in a push and never part of a reference cycle, so the
# cyclic garbage collector need not track them (msgspec's option).
class Content(msgspec.Struct, frozen=True, gc=False):
    """What the hash of one event covers, as stored."""

    owner: UUID
    stream_type: str
    stream_id: UUID
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: EventMetadata
    recorded_at: str
    """``instant(recorded_at)``: computed once per transaction by the append path."""

    def encode(self) -> bytes:
        # UUIDs in their RFC 4122 text form; JSON without whitespace, keys sorted at every level.
        return _canonical(
            [
                self.owner,
                self.stream_type,
                self.stream_id,
                self.version,
                self.type,
                self.schema_version,
                self.data,
                self.metadata,
                self.recorded_at,
            ]
        )


def link(previous: bytes, content: Content) -> bytes:
    """The hash of an event that follows ``previous`` in its owner's chain."""
    return hashlib.sha256(previous + content.encode()).digest()


def chain(previous: bytes, contents: Iterable[Content]) -> list[bytes]:
    """The hashes of consecutive events of one owner, the first following ``previous``."""
    hashes = []
    for content in contents:
        previous = link(previous, content)
        hashes.append(previous)
    return hashes


UPSERT_HEAD = (
    "INSERT INTO event_chains (owner, position, hash) VALUES (?, ?, ?) "
    "ON CONFLICT (owner) DO UPDATE SET position = excluded.position, hash = excluded.hash"
)
"""Move an owner's head: ``[owner, position, hash]``."""

# -- reading stored rows back --------------------------------------------------------------------

CHAIN_COLUMNS = (
    "position, owner, stream_type, stream_id, version, type, schema_version, data, metadata, "
    "recorded_at, hash"
)
"""The columns ``StoredLink.from_row`` reads, in this order."""


def _json(value: Any, decoder: msgspec.json.Decoder[Any]) -> Any:
    if isinstance(value, str | bytes):
        return decoder.decode(value)
    return msgspec.convert(value, decoder.type)


@dataclass(frozen=True)
class StoredLink:
    """One event as the log holds it, with its stored hash (None: never hashed)."""

    position: int
    content: Content
    hash: bytes | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> StoredLink:
        position, owner, stream_type, stream_id, version, type_, schema_version = row[:7]
        data, metadata, recorded_at, hash_ = row[7:11]
        content = Content(
            owner=as_uuid(owner),
            stream_type=stream_type,
            stream_id=as_uuid(stream_id),
            version=version,
            type=type_,
            schema_version=schema_version,
            data=_json(data, _data_decoder),
            metadata=_json(metadata, _metadata_decoder),
            recorded_at=instant(recorded_at),
        )
        return cls(position, content, None if hash_ is None else bytes(hash_))


@dataclass(frozen=True)
class Head:
    """Where an owner's chain ends, as ``event_chains`` records it."""

    owner: UUID
    position: int
    hash: bytes


@dataclass(frozen=True)
class Break:
    """The first broken link of one owner's chain."""

    owner: UUID
    position: int | None
    """The event where the chain breaks (None: the break is in the head record alone)."""
    problem: str

    def __str__(self) -> str:
        where = f"position {self.position}" if self.position is not None else "head"
        return f"owner {self.owner}, {where}: {self.problem}"


class OwnerWalk:
    """Checks one owner's events as they come, in position order, in constant memory
    (besides the last version of each stream, which names a deleted event when it can)."""

    def __init__(self, owner: UUID) -> None:
        self.owner = owner
        self.previous = GENESIS
        self.last: int | None = None
        self.broken: Break | None = None
        self._versions: dict[tuple[str, UUID], int] = {}

    def feed(self, stored: StoredLink) -> None:
        if self.broken is not None:
            return
        content = stored.content
        stream = (content.stream_type, content.stream_id)
        expected_version = self._versions.get(stream, 0) + 1
        self._versions[stream] = content.version
        if stored.hash is None:
            self.broken = Break(self.owner, stored.position, "the event has no hash (never sealed)")
        elif link(self.previous, content) != stored.hash:
            self.broken = Break(self.owner, stored.position, _mismatch(content, expected_version))
        else:
            self.previous = stored.hash
            self.last = stored.position

    def close(self, head: Head | None) -> Break | None:
        """The first break, once every event has been fed and the head is known."""
        if self.broken is not None:
            return self.broken
        last = self.last
        if last is None:
            if head is None:
                return None
            return Break(
                self.owner,
                head.position,
                f"the head names position {head.position}, but the owner has no events left: "
                "they were deleted",
            )
        if head is None:
            return Break(self.owner, None, f"no head record, but events up to position {last}")
        if head.position > last:
            return Break(
                self.owner,
                head.position,
                f"the chain ends at position {last} but its head names position "
                f"{head.position}: the events after position {last} were deleted",
            )
        if head.position != last or head.hash != self.previous:
            return Break(
                self.owner,
                None,
                f"the head (position {head.position}, {head.hash.hex()[:16]}…) does not match "
                f"the last event (position {last}, {self.previous.hex()[:16]}…)",
            )
        return None


def _mismatch(content: Content, expected_version: int) -> str:
    stream = f"{content.stream_type}-{content.stream_id}"
    if content.version > expected_version:
        return (
            f"the hash does not follow the previous event, and stream {stream} jumps to "
            f"version {content.version} from {expected_version - 1}: an event before it was "
            "deleted"
        )
    return (
        "the hash does not match: this event was edited, or an event just before it in this "
        "owner's chain was deleted or edited"
    )


def check_chains(links: Iterable[StoredLink], heads: Iterable[Head]) -> Iterator[Break]:
    """The first broken link of every owner: ``links`` in (owner, position) order and ``heads``
    in owner order, both streamed (a merge join), so memory stays constant."""
    head_iter = iter(heads)
    next_head: Head | None = next(head_iter, None)

    def close(walk: OwnerWalk) -> Iterator[Break]:
        nonlocal next_head
        own: Head | None = None
        # Heads of owners before this one have no events left; this owner's head, if any.
        while next_head is not None and next_head.owner <= walk.owner:
            if next_head.owner == walk.owner:
                own = next_head
            else:
                orphan = OwnerWalk(next_head.owner).close(next_head)
                if orphan is not None:
                    yield orphan
            next_head = next(head_iter, None)
        found = walk.close(own)
        if found is not None:
            yield found

    walk: OwnerWalk | None = None
    for stored in links:
        owner = stored.content.owner
        if walk is None or owner != walk.owner:
            if walk is not None:
                yield from close(walk)
            walk = OwnerWalk(owner)
        walk.feed(stored)
    if walk is not None:
        yield from close(walk)
    while next_head is not None:
        orphan = OwnerWalk(next_head.owner).close(next_head)
        if orphan is not None:
            yield orphan
        next_head = next(head_iter, None)
