"""The log as NDJSON: ``export`` streams it out, ``import_log`` loads it into an empty store.

The file, one JSON object per line:

1. ``{"kind": "header", "format": "sync-server/log", "version": 1, "exported_at": …}``
2. one ``{"kind": "event", …}`` per event, in (owner, position) order, exactly as stored (never
   upcast), with its hash;
3. one ``{"kind": "key", …}`` per idempotency key (so that an op retried after a restore still
   answers ``duplicate`` instead of applying again);
4. ``{"kind": "end", "events": n, "keys": m}``: a file cut short is told from a complete one.

Both directions take constant memory: export reads one snapshot through a server-side cursor
(on SQLite, a read transaction stepped row by row), and import checks each line as it comes:
its shape, its event type, the order, that no position repeats (a bitmap, 1 bit per position),
and that its hash follows its owner's previous event (``chain.py``), which catches any edited,
missing or reordered event line. A line that hashes right may still hold what the store cannot:
numbers beyond its columns, a recording time before 1970 or with no UTC form, a NUL character on
PostgreSQL; each is refused by its line too, before any SQL sees it. A damaged file stops the
import at the first bad line, named with its number, and nothing of the file is kept: the whole
import is one transaction, which rolls back. (One transaction rather than a staging table: both
databases handle a transaction of millions of rows, and nothing else has to be cleaned up after
a failure.) Once it has committed, one change notice per owner imported tells the servers
watching (``changes.py``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO, Final
from uuid import UUID

import msgspec

from schemas.moments import in_utc

from . import chain, changes
from .errors import EventStoreError, UnknownEventType
from .events import MAX_POSITION, MAX_SCHEMA_VERSION, MAX_VERSION, EventMetadata
from .store import EventStore, Sql, utc_now

FORMAT = "sync-server/log"
VERSION = 1
_BATCH = 2000

EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest recording time an import takes. No clock of this server ran before it, and a
projection counts back from a recording time (the 30-day sales window), which must not fall off
the calendar."""

# A JSON escape of NUL: an odd number of backslashes before "u0000" (an even number is an escaped
# backslash followed by the text "u0000"). Raw control characters are not valid JSON.
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class Header(msgspec.Struct, tag_field="kind", tag="header", forbid_unknown_fields=True):
    format: str
    version: int
    exported_at: str
    about: dict[str, Any] = {}
    """What the exporting application adds (the projections' epochs, …)."""


class EventLine(msgspec.Struct, tag_field="kind", tag="event", forbid_unknown_fields=True):
    position: Annotated[int, msgspec.Meta(ge=1, le=MAX_POSITION)]
    owner: UUID
    stream_type: Annotated[str, msgspec.Meta(min_length=1)]
    stream_id: UUID
    version: Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]
    type: Annotated[str, msgspec.Meta(min_length=3)]
    schema_version: Annotated[int, msgspec.Meta(ge=1, le=MAX_SCHEMA_VERSION)]
    data: dict[str, Any]
    metadata: EventMetadata
    recorded_at: Annotated[datetime, msgspec.Meta(tz=True)]
    hash: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class KeyLine(msgspec.Struct, tag_field="kind", tag="key", forbid_unknown_fields=True):
    owner: UUID
    key: Annotated[str, msgspec.Meta(min_length=1)]
    outcome: str
    """Base64 of the stored outcome."""
    recorded_at: Annotated[datetime, msgspec.Meta(tz=True)]


class End(msgspec.Struct, tag_field="kind", tag="end", forbid_unknown_fields=True):
    events: int
    keys: int


Line = Header | EventLine | KeyLine | End
_line = msgspec.json.Decoder(Line)
_encode = msgspec.json.Encoder().encode


class BadLine(EventStoreError):
    """The file is damaged at ``line`` (1-based); nothing of it was imported."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


class NotEmpty(EventStoreError):
    """An import needs an empty store."""


@dataclass(frozen=True)
class Counts:
    events: int
    keys: int
    about: dict[str, Any] | None = None
    """The header's ``about`` (on import)."""


Progress = Callable[[int], None]
"""Called with the number of events done so far, every few thousand."""


# -- export -------------------------------------------------------------------------------------


class _RawEvent(msgspec.Struct, tag_field="kind", tag="event"):
    # Data and metadata go out as stored, without being decoded and encoded again.
    position: int
    owner: str
    stream_type: str
    stream_id: str
    version: int
    type: str
    schema_version: int
    data: msgspec.Raw
    metadata: msgspec.Raw
    recorded_at: str
    hash: str | None


def export(
    store: EventStore,
    out: BinaryIO,
    progress: Progress | None = None,
    about: Callable[[Sql], dict[str, Any]] | None = None,
) -> Counts:
    """Write the whole log to ``out`` as of one snapshot; see the module doc. ``about`` reads,
    in that snapshot, what goes into the header's ``about``."""
    text = "::text" if store.backend == "postgres" else ""
    events = keys = 0
    with store.snapshot() as sql:
        header = Header(FORMAT, VERSION, chain.instant(utc_now()), about(sql) if about else {})
        out.write(_encode(header) + b"\n")
        for row in sql.stream(
            f"SELECT position, owner{text}, stream_type, stream_id{text}, version, type, "
            f"schema_version, data{text}, metadata{text}, recorded_at, hash FROM events "
            "ORDER BY owner, position"
        ):
            position, owner, stream_type, stream_id, version, type_, schema, data, meta = row[:9]
            recorded_at, hash_ = row[9:]
            line = _RawEvent(
                position, str(owner), stream_type, str(stream_id), version, type_, schema,
                msgspec.Raw(data.encode() if isinstance(data, str) else bytes(data)),
                msgspec.Raw(meta.encode() if isinstance(meta, str) else bytes(meta)),
                chain.instant(recorded_at), None if hash_ is None else bytes(hash_).hex(),
            )  # fmt: skip
            out.write(_encode(line) + b"\n")
            events += 1
            if progress is not None and events % 5000 == 0:
                progress(events)
        for owner, key, outcome, recorded_at in sql.stream(
            "SELECT owner, key, outcome, recorded_at FROM idempotency_keys ORDER BY owner, key"
        ):
            line = KeyLine(
                owner if isinstance(owner, UUID) else UUID(owner),
                key,
                base64.b64encode(bytes(outcome)).decode(),
                recorded_at,
            )
            out.write(_encode(line) + b"\n")
            keys += 1
        out.write(_encode(End(events, keys)) + b"\n")
    if progress is not None:
        progress(events)
    return Counts(events, keys)


# -- import -------------------------------------------------------------------------------------


_PAGE_BITS = 1024


class _Positions:
    """Which positions were seen: one bit each, in pages of 1024 made as positions reach them, so
    a million events cost a few hundred KB however far apart their positions are (one bitmap up
    to the highest position would cost a gigabyte for a single line at position 2^33)."""

    def __init__(self) -> None:
        self._pages: dict[int, bytearray] = {}

    def add(self, position: int) -> bool:
        """Mark ``position``; False if it was already marked."""
        page, offset = divmod(position, _PAGE_BITS)
        bits = self._pages.get(page)
        if bits is None:
            bits = self._pages[page] = bytearray(_PAGE_BITS // 8)
        byte, bit = divmod(offset, 8)
        if bits[byte] >> bit & 1:
            return False
        bits[byte] |= 1 << bit
        return True


@dataclass
class _Owner:
    owner: UUID
    previous: bytes = chain.GENESIS
    first: int = 0
    last: int = 0


def _lines(source: Iterable[bytes], nul_allowed: bool) -> Iterator[tuple[int, Line]]:
    for number, raw in enumerate(source, start=1):
        text = raw.rstrip(b"\r\n")
        if not text.strip():
            raise BadLine(number, "empty line")
        try:
            line = _line.decode(text)
        except msgspec.ValidationError as error:
            raise BadLine(number, f"not a line of a log export: {error}") from None
        except msgspec.DecodeError as error:
            raise BadLine(number, f"not JSON: {error}") from None
        except RecursionError:
            raise BadLine(number, "not JSON: nested too deeply") from None
        # The substring test first: it is a C scan, where the regex (which may match at any
        # backslash run) cost a third of an import's time on lines that hold no NUL at all.
        if not nul_allowed and b"\\u0000" in text and _NUL.search(text):
            raise BadLine(number, "a NUL character (\\u0000), which PostgreSQL cannot store")
        yield number, line


def _recorded_at(number: int, moment: datetime) -> datetime:
    """An imported recording time, in UTC, or the BadLine that says why the store cannot take it."""
    try:
        utc = in_utc(moment)
    except ValueError as error:
        raise BadLine(number, f"recorded_at {error}") from None
    if utc < EARLIEST:
        raise BadLine(
            number, f"recorded_at is before {EARLIEST:%Y-%m-%d}, earlier than this server records"
        )
    return utc


def import_log(
    store: EventStore,
    source: Iterable[bytes],
    progress: Progress | None = None,
    then: Callable[[Sql, Counts], None] | None = None,
) -> Counts:
    """Load an export into this store, which must hold no event; all or nothing. ``then`` runs
    in the same transaction once the file has been read whole and found sound."""
    with store.sql() as sql:
        store.hold_appends(sql)  # nothing may be appended meanwhile
        for table in ("events", "event_chains", "idempotency_keys"):
            if sql.fetchone(f"SELECT 1 FROM {table} LIMIT 1") is not None:
                raise NotEmpty(
                    f"the store is not empty ({table} has rows): import needs an empty one"
                )
        importer = _Importer(store, sql, progress)
        counts = importer.run(source)
        if then is not None:
            then(sql, counts)
    store.announce(importer.notices)  # after the commit, as for any write
    return counts


class _Importer:
    def __init__(self, store: EventStore, sql: Sql, progress: Progress | None) -> None:
        self.store = store
        self.sql = sql
        self.progress = progress
        self.positions = _Positions()
        self.current: _Owner | None = None
        self.events: list[tuple[Any, ...]] = []
        self.heads: list[tuple[UUID, int, bytes]] = []
        self.keys: list[tuple[UUID, str, bytes, datetime]] = []
        self.notices: list[changes.Committed] = []
        """One per owner: its first and last positions."""
        self.event_count = 0
        self.key_count = 0
        self.highest = 0

    def run(self, source: Iterable[bytes]) -> Counts:
        lines = _lines(source, nul_allowed=self.sql.backend != "postgres")
        first = next(lines, None)
        if first is None:
            raise BadLine(1, "the file is empty")
        number, header = first
        if not isinstance(header, Header) or header.format != FORMAT:
            raise BadLine(number, f"the first line must be the header of a {FORMAT} file")
        if header.version != VERSION:
            raise BadLine(number, f"format version {header.version} is not supported")
        last_key: tuple[UUID, str] | None = None
        for number, line in lines:
            if isinstance(line, EventLine):
                if self.key_count:
                    raise BadLine(number, "an event after the idempotency keys")
                self._event(number, line)
            elif isinstance(line, KeyLine):
                if last_key is not None and (line.owner, line.key) <= last_key:
                    raise BadLine(number, "keys out of (owner, key) order, or a repeated key")
                last_key = (line.owner, line.key)
                self._key(number, line)
            elif isinstance(line, End):
                self._end(number, line, lines)
                return Counts(self.event_count, self.key_count, header.about)
            else:
                raise BadLine(number, "a second header")
        raise BadLine(number + 1, "the file ends before its end line: it was cut short")

    def _event(self, number: int, line: EventLine) -> None:
        current = self.current
        if current is None or line.owner != current.owner:
            if current is not None and line.owner < current.owner:
                raise BadLine(number, "events out of (owner, position) order")
            self._close_owner()
            current = self.current = _Owner(line.owner)
        if line.position <= current.last:
            raise BadLine(number, "events out of (owner, position) order")
        if not self.positions.add(line.position):
            raise BadLine(number, f"position {line.position} appears twice")
        try:
            self.store.registry.upcast(line.type, line.schema_version, line.data)
        except UnknownEventType as error:
            raise BadLine(number, str(error)) from None
        recorded_at = _recorded_at(number, line.recorded_at)
        recorded = chain.instant(recorded_at)
        content = chain.Content(
            line.owner, line.stream_type, line.stream_id, line.version, line.type,
            line.schema_version, line.data, line.metadata, recorded,
        )  # fmt: skip
        expected = chain.link(current.previous, content)
        if expected.hex() != line.hash:
            raise BadLine(
                number,
                "the hash does not match the event: this line, or the line of this owner's "
                "event before it, was edited or removed",
            )
        current.previous, current.last = expected, line.position
        current.first = current.first or line.position
        self.highest = max(self.highest, line.position)
        self.events.append(
            (
                line.position, line.owner, line.stream_type, line.stream_id, line.version,
                line.type, line.schema_version, _encode(line.data).decode(),
                _encode(line.metadata).decode(), recorded_at, expected,
            )
        )  # fmt: skip
        self.event_count += 1
        if len(self.events) >= _BATCH:
            self._flush_events()

    def _close_owner(self) -> None:
        current = self.current
        if current is not None and current.last:
            self.heads.append((current.owner, current.last, current.previous))
            self.notices.append(changes.Committed(current.owner, current.first, current.last))

    def _key(self, number: int, line: KeyLine) -> None:
        try:
            outcome = base64.b64decode(line.outcome, validate=True)
        except (binascii.Error, ValueError):
            raise BadLine(number, "outcome is not base64") from None
        self.keys.append((line.owner, line.key, outcome, _recorded_at(number, line.recorded_at)))
        self.key_count += 1
        if len(self.keys) >= _BATCH:
            self._flush_keys()

    def _end(self, number: int, line: End, rest: Iterator[tuple[int, Line]]) -> None:
        if (line.events, line.keys) != (self.event_count, self.key_count):
            raise BadLine(
                number,
                f"the end line counts {line.events} events and {line.keys} keys, the file "
                f"holds {self.event_count} and {self.key_count}",
            )
        after = next(rest, None)
        if after is not None:
            raise BadLine(after[0], "a line after the end line")
        self._close_owner()
        self._flush_events()
        self._flush_keys()
        if self.sql.backend == "postgres" and self.highest:
            self.sql.execute("SELECT setval('events_position_seq', ?)", [self.highest])
        if self.progress is not None:
            self.progress(self.event_count)

    def _flush_events(self) -> None:
        if self.events:
            columns = (
                "position, owner, stream_type, stream_id, version, type, schema_version, "
                "data, metadata, recorded_at, hash"
            )
            if self.sql.backend == "postgres":
                self.sql.copy("events", columns, self.events)  # type: ignore[attr-defined]
            else:
                # tx: on SQLite the feed is in position order; each event its own "transaction".
                self.sql.executemany(
                    f"INSERT INTO events ({columns}, tx) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(*row, row[0]) for row in self.events],
                )
            self.events = []
            if self.progress is not None:
                self.progress(self.event_count)
        if self.heads:
            self.sql.executemany(chain.UPSERT_HEAD, self.heads)
            self.heads = []

    def _flush_keys(self) -> None:
        if self.keys:
            self.sql.executemany(
                "INSERT INTO idempotency_keys (owner, key, outcome, recorded_at) VALUES (?,?,?,?)",
                self.keys,
            )
            self.keys = []
