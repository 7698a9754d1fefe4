"""The embedded backend: one SQLite file in WAL mode, stdlib ``sqlite3`` only.

SQLite allows one writer at a time, so this backend keeps a single writer connection behind a
lock (threads queue on the lock instead of spinning on ``SQLITE_BUSY``) and a small pool of
reader connections, which WAL lets read while the writer writes. One writer also means the
owner lock of ``store.Transaction`` is implied: every write transaction holds the database.

When SQLite cannot serve a call for now (another process holds the file longer than the lock
timeout, the disk is full or failing), the call raises ``StoreUnavailable`` (HTTP 503), and
whatever transaction it was in is rolled back, even when the failure was the ``COMMIT`` itself
(SQLite then leaves the transaction open): the next call finds the connection as good as new.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from . import chain, changes
from .errors import StoreUnavailable
from .events import Checkpoint, FeedPart, NewEvent, StreamId
from .rows import chunks
from .store import (
    DEFAULT_TIMEOUTS,
    EVENT_COLUMNS,
    EventStore,
    Row,
    Sql,
    Timeouts,
    Transaction,
    feed_columns,
)
from .upcasting import UpcasterRegistry


def _adapt_datetime(value: datetime) -> str:
    # A fixed-width UTC form, so that text order is time order in indexes and comparisons.
    return chain.instant(value)


def _convert_timestamp(raw: bytes) -> datetime:
    return datetime.fromisoformat(raw.decode().replace("Z", "+00:00"))


sqlite3.register_adapter(UUID, str)
sqlite3.register_adapter(datetime, _adapt_datetime)
sqlite3.register_converter("UUID", lambda raw: UUID(raw.decode()))
sqlite3.register_converter("TIMESTAMPTZ", _convert_timestamp)


# Primary result codes that say "not now", not "not this": the file is held by another
# connection, or the disk is full or failing. Anything else (a constraint, a bug) is raised as is.
_UNAVAILABLE = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
     sqlite3.SQLITE_CANTOPEN}
)  # fmt: skip


@contextmanager
def _transient_as_unavailable() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as error:
        code = getattr(error, "sqlite_errorcode", -1) & 0xFF  # the extended code's primary part
        if code in _UNAVAILABLE:
            raise StoreUnavailable(f"SQLite cannot serve this now: {error}") from error
        raise


def _roll_back(connection: sqlite3.Connection) -> None:
    """End the transaction a failure left open. SQLite rolls back by itself after some errors
    (a full disk) and not after others (a refused ``COMMIT``), so only if one is still open."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")


class SqliteSql(Sql):
    backend = "sqlite"

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.connection.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.connection.executemany(sql, rows)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.connection.execute(sql, params).fetchall()

    def script(self, sql: str) -> None:
        self.connection.executescript(sql)

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        # sqlite3 steps the statement as rows are asked for: nothing is fetched ahead.
        yield from self.connection.execute(sql, params)


class SqliteTransaction(Transaction):
    sql: SqliteSql

    def _lookup(
        self, keys: Sequence[str], streams: Sequence[StreamId]
    ) -> Callable[[], tuple[dict[str, bytes], dict[StreamId, int], bytes | None]]:
        # One connection, no pipeline: the answers are in when this returns.
        recalled = self._recall(keys) if keys else {}
        versions = self._current_versions(streams) if streams else {}
        found = recalled, versions, self._chain_head() if streams else None
        return lambda: found

    def _current_versions(self, streams: Sequence[StreamId]) -> dict[StreamId, int]:
        found: dict[StreamId, int] = {}
        # One statement per chunk; SQLite caps the number of parameters.
        for chunk in chunks(streams, 300):
            values = ",".join("(?, ?)" for _ in chunk)
            params: list[Any] = [self.owner]
            for s in chunk:
                params += [s.type, s.id]
            rows = self.sql.fetchall(
                f"WITH wanted(t, i) AS (VALUES {values}) "
                "SELECT t, i, (SELECT max(version) FROM events e WHERE e.owner = ? "
                "AND e.stream_type = wanted.t AND e.stream_id = wanted.i) FROM wanted",
                [*params[1:], params[0]],
            )
            for t, i, v in rows:
                if v is not None:
                    found[StreamId(t, UUID(i))] = v
        return found

    def _recall(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for chunk in chunks(keys, 500):
            marks = ",".join("?" for _ in chunk)
            rows = self.sql.fetchall(
                f"SELECT key, outcome FROM idempotency_keys WHERE owner = ? AND key IN ({marks})",
                [self.owner, *chunk],
            )
            found.update({k: bytes(v) for k, v in rows})
        return found

    def _insert(
        self, events: list[tuple[NewEvent, int, bytes]], outcomes: list[tuple[str, bytes]]
    ) -> Callable[[], tuple[list[int], int]]:
        # The single writer holds the database: max + 1 is free, and no rollback leaves a gap.
        row = self.sql.fetchone("SELECT coalesce(max(position), 0) FROM events")
        start = (row[0] if row else 0) + 1
        positions = list(range(start, start + len(events)))
        self.sql.executemany(
            f"INSERT INTO events ({EVENT_COLUMNS}, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    position, start, self.owner, event.stream.type, event.stream.id, version,
                    event.type, event.schema_version, _encode(event.data), _encode(event.metadata),
                    self.now, hash_,
                )
                for position, (event, version, hash_) in zip(positions, events, strict=True)
            ],
        )  # fmt: skip
        self.sql.execute(chain.UPSERT_HEAD, [self.owner, positions[-1], events[-1][2]])
        if outcomes:
            self._remember(outcomes)
        return lambda: (positions, start)

    def _remember(self, outcomes: list[tuple[str, bytes]]) -> None:
        owner, now = self.owner, self.now
        self.sql.executemany(
            "INSERT INTO idempotency_keys (owner, key, outcome, recorded_at) VALUES (?,?,?,?)",
            [(owner, key, outcome, now) for key, outcome in outcomes],
        )


def _encode(value: object) -> str:
    return _encoder.encode(value).decode()


_encoder = msgspec.json.Encoder()


class SqliteStore(EventStore):
    backend = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        registry: UpcasterRegistry | None = None,
        synchronous: str = "FULL",
        readers: int = 8,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
    ) -> None:
        super().__init__(registry)
        self.path = path
        self._synchronous = synchronous
        self._timeouts = timeouts
        if path == ":memory:":
            # Every connection to a private in-memory database is a new database; share one.
            self.path = f"file:sync-{id(self)}?mode=memory&cache=shared"
        self._write_lock = threading.Lock()
        self._writer = self._connect()
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._reader_count = 0
        self._reader_max = readers
        self._reader_lock = threading.Lock()
        # One process owns the file: change notices are callbacks (changes.py).
        self._watchers: list[Callable[[changes.Committed], None]] = []

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
                # How long a call waits for another process's hold on the file (the busy timeout).
                timeout=self._timeouts.lock,
                detect_types=sqlite3.PARSE_DECLTYPES,
                uri=self.path.startswith("file:"),
            )
        except sqlite3.Error as error:
            raise StoreUnavailable(f"cannot open {self.path}: {error}") from error
        with _transient_as_unavailable():
            connection.execute("PRAGMA journal_mode=WAL")
            # FULL: a push acknowledged to a client survives a power cut, not only a crash.
            connection.execute(f"PRAGMA synchronous={self._synchronous}")
            connection.execute("PRAGMA foreign_keys=ON")
        return connection

    @contextmanager
    def _write(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[SqliteSql]:
        with self._write_lock, _transient_as_unavailable():
            connection = self._writer
            connection.execute(begin)
            try:
                yield SqliteSql(connection)
                connection.execute("COMMIT")
            except BaseException:
                _roll_back(connection)
                raise

    @contextmanager
    def transaction(  # type: ignore[override]
        self, owner: UUID, *, pipelined: bool = False
    ) -> Iterator[Transaction]:
        with self._write() as sql:
            tx = SqliteTransaction(sql, owner, self.registry)
            yield tx
            tx.settle()
        notice = changes.committed(owner, tx.recorded)
        if notice is not None:
            self.announce([notice])

    def announce(self, notices: Sequence[changes.Committed]) -> None:
        for watcher in list(self._watchers):
            for notice in notices:
                watcher(notice)

    @asynccontextmanager
    async def watch(self, deliver: changes.Deliver) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        def relay(notice: changes.Committed) -> None:
            # Commits happen in worker threads; the notice is handled in the watching loop.
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody listens
                loop.call_soon_threadsafe(deliver, notice)

        self._watchers.append(relay)
        deliver(None)
        try:
            yield
        finally:
            self._watchers.remove(relay)

    @contextmanager
    def sql(self) -> Iterator[Sql]:  # type: ignore[override]
        with self._write() as sql:
            yield sql

    @contextmanager
    def snapshot(self) -> Iterator[Sql]:  # type: ignore[override]
        connection = self._take_reader()
        try:
            with _transient_as_unavailable():
                # In WAL mode a read transaction sees one snapshot from its first read to its end.
                connection.execute("BEGIN")
                try:
                    yield SqliteSql(connection)
                finally:
                    _roll_back(connection)
        finally:
            self._readers.put(connection)

    def _take_reader(self) -> sqlite3.Connection:
        try:
            return self._readers.get_nowait()
        except queue.Empty:
            pass
        with self._reader_lock:
            if self._reader_count < self._reader_max:
                connection = self._connect()  # counted once it exists: opening may fail
                self._reader_count += 1
                return connection
        return self._readers.get()

    def hold_appends(self, sql: Sql) -> None:
        """Nothing to do: a write transaction already holds the one writer."""

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
        if part is not None:  # a rebuild splits the feed only where it has cores to gain
            raise NotImplementedError("the feed is split by owner only on PostgreSQL")
        # One writer at a time: commit order is position order, and tx == first position.
        columns, params = EVENT_COLUMNS, []
        if types is not None:
            wanted = sorted(types)
            columns, times = feed_columns(only=f"type IN ({','.join('?' * len(wanted))})")
            params = wanted * times
        return sql.fetchall(
            f"SELECT {columns} FROM events WHERE position > ? ORDER BY position LIMIT ?",
            [*params, after.position, limit],
        )

    @contextmanager
    def raw_write(self) -> Iterator[sqlite3.Connection]:
        """The writer connection outside any transaction (migrations run their own scripts)."""
        with self._write_lock:
            yield self._writer

    def close(self) -> None:
        self._closed.set()
        with self._write_lock:
            self._writer.close()
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break
