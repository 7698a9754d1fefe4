"""The event store: one interface, two backends (``sqlite.py``, ``postgres.py``).

Ordering, and why no reader ever skips an event (DESIGN.md, invariant 4)
-----------------------------------------------------------------------
Two kinds of reader exist, and each gets the technique that costs it least:

* **One owner's readers** (pulls, ``/v1/events``, history) read ``position > C`` for one owner.
  Every write transaction takes a lock on its owner *before* it takes any position and holds it
  until commit (``Transaction`` below; ``pg_advisory_xact_lock`` on PostgreSQL, the database
  write lock on SQLite). So one owner's transactions commit one after the other, each with
  positions above all earlier ones: a reader's snapshot always holds a prefix of that owner's
  positions and a later read can never find a lower one. Writers of different owners never
  wait for each other, and a reader is never held back by another user's slow transaction.

* **The global feed** (catch-up projectors, export, anything across owners) cannot rely on the
  owner lock: owner A may take position 100, owner B 101, and B commit first. On PostgreSQL
  each event records the id of the transaction that wrote it (``tx``, an ``xid8``), and the feed
  reads only rows with ``tx < pg_snapshot_xmin(pg_current_snapshot())``, i.e. rows of
  transactions that had all finished when the read began, ordered by ``(tx, position)``. A
  transaction still running has ``tx >= xmin`` and is read later, and by then the reader's
  checkpoint is below it, because it only ever moved to ``(tx, position)`` pairs below xmin.
  We chose this over a global lock (which would serialize every commit of every user behind
  one lock, capping throughput at the fsync rate) and over a high-water mark on gaps (a rolled
  back transaction leaves a gap that readers would have to time out on). On SQLite there is one
  writer at a time, so ``tx`` is simply the first position of the transaction and the two orders
  are the same.

Positions are taken only after the expected versions have been checked, so a rejected append
consumes none.

Every append also extends its owner's hash chain (``chain.py``): the owner lock is held, so
the head read at the start of the transaction is still the end of the chain when the events
and the new head are written. On PostgreSQL each owner transaction also holds a shared "appends"
lock, which ``hold_appends`` takes exclusively for the few moments a rebuild needs the log still.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import msgspec

from . import chain
from .changes import Committed, Deliver
from .errors import ConcurrencyError, InvalidAppend
from .events import (
    START,
    AppendResult,
    Checkpoint,
    EventMetadata,
    FeedPart,
    NewEvent,
    Page,
    RecordedEvent,
    StreamId,
)
from .rows import as_uuid
from .upcasting import UpcasterRegistry

Backend = Literal["sqlite", "postgres"]
Row = tuple[Any, ...]

_encode_json = msgspec.json.Encoder().encode
_result_decoder = msgspec.json.Decoder(AppendResult)


class Sql(abc.ABC):
    """A connection inside one transaction, with the same ``?`` placeholders on both backends.

    Everything that needs SQL in the same transaction as the log (read tables, accounts) uses
    this, so that it never has to know which database it talks to beyond ``backend``.
    """

    backend: Backend
    pipelining: bool = False
    """Whether ``pipelined`` lets the database work while Python goes on (PostgreSQL): only
    then does it pay to send writes early, in several pieces."""

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abc.abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @abc.abstractmethod
    def script(self, sql: str) -> None:
        """Run several statements with no parameters (migrations)."""

    def send(self, sql: str, params: Sequence[Any] = ()) -> Callable[[], list[Row]]:
        """Start a query and return how to get its rows. Inside ``pipelined`` the database runs
        it while the caller goes on, and only asking for the rows waits; elsewhere it has run
        when this returns."""
        rows = self.fetchall(sql, params)
        return lambda: rows

    def pipelined(self) -> AbstractContextManager[None]:
        """A block in which statements are sent without waiting for their answers (PostgreSQL's
        pipeline mode): the database works on them while Python works on what comes next.
        Reads still wait for their rows; ``execute`` no longer knows how many rows it changed,
        and an error of a write surfaces at the next read or at commit. A no-op on SQLite."""
        return contextlib.nullcontext()

    def json(self, document: bytes) -> Any:
        """A parameter that holds ``document``, encoded JSON, for a ``?::json`` placeholder:
        on PostgreSQL it goes out as it is (no decoding into a str that psycopg encodes
        again, for documents of hundreds of kilobytes)."""
        return document.decode()

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    @abc.abstractmethod
    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        """Rows of a query fetched a batch at a time (a server-side cursor on PostgreSQL), so
        that walking the whole log takes constant memory. Inside a snapshot, every row comes
        from that snapshot."""


# gc=False: made by the thousand in a push and never part of a reference cycle, so the
# cyclic garbage collector need not track them (msgspec's option).
class AppendRequest(msgspec.Struct, frozen=True, gc=False):
    """One unit of ``append``: its events, the versions it expects, its idempotency key.

    ``expected`` maps a stream to the version it must be at (0: the stream must not exist yet).
    A stream absent from ``expected`` is appended to at whatever version it has (for commutative
    actions that are checked against invariants, not versions).
    """

    events: Sequence[NewEvent]
    expected: Mapping[StreamId, int] = {}
    idempotency_key: str | None = None
    outcome: bytes | None = None
    """What a repeat of ``idempotency_key`` answers; by default the encoded ``AppendResult``."""


class Recalled(msgspec.Struct, frozen=True):
    """A first outcome found for an idempotency key."""

    key: str
    outcome: bytes

    def as_append_result(self) -> AppendResult:
        result = _result_decoder.decode(self.outcome)
        return msgspec.structs.replace(result, duplicate=True)


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Sent:
    """One ``send``: what it writes, and its results once the positions are known."""

    def __init__(self, requests: Sequence[AppendRequest], wanted: bool) -> None:
        self.wanted = wanted  # whether the caller waits for the results (``append_batch``)
        self.results: list[AppendResult | None] = [None] * len(requests)
        self.repeats: dict[int, int] = {}  # a repeated key's index -> its first use's index
        self.to_write: list[tuple[int, AppendRequest, list[int]]] = []
        self.pending: list[tuple[NewEvent, int]] = []
        self.positions: Callable[[], tuple[list[int], int]] = lambda: ([], 0)

    def final_results(self) -> list[AppendResult]:
        return [r for r in self.results if r is not None]


class Transaction(abc.ABC):
    """One owner's write transaction: the owner is locked from the start until commit."""

    def __init__(self, sql: Sql, owner: UUID, registry: UpcasterRegistry) -> None:
        self.sql = sql
        self.owner = owner
        self.registry = registry
        # Everything this transaction appended, as the log now holds it (for inline projection).
        self._recorded: list[RecordedEvent] = []
        # Appends sent to the database whose positions it has not given back yet (``send``).
        self._sent: list[_Sent] = []
        self._sent_keys: set[str] = set()
        # Each stream's version and the end of the owner's chain, once looked up: this
        # transaction holds the owner lock, so only its own appends move them.
        self._versions: dict[StreamId, int] = {}
        self._head: bytes | None = None
        self._head_known = False
        # Keys ``recall`` found unused. They stay unused until this transaction writes them:
        # it holds the owner lock, and keys are the owner's. So an append of ops a push has
        # just recalled need not ask for their keys again (for a batch of 500, a query of 500).
        self._unused_keys: set[str] = set()

    def ask_now(self) -> None:
        """Send the query ``now`` starts with, if not sent yet, without waiting for it: inside
        ``Sql.pipelined`` the database answers it while the caller goes on."""
        self._last_recorded  # noqa: B018 (sends it)

    @functools.cached_property
    def _last_recorded(self) -> Callable[[], list[Row]]:
        return self.sql.send("SELECT max(recorded_at) FROM events WHERE owner = ?", [self.owner])

    @functools.cached_property
    def now(self) -> datetime:
        """This transaction's recording time: the clock, taken once, after the owner lock, and
        never before the owner's last recorded event.

        So one owner's events are recorded in position order even when the clocks of several
        server processes disagree or a clock steps back: "recorded after a moment" is then
        "after a position" (pulls ``since`` a time, ``as_of``, the 30-day sales window).
        """
        rows = self._last_recorded()
        clock = utc_now()
        last = rows[0][0] if rows else None
        if isinstance(last, str):  # SQLite: an aggregate loses the column's declared type
            last = datetime.fromisoformat(last.replace("Z", "+00:00"))
        return clock if last is None or clock >= last else last

    # -- what a backend supplies -------------------------------------------------------------

    def _chain_head(self) -> bytes | None:
        """The hash that ends this owner's chain (``event_chains``), None for a new owner."""
        row = self.sql.fetchone("SELECT hash FROM event_chains WHERE owner = ?", [self.owner])
        return None if row is None else bytes(row[0])

    @abc.abstractmethod
    def _lookup(
        self, keys: Sequence[str], streams: Sequence[StreamId]
    ) -> Callable[[], tuple[dict[str, bytes], dict[StreamId, int], bytes | None]]:
        """The lookups an append starts with, and how to get their answers: the stored outcome
        of each of ``keys`` found, the version of each of ``streams`` that has events, and the
        owner's chain head (when ``streams`` is not empty). A backend may send them in fewer
        round trips, and (inside ``Sql.pipelined``) let the caller go on meanwhile."""

    @abc.abstractmethod
    def _insert(
        self, events: list[tuple[NewEvent, int, bytes]], outcomes: list[tuple[str, bytes]]
    ) -> Callable[[], tuple[list[int], int]]:
        """Insert ``(event, version, hash)`` rows in order and move the owner's chain head to
        the last one; positions are taken here, after every check, and increase in row order.
        Write the idempotency keys ``outcomes`` with them (as ``_remember``). Return how to get
        the positions and the ``tx`` id (inside ``Sql.pipelined``, the database is still
        inserting when this returns)."""

    @abc.abstractmethod
    def _remember(self, outcomes: list[tuple[str, bytes]]) -> None:
        """Write idempotency keys and their outcomes, as this transaction's owner's, recorded
        at ``now``."""

    # -- the interface -----------------------------------------------------------------------

    @property
    def recorded(self) -> list[RecordedEvent]:
        """Everything this transaction appended, as the log holds it, positions and all."""
        self.settle()
        return self._recorded

    def stream_versions(self, streams: Iterable[StreamId]) -> dict[StreamId, int]:
        """Current version of each stream (0 for one with no events), in one query (none for
        streams this transaction already knows)."""
        unique = list(dict.fromkeys(streams))
        self._know([], unique)()
        return {s: self._versions[s] for s in unique}

    def _know(
        self, keys: Sequence[str], streams: Sequence[StreamId]
    ) -> Callable[[], dict[str, bytes]]:
        """Look up ``keys``, and the versions of ``streams`` and the chain head where they are
        not known yet, in one round trip where the backend can; the result gives the keys
        found, once the answers are in."""
        unknown = [s for s in streams if s not in self._versions]
        answers = self._lookup(keys, unknown)

        def known() -> dict[str, bytes]:
            found, current, head = answers()
            for stream in unknown:  # an append since the lookup was sent knows better
                self._versions.setdefault(stream, current.get(stream, 0))
            if unknown and not self._head_known:
                self._head, self._head_known = head, True
            return found

        return known

    def recall(self, keys: Iterable[str]) -> dict[str, Recalled]:
        """First outcomes already stored for any of ``keys``, in one query."""
        return self.recall_later(keys)()

    def recall_later(
        self, keys: Iterable[str], streams: Iterable[StreamId] = ()
    ) -> Callable[[], dict[str, Recalled]]:
        """``recall``, and the versions of ``streams`` looked up with it (what an append of them
        would ask for), sent at once; the result waits for the answers and gives ``recall``'s.
        Inside ``Sql.pipelined`` the database looks them up while the caller goes on."""
        unique = list(dict.fromkeys(keys))
        answers = self._know(unique, list(dict.fromkeys(streams)))

        def recalled() -> dict[str, Recalled]:
            found = answers()
            self._unused_keys.update(k for k in unique if k not in found)
            return {k: Recalled(k, v) for k, v in found.items()}

        return recalled

    def remember(self, outcomes: Mapping[str, bytes]) -> None:
        """Record idempotency keys whose first outcome wrote no event (a refused op)."""
        if outcomes:
            self._unused_keys.difference_update(outcomes)
            self._remember(list(outcomes.items()))

    def append(
        self,
        events: Sequence[NewEvent],
        *,
        expected: Mapping[StreamId, int] | None = None,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        request = AppendRequest(events, expected or {}, idempotency_key)
        return self.append_batch([request])[0]

    def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Append several units in a handful of statements, all or nothing.

        A unit whose key was seen before (in the log, or earlier in this batch) writes nothing and
        answers the first outcome with ``duplicate=True``. A stale expected version raises
        ``ConcurrencyError`` before any position is taken; the caller's transaction then rolls
        back, so nothing of the batch is written.
        """
        sent = self._send(requests, wanted=True)
        self.settle()
        return sent.final_results()

    def send(self, requests: Sequence[AppendRequest]) -> None:
        """``append_batch`` without waiting for the positions the database gives the events.

        Every check is made here, and raises here; the events and the keys that carry an
        ``outcome`` are sent. Inside ``Sql.pipelined`` the database writes them while the caller
        goes on (a push decides its next ops meanwhile). ``settle``, which ``recorded`` calls,
        waits for the positions.
        """
        self._send(requests)

    def settle(self) -> None:
        """Wait for the positions of everything sent, in order: ``recorded`` is then complete,
        and keys whose outcome is the ``AppendResult`` are written."""
        sent, self._sent = self._sent, []
        self._sent_keys.clear()
        for one in sent:
            self._settle(one)

    def _send(self, requests: Sequence[AppendRequest], *, wanted: bool = False) -> _Sent:
        if not requests:
            raise InvalidAppend("an append needs at least one event")
        for request in requests:
            _validate(request)
        named = [k for r in requests if (k := r.idempotency_key)]
        if self._sent_keys.intersection(named):
            # A key sent but not yet written (its outcome needs positions): write it first, so
            # that the lookup below finds it.
            self.settle()
        keys = list(dict.fromkeys(k for k in named if k not in self._unused_keys))
        streams = list(dict.fromkeys(e.stream for r in requests for e in r.events))
        found = self._know(keys, streams)()
        recalled = {k: Recalled(k, v) for k, v in found.items()}
        # Moved on here, and kept only once every check passed: a caller may catch the error.
        versions = {s: self._versions[s] for s in streams}

        sent = _Sent(requests, wanted)
        first_use: dict[str, int] = {}
        for index, request in enumerate(requests):
            key = request.idempotency_key
            if key is not None and key in recalled:
                sent.results[index] = recalled[key].as_append_result()
                continue
            if key is not None and key in first_use:
                sent.repeats[index] = first_use[key]
                continue
            if key is not None:
                first_use[key] = index
            for stream, version in request.expected.items():
                if versions.get(stream, 0) != version:
                    raise ConcurrencyError(stream, version, versions.get(stream, 0))
            event_versions = []
            for event in request.events:
                versions[event.stream] += 1
                event_versions.append(versions[event.stream])
            sent.to_write.append((index, request, event_versions))
        self._versions.update(versions)

        sent.pending = [
            (event, version)
            for _, request, event_versions in sent.to_write
            for event, version in zip(request.events, event_versions, strict=True)
        ]
        # Keys whose outcome is known now go with the events; the others need positions.
        known = [
            (key, request.outcome)
            for _, request, _ in sent.to_write
            if (key := request.idempotency_key) is not None and request.outcome is not None
        ]
        if known:
            self._unused_keys.difference_update(key for key, _ in known)
        if sent.pending:
            chained = self._chained(sent.pending, self._head)
            sent.positions = self._insert(chained, known)
            self._head = chained[-1][2]
        elif known:
            self._remember(known)
        self._sent_keys.update(
            key
            for _, request, _ in sent.to_write
            if (key := request.idempotency_key) is not None and request.outcome is None
        )
        self._sent.append(sent)
        return sent

    def _settle(self, sent: _Sent) -> None:
        positions, tx = sent.positions() if sent.pending else ([], 0)
        owner, now = self.owner, self.now
        self._recorded += [
            RecordedEvent(
                position, tx, owner, event.stream, version, event.type, event.schema_version,
                event.data, event.metadata, now,
            )
            for position, (event, version) in zip(positions, sent.pending, strict=True)
        ]  # fmt: skip
        if not sent.wanted and all(r.outcome is not None for _, r, _ in sent.to_write):
            return  # nobody reads these results: a push's outcomes are its own
        remembered: list[tuple[str, bytes]] = []
        taken = iter(zip(positions, sent.pending, strict=True))
        for index, request, _ in sent.to_write:
            written = [next(taken) for _ in request.events]
            if not sent.wanted and request.outcome is not None:
                continue
            result = AppendResult(
                {str(event.stream): version for _, (event, version) in written},
                written[0][0],
                written[-1][0],
            )
            sent.results[index] = result
            if request.idempotency_key is not None and request.outcome is None:
                remembered.append((request.idempotency_key, _encode_json(result)))
        if remembered:
            self._unused_keys.difference_update(key for key, _ in remembered)
            self._remember(remembered)
        for index, first in sent.repeats.items() if sent.wanted else ():
            first_result = sent.results[first]
            assert first_result is not None
            sent.results[index] = msgspec.structs.replace(first_result, duplicate=True)

    def _chained(
        self, pending: list[tuple[NewEvent, int]], head: bytes | None
    ) -> list[tuple[NewEvent, int, bytes]]:
        """Each row with its link in the owner's hash chain (``chain.py``). The owner lock is
        held, so ``head`` is still the end of the chain."""
        now = chain.instant(self.now)
        contents = [
            chain.Content(
                self.owner, event.stream.type, event.stream.id, version, event.type,
                event.schema_version, event.data, event.metadata, now,
            )
            for event, version in pending
        ]  # fmt: skip
        hashes = chain.chain(head or chain.GENESIS, contents)
        return [(e, v, h) for (e, v), h in zip(pending, hashes, strict=True)]

    def read_stream(
        self,
        stream: StreamId,
        *,
        to_version: int | None = None,
        as_of: datetime | None = None,
    ) -> list[RecordedEvent]:
        """This owner's events of one stream, oldest first, inside this transaction."""
        conditions, params = _stream_conditions(self.owner, stream, to_version, as_of)
        rows = self.sql.fetchall(*_events_query(conditions, params, "version", None))
        return [decode_row(row, self.registry) for row in rows]


def _validate(request: AppendRequest) -> None:
    if not request.events:
        raise InvalidAppend("an append needs at least one event")
    for stream, version in request.expected.items():
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise InvalidAppend(f"expected version of {stream} must be an integer >= 0")
    for event in request.events:
        if not event.type or "." not in event.type:
            raise InvalidAppend(f"event type {event.type!r} is not '<entity>.<past tense>'")
        if event.schema_version < 1:
            raise InvalidAppend("an event's schema version starts at 1")


_metadata_decoder = msgspec.json.Decoder(EventMetadata)
_data_decoder = msgspec.json.Decoder(dict[str, Any])

# The column order every backend selects events in; ``decode_row`` reads this order.
EVENT_COLUMNS = (
    "position, tx, owner, stream_type, stream_id, version, type, schema_version, "
    "data, metadata, recorded_at"
)
_DATA = 8  # where data is among EVENT_COLUMNS


def feed_columns(cast: str = "", only: str | None = None) -> tuple[str, int]:
    """``EVENT_COLUMNS`` with data and metadata cast by ``cast``, and every column but the
    position and ``tx`` NULL where the condition ``only`` (on the type) does not hold: such rows
    are read for the checkpoint alone, and a NULL costs the driver nothing to convert (a catch-up
    of sales read every other event's owner, stream id and time for nothing). Also how many
    times ``only`` is in the text: its parameters must be given that many times."""
    columns = [c.strip() for c in EVENT_COLUMNS.split(",")]
    columns[_DATA] += cast
    columns[_DATA + 1] += cast
    if only is None:
        return ", ".join(columns), 0
    nulled = [f"CASE WHEN {only} THEN {column} END" for column in columns[2:]]
    return ", ".join([*columns[:2], *nulled]), len(nulled)  # position and tx, always


def _events_query(
    conditions: list[str], params: list[Any], order: str, limit: int | None
) -> tuple[str, list[Any]]:
    query = f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(conditions)} ORDER BY {order}"
    if limit is None:
        return query, params
    return query + " LIMIT ?", [*params, limit]


def _stream_conditions(
    owner: UUID, stream: StreamId, to_version: int | None, as_of: datetime | None
) -> tuple[list[str], list[Any]]:
    """One stream of one owner, up to a version or a moment if given."""
    conditions = ["owner = ?", "stream_type = ?", "stream_id = ?"]
    params: list[Any] = [owner, stream.type, stream.id]
    if to_version is not None:
        conditions.append("version <= ?")
        params.append(to_version)
    if as_of is not None:
        conditions.append("recorded_at <= ?")
        params.append(as_of)
    return conditions, params


def decode_row(row: Row, registry: UpcasterRegistry) -> RecordedEvent:
    position, tx, owner, stream_type, stream_id, version, type_, schema_version = row[:8]
    data, metadata, recorded_at = row[8:11]
    if isinstance(data, str | bytes):
        data = _data_decoder.decode(data)
    if isinstance(metadata, str | bytes):
        metadata = _metadata_decoder.decode(metadata)
    else:
        metadata = msgspec.convert(metadata, EventMetadata)
    schema_version, data = registry.upcast(type_, schema_version, data)
    return RecordedEvent(
        position=position,
        tx=int(tx),
        owner=as_uuid(owner),
        stream=StreamId(stream_type, as_uuid(stream_id)),
        version=version,
        type=type_,
        schema_version=schema_version,
        data=data,
        metadata=metadata,
        recorded_at=recorded_at,
    )


class EventStore(abc.ABC):
    """The event log and the transactions everything else writes in.

    Writes go through ``transaction(owner)``; reads through the ``read_*`` methods (each its own
    consistent snapshot) or ``snapshot()`` for several reads that must agree.
    """

    backend: Backend

    def __init__(self, registry: UpcasterRegistry | None = None) -> None:
        self.registry = registry or UpcasterRegistry()
        self._closed = threading.Event()

    # -- transactions ------------------------------------------------------------------------

    @abc.abstractmethod
    def transaction(
        self, owner: UUID, *, pipelined: bool = False
    ) -> AbstractContextManager[Transaction]:
        """A write transaction for one owner; commits on a clean exit, rolls back on an error.

        ``pipelined``: the whole transaction inside ``Sql.pipelined``, for a caller that sends
        its writes (``Transaction.send``) and reads what it needs up front.
        """

    @abc.abstractmethod
    def sql(self) -> AbstractContextManager[Sql]:
        """A plain write transaction not tied to an owner (accounts, migrations, maintenance)."""

    @abc.abstractmethod
    def snapshot(self) -> AbstractContextManager[Sql]:
        """A read-only transaction in which every read sees the same committed state."""

    @abc.abstractmethod
    def watch(self, deliver: Deliver) -> AbstractAsyncContextManager[None]:
        """While open, ``deliver`` (in the running event loop) a notice after each commit that
        wrote events, by any writer of this database (``changes.py``); ``None`` first, once
        notices are being heard, and again whenever some may have been missed."""

    @abc.abstractmethod
    def announce(self, notices: Sequence[Committed]) -> None:
        """Send ``notices`` about events already committed by a transaction that could not
        send its own (an import writes every owner's events in one plain transaction); ``watch``
        delivers them as any other. Never raises: the events are in the log whatever happens
        to the notices, and a client that misses one learns of them at its next pull."""

    @abc.abstractmethod
    def hold_appends(self, sql: Sql) -> None:
        """Wait for every owner transaction in flight to end, and keep new ones from starting
        until ``sql``'s transaction ends: the log is then still, and every event in it final.

        For the short last step of a rebuild (catch up, then swap). Readers are not held.
        """

    @abc.abstractmethod
    def _read_all_rows(
        self,
        sql: Sql,
        after: Checkpoint,
        limit: int,
        *,
        settled_only: bool = True,
        types: Collection[str] | None = None,
        part: FeedPart | None = None,
    ) -> list[Row]:
        """Rows of ``EVENT_COLUMNS``; with ``types``, data and metadata are NULL for the rows
        of other types (they are read for the checkpoint only); with ``part``, only the rows
        of that part (PostgreSQL only)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    # -- writes ------------------------------------------------------------------------------

    def append(
        self,
        owner: UUID,
        events: Sequence[NewEvent],
        *,
        expected: Mapping[StreamId, int] | None = None,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Append ``events`` for ``owner`` in one transaction of its own, all or nothing."""
        with self.transaction(owner) as tx:
            return tx.append(events, expected=expected, idempotency_key=idempotency_key)

    # -- reads -------------------------------------------------------------------------------

    def read_stream(
        self,
        owner: UUID,
        stream: StreamId,
        *,
        to_version: int | None = None,
        as_of: datetime | None = None,
    ) -> list[RecordedEvent]:
        """One stream of one owner, oldest first, up to a version or a moment if given."""
        conditions, params = _stream_conditions(owner, stream, to_version, as_of)
        return self._select(conditions, params, "version", None)

    def read_owner(
        self,
        owner: UUID,
        after: int = 0,
        limit: int = 1000,
        *,
        stream_type: str | None = None,
        stream_id: UUID | None = None,
        recorded_until: datetime | None = None,
    ) -> list[RecordedEvent]:
        """One owner's events after ``position``, in log order (gap-free: see module doc), of
        one stream type or id and recorded at or before a moment if given."""
        conditions = ["owner = ?", "position > ?"]
        params: list[Any] = [owner, after]
        for condition, value in (
            ("stream_type = ?", stream_type),
            ("stream_id = ?", stream_id),
            ("recorded_at <= ?", recorded_until),
        ):
            if value is not None:
                conditions.append(condition)
                params.append(value)
        return self._select(conditions, params, "position", limit)

    def streams_naming(self, owner: UUID, stream_type: str, field: str, value: str) -> list[UUID]:
        """The owner's streams of ``stream_type`` with an event whose data has ``field`` equal
        to ``value`` (the costs that were ever on a show, …), in order of first mention."""
        if not field.isidentifier():
            raise ValueError(f"not a field name: {field!r}")
        extract = (
            f"data->>'{field}'"
            if self.backend == "postgres"
            else f"json_extract(data, '$.{field}')"
        )
        with self.snapshot() as sql:
            rows = sql.fetchall(
                f"SELECT stream_id, min(position) AS first FROM events WHERE owner = ? "
                f"AND stream_type = ? AND {extract} = ? GROUP BY stream_id ORDER BY first",
                [owner, stream_type, value],
            )
        return [as_uuid(row[0]) for row in rows]

    def read_recorded_after(
        self, owner: UUID, moment: datetime, limit: int = 1000
    ) -> list[RecordedEvent]:
        """One owner's events recorded strictly after ``moment``, in log order."""
        return self._select(["owner = ?", "recorded_at > ?"], [owner, moment], "position", limit)

    def read_all(
        self, after: Checkpoint = START, limit: int = 1000, *, part: FeedPart | None = None
    ) -> Page:
        """The global feed after ``after``: every owner's events, gap-free, in feed order; or
        only those of ``part`` (PostgreSQL only)."""
        with self.snapshot() as sql:
            return self.read_feed(sql, after, limit, part=part)

    def read_feed(
        self,
        sql: Sql,
        after: Checkpoint,
        limit: int,
        *,
        appends_held: bool = False,
        types: Collection[str] | None = None,
        part: FeedPart | None = None,
    ) -> Page:
        """``read_all`` inside the caller's transaction ``sql``, so that what is read and what
        is written with it commit together (catch-up projectors). ``appends_held``: the caller
        holds ``hold_appends``, so no event can still appear below the page and the feed may
        read up to the newest one. ``types``: only events of these types are in the page (the
        others are not decoded, nor their data sent), but its checkpoint passes them all."""
        if limit < 1:
            raise ValueError("limit must be >= 1")
        rows = self._read_all_rows(
            sql, after, limit, settled_only=not appends_held, types=types, part=part
        )
        if not rows:
            return Page([], after, 0)
        events = [
            decode_row(row, self.registry)
            for row in rows
            if types is None or row[_DATA] is not None
        ]
        position, tx = rows[-1][:2]  # EVENT_COLUMNS begins with them
        return Page(events, Checkpoint(tx=tx, position=position), len(rows))

    def iter_all(self, after: Checkpoint = START, batch: int = 5000) -> Iterator[RecordedEvent]:
        """Every event after ``after`` in feed order, fetched a page at a time."""
        while True:
            page = self.read_all(after, batch)
            yield from page.events
            if len(page.events) < batch:
                return
            after = page.checkpoint

    def _select(
        self, conditions: list[str], params: list[Any], order: str, limit: int | None
    ) -> list[RecordedEvent]:
        with self.snapshot() as sql:
            rows = sql.fetchall(*_events_query(conditions, params, order, limit))
        return [decode_row(row, self.registry) for row in rows]

    def count_events(self) -> int:
        with self.snapshot() as sql:
            row = sql.fetchone("SELECT count(*) FROM events")
        return int(row[0]) if row else 0

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long the database may keep a call waiting before the call raises ``StoreUnavailable``
    (HTTP 503, retry later) instead of holding a request, and the locks it holds, without end."""

    lock: float = 10.0
    """Seconds a statement waits for a lock another transaction holds: PostgreSQL's
    ``lock_timeout`` (an owner lock, a row, the appends lock during an import); on SQLite the
    busy timeout (the file held by another process's write)."""
    idle_in_transaction: float = 60.0
    """PostgreSQL: seconds a transaction may sit idle before the server ends its session, so
    that a caller stuck mid-transaction cannot hold its owner lock for ever."""
    keepalives_idle: int = 10
    """PostgreSQL: TCP keepalives. Seconds of silence before the first probe, then one every
    ``keepalives_interval`` seconds; ``keepalives_count`` unanswered ones and the connection is
    dead: a call waiting on a vanished server or a cut network fails instead of hanging."""
    keepalives_interval: int = 5
    keepalives_count: int = 3


DEFAULT_TIMEOUTS = Timeouts()


def open_store(
    url: str | None,
    *,
    data_dir: str = ".sync-data",
    registry: UpcasterRegistry | None = None,
    pool_min: int = 1,
    pool_max: int = 10,
    pool_timeout: float = 5.0,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> EventStore:
    """Open the store a settings URL names: ``postgresql://…`` or ``sqlite:///path`` or nothing
    (a SQLite file in ``data_dir``)."""
    if url and url.startswith(("postgres://", "postgresql://")):
        from .postgres import PostgresStore

        return PostgresStore(
            url,
            registry=registry,
            min_size=pool_min,
            max_size=pool_max,
            timeout=pool_timeout,
            timeouts=timeouts,
        )
    from .sqlite import SqliteStore

    if url and url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:").removeprefix("//")
        return SqliteStore(path or ":memory:", registry=registry, timeouts=timeouts)
    if url:
        raise ValueError(f"unsupported DATABASE_URL scheme: {url.split(':', 1)[0]!r}")
    import os

    os.makedirs(data_dir, exist_ok=True)
    return SqliteStore(os.path.join(data_dir, "sync.db"), registry=registry, timeouts=timeouts)
