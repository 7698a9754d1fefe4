"""The production backend: PostgreSQL through psycopg 3 and a ``psycopg_pool`` pool.

Any number of server processes may share one database: the owner lock is an advisory
transaction lock, and the global feed is bounded by ``pg_snapshot_xmin`` (see ``store.py``).

When the database goes away (restart, failover, network), every call raises
``StoreUnavailable`` (HTTP 503) within a bounded time and the pool heals by itself once it is
back (``_PoolHealth`` below): connections that broke are dropped, idle ones are checked before
use, and reconnection is retried every second or so rather than with a growing backoff. The
same goes for a call that waited on a lock longer than ``lock_timeout``, and every pooled
connection carries the ``Timeouts`` (``_configure``), so that no call waits without end: not on
a lock, not on a transaction left idle, not on a network that went silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from time import monotonic
from typing import Any
from uuid import UUID

import msgspec
import psycopg
import psycopg_pool
from psycopg.types.json import Json, set_json_loads

from . import changes, listener
from .errors import EventStoreError, StoreUnavailable
from .events import Checkpoint, EventMetadata, FeedPart, NewEvent, StreamId
from .store import (
    DEFAULT_TIMEOUTS,
    EventStore,
    Row,
    Sql,
    Timeouts,
    Transaction,
    feed_columns,
)
from .upcasting import UpcasterRegistry

log = logging.getLogger("event_store")

# Namespaces (the first key) of the two-key advisory locks this product takes.
LOCK_OWNER = 0x5359_0001
LOCK_MIGRATE = 0x5359_0002
# Every owner transaction holds this one shared; ``hold_appends`` takes it exclusively.
LOCK_APPENDS = 0x5359_0003
SCHEMA_KEY = "hashtext(current_schema())"
"""The second key of the locks that stand for a whole log (appends, migrations). Advisory locks
belong to the database, not to a schema: deployments (or test runs) that share a database in
schemas of their own must never wait for each other's import or rebuild."""


def lock_key(value: UUID) -> int:
    """A stable 32-bit key for an id; a collision only makes two owners share a lock."""
    return int.from_bytes(value.bytes[:4], "big", signed=True)


@functools.lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    """``?`` placeholders (shared with SQLite) to psycopg's ``%s``; a literal ``%`` doubled."""
    return sql.replace("%", "%%").replace("?", "%s")


_json_decode = msgspec.json.decode

# The feed hands data and metadata over as text, for ``decode_row`` to decode each in one typed
# msgspec call: psycopg's json loading goes through a Python function per value, a twentieth of
# a rebuild's CPU time (a rebuild reads every event).
_FEED_COLUMNS, _ = feed_columns("::text")


# gc=False (here and below): made by the thousand in a push and never part of a reference
# cycle, so the cyclic garbage collector need not track them (msgspec's option).
class _PendingRow(msgspec.Struct, array_like=False, gc=False):
    o: int
    t: str
    i: UUID
    v: int
    y: str
    s: int
    d: dict[str, Any]
    m: EventMetadata
    h: str


class _KeyRow(msgspec.Struct, gc=False):
    k: str
    h: str


_encode_rows = msgspec.json.Encoder().encode


def _as_is(document: bytes) -> bytes:
    """psycopg's ``Json`` dumps function for a document encoded already."""
    return document


class PostgresSql(Sql):
    backend = "postgres"
    pipelining = True

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection
        self._streams = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.connection.execute(_pg(sql), params).rowcount  # type: ignore[arg-type]

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.connection.cursor() as cursor:
            cursor.executemany(_pg(sql), rows)  # type: ignore[arg-type]

    def fetchall(self, sql: str, params: Sequence[Any] = (), *, binary: bool = False) -> list[Row]:
        # binary=True for queries with large array parameters: the text format escapes every
        # element in Python, which costs more than the query itself.
        cursor = self.connection.cursor(binary=binary)
        return cursor.execute(_pg(sql), params).fetchall()  # type: ignore[arg-type]

    def json(self, document: bytes) -> Any:
        return Json(document, dumps=_as_is)

    def send(
        self, sql: str, params: Sequence[Any] = (), *, binary: bool = False
    ) -> Callable[[], list[Row]]:
        cursor = self.connection.cursor(binary=binary)
        cursor.execute(_pg(sql), params)  # type: ignore[arg-type]
        return cursor.fetchall

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        with self.connection.pipeline():
            yield

    def copy(
        self,
        table: str,
        columns: str,
        rows: Iterable[Sequence[Any]],
        types: Sequence[str] | None = None,
    ) -> None:
        """COPY rows in: the fastest way in, and done in C by psycopg. With the columns'
        ``types``, in binary: PostgreSQL then parses no uuid, number or time."""
        binary = " (FORMAT BINARY)" if types is not None else ""
        with self.connection.cursor().copy(f"COPY {table} ({columns}) FROM STDIN{binary}") as copy:
            if types is not None:
                copy.set_types(types)
            for row in rows:
                copy.write_row(row)

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        # A named (server-side) cursor: rows come over in batches of ``itersize``.
        self._streams += 1
        with self.connection.cursor(name=f"stream_{self._streams}") as cursor:
            cursor.itersize = 2000
            cursor.execute(_pg(sql), params)  # type: ignore[arg-type]
            yield from cursor

    def script(self, sql: str) -> None:
        # No parameters: psycopg sends it as a simple query, several statements allowed.
        self.connection.execute(sql.encode())


class PostgresTransaction(Transaction):
    sql: PostgresSql

    def _versions_cursor(self, streams: Sequence[StreamId]) -> psycopg.Cursor[Any]:
        # One JSON parameter, encoded in C: dumping hundreds of UUIDs as an array (or spelling
        # each in Python) costs more than the query. The owner's chain head rides along on
        # every row (an uncorrelated subquery, run once), so that the append needs no round
        # trip of its own for it.
        return self.sql.connection.execute(
            _pg(
                "SELECT w.type, w.id, (SELECT max(version) FROM events e WHERE e.owner = ? "
                "AND e.stream_type = w.type AND e.stream_id = w.id), "
                "(SELECT hash FROM event_chains WHERE owner = ?) "
                "FROM json_to_recordset(?::json) AS w(type text, id uuid)"
            ),
            [self.owner, self.owner, self.sql.json(_encode_rows(streams))],
        )

    def _recall_cursor(self, keys: Sequence[str]) -> psycopg.Cursor[Any]:
        # One index probe per key, whatever the statistics say. With ``key = ANY(?)`` the
        # planner, trusting an average owner's key count, used the index for the owner alone and
        # filtered every key the owner ever had: a push of 500 ops to a user with 12,000 keys
        # read all 12,000, and push time grew with the user's history. The LIMIT keeps the
        # subquery from being flattened into a join the planner could choose to do that again.
        # The keys go as one JSON array: psycopg dumps a list parameter element by element in
        # Python, which cost more than the query.
        return self.sql.connection.cursor(binary=True).execute(
            _pg(
                "SELECT k.key, i.outcome FROM json_array_elements_text(?::json) AS k(key) "
                "CROSS JOIN LATERAL "
                "(SELECT outcome FROM idempotency_keys WHERE owner = ? AND key = k.key LIMIT 1) i"
            ),
            [self.sql.json(_encode_rows(keys)), self.owner],
        )

    def _lookup(
        self, keys: Sequence[str], streams: Sequence[StreamId]
    ) -> Callable[[], tuple[dict[str, bytes], dict[StreamId, int], bytes | None]]:
        recall = self._recall_cursor(keys) if keys else None
        versions = self._versions_cursor(streams) if streams else None

        def answers() -> tuple[dict[str, bytes], dict[StreamId, int], bytes | None]:
            found = {k: bytes(v) for k, v in recall.fetchall()} if recall else {}
            current: dict[StreamId, int] = {}
            head: bytes | None = None
            for t, i, v, h in versions.fetchall() if versions else []:
                if v is not None:
                    current[StreamId(t, i)] = v
                head = None if h is None else bytes(h)
            return found, current, head

        return answers

    def _insert(
        self, events: list[tuple[NewEvent, int, bytes]], outcomes: list[tuple[str, bytes]]
    ) -> Callable[[], tuple[list[int], int]]:
        # One JSON parameter for the whole batch: PostgreSQL parses it in C, where dumping
        # hundreds of values one by one would cost more than the insert. Positions come from
        # the column default, taken row by row in the ORDER BY order, after every check. The
        # chain head and the idempotency keys go in the same statement: a statement costs
        # psycopg and PostgreSQL more than a few hundred rows of JSON.
        document = _encode_rows(
            [
                _PendingRow(o, e.stream.type, e.stream.id, v, e.type, e.schema_version, e.data,
                            e.metadata, h.hex())
                for o, (e, v, h) in enumerate(events)
            ]
        )  # fmt: skip
        written = self.sql.send(
            "WITH written AS (INSERT INTO events (owner, stream_type, stream_id, version, type, "
            "schema_version, data, metadata, recorded_at, hash) "
            "SELECT ?, r.t, r.i, r.v, r.y, r.s, r.d, r.m, ?, decode(r.h, 'hex') "
            "FROM json_to_recordset(?::json) "
            "AS r(o int, t text, i uuid, v int, y text, s smallint, d json, m json, h text) "
            "ORDER BY r.o RETURNING position, tx, hash), "
            "head AS (INSERT INTO event_chains (owner, position, hash) "
            "SELECT ?, max(position), ? FROM written "
            "ON CONFLICT (owner) DO UPDATE SET position = excluded.position, "
            f"hash = excluded.hash), keys AS ({_INSERT_KEYS}) "
            "SELECT position, tx, hash FROM written",
            [
                self.owner, self.now, self.sql.json(document), self.owner, events[-1][2],
                *self._keys_params(outcomes),
            ],
        )  # fmt: skip

        def positions() -> tuple[list[int], int]:
            rows = written()
            # Each row is known by its hash (unique: it covers the one before it). The rows
            # come back in the order they were written, so the hashes are compared in order,
            # and only looked up one by one if they are not.
            if all(h == event[2] for (_, _, h), event in zip(rows, events, strict=True)):
                taken = [p for p, _, _ in rows]
            else:
                by_hash = {bytes(h): p for p, _, h in rows}
                taken = [by_hash[h] for _, _, h in events]
            # Positions must follow the rows' order (the hash chain and push's provisional
            # positions rely on it); they do because nextval runs above the ORDER BY in the
            # plan. Should a planner ever change that, fail the transaction rather than record
            # disorder.
            if any(b <= a for a, b in itertools.pairwise(taken)):
                raise EventStoreError("positions were taken out of row order; nothing was written")
            return taken, rows[0][1]

        return positions

    def _remember(self, outcomes: list[tuple[str, bytes]]) -> None:
        self.sql.execute(_INSERT_KEYS, self._keys_params(outcomes))

    def _keys_params(self, outcomes: list[tuple[str, bytes]]) -> list[Any]:
        """The parameters of ``_INSERT_KEYS``."""
        keys = _encode_rows([_KeyRow(key, outcome.hex()) for key, outcome in outcomes])
        return [self.owner, self.now, self.sql.json(keys)]


# One statement, not executemany: a push remembers one key per op, often hundreds. Its text never
# changes (keys and outcomes, in hex, go as one JSON document parsed in C): psycopg splits a
# statement at its placeholders in Python, and a VALUES list of thousands of them cost more to
# convert than the insert itself; arrays are dumped element by element in Python.
_INSERT_KEYS = (
    "INSERT INTO idempotency_keys (owner, key, outcome, recorded_at) "
    "SELECT ?, r.k, decode(r.h, 'hex'), ? FROM json_to_recordset(?::json) AS r(k text, h text)"
)


def _notify(connection: psycopg.Connection[Any], notices: Sequence[changes.Committed]) -> None:
    """Send ``notices`` right after the commit that wrote their events, in a transaction of
    their own.

    Not inside the writing transaction: PostgreSQL serializes the commits of all transactions
    that notify (one lock held through each commit's flush), which would put every writer of
    every owner behind one lock, the very thing the owner lock exists to avoid; measured, it
    halved concurrent appends. Here the lock is held for a commit that does not wait for its
    flush. The price: a process that dies between the two commits sends no notice for that
    one write; clients learn of it at their next poke or pull, and nothing is ever lost from
    the log or the pulls. A failed notice is logged, never raised: the events are committed.
    """
    try:
        with connection.transaction():
            # One statement: the setting only matters at the commit, whatever the order.
            connection.execute(
                "SELECT set_config('synchronous_commit', 'off', true), "
                f"pg_notify({changes.CHANNEL_SQL}, p) FROM unnest(%s::text[]) AS p",
                [[changes.encode(notice) for notice in notices]],
            )
    except psycopg.Error as error:
        log.warning("change notice not sent", extra={"error": str(error)})


def _configure(timeouts: Timeouts, connection: psycopg.Connection[Any]) -> None:
    set_json_loads(_json_decode, connection)
    connection.execute("SET TIME ZONE 'UTC'")
    # For the session, so for every transaction of the connection: a wait on a lock beyond
    # this fails the call (503) instead of holding its request, and the locks it holds; a
    # transaction left idle (a stuck caller) is ended by the server, its locks released.
    connection.execute(
        "SELECT set_config('lock_timeout', %s, false), "
        "set_config('idle_in_transaction_session_timeout', %s, false)",
        [_milliseconds(timeouts.lock), _milliseconds(timeouts.idle_in_transaction)],
    )
    connection.commit()
    _mark_idle(connection)


def _milliseconds(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"  # never 0, which PostgreSQL takes as "none"


def connect_options(timeouts: Timeouts) -> dict[str, int]:
    """libpq options of every connection this store opens, pooled or listening: a bounded
    connection attempt, and TCP keepalives, which find a peer gone without a word (a cut
    network, a failed-over host) while a call waits on it."""
    return {
        "connect_timeout": 3,
        "keepalives": 1,
        "keepalives_idle": timeouts.keepalives_idle,
        "keepalives_interval": timeouts.keepalives_interval,
        "keepalives_count": timeouts.keepalives_count,
    }


# A connection idle for longer than this is checked (one round trip) before a request gets it:
# the database may have restarted, or something on the way dropped the socket, while it sat in
# the pool. One in steady use is handed out as it is (no round trip); if it turns out broken,
# that request answers 503 and the pool is checked at once (``_PoolHealth.lost``).
IDLE_CHECK_AFTER = 2.0
# After a connection was lost, requests wait at most this long for one (instead of the pool's
# timeout) until a connection works again: while the database is down they answer 503 at once.
SUSPECT_TIMEOUT = 0.5
SUSPECT_FOR = 2.0
# Once a request has waited SUSPECT_TIMEOUT in vain, the database is down, not slow: later
# requests only take a connection the pool already has. Waiting half a second each would hold
# the server's threads, and under a thousand devices the queue of 503s grew by the second (p50
# of a 503 from 0.5 s to 4 s over a 10-second outage). The pool reconnects in the background.
DOWN_TIMEOUT = 0.02
# How long the pool retries one connection attempt (about once a second) before letting the
# next request start a fresh one: psycopg_pool's backoff doubles with every failure, which after
# a 10-second outage would keep the pool empty for seconds after the database is back.
RECONNECT_TIMEOUT = 2.0


def _mark_idle(connection: psycopg.Connection[Any]) -> None:
    connection._sync_idle_since = monotonic()  # type: ignore[attr-defined]


class _PoolHealth:
    """Whether the database looked unreachable a moment ago, and the checks of the pool."""

    def __init__(self, timeout: float) -> None:
        self.pool: psycopg_pool.ConnectionPool[Any] | None = None
        self.timeout = timeout
        self.suspect_until = 0.0
        self.down_until = 0.0
        self._checking = threading.Lock()

    def wait(self) -> float:
        """How long a request may wait for a connection now."""
        now = monotonic()
        if now < self.down_until:
            return DOWN_TIMEOUT
        return SUSPECT_TIMEOUT if now < self.suspect_until else self.timeout

    def check_if_idle(self, connection: psycopg.Connection[Any]) -> None:
        """The pool's ``check``: run on a connection before a request gets it."""
        if monotonic() - getattr(connection, "_sync_idle_since", 0.0) <= IDLE_CHECK_AFTER:
            return
        try:
            psycopg_pool.ConnectionPool.check_connection(connection)
        except psycopg.Error:
            # Its idle siblings are most likely dead too (the database restarted): drop them
            # all now, so that the pool's next try gets a new connection, not the next corpse
            # (the pool waits longer after each failed check).
            self.suspect_until = monotonic() + SUSPECT_FOR
            self._check()
            raise

    def lost(self) -> None:
        """A connection broke during a call: the database may be gone, idle ones with it."""
        self.suspect_until = monotonic() + SUSPECT_FOR
        if self._checking.acquire(blocking=False):
            threading.Thread(target=self._check_once, name="pool-check", daemon=True).start()

    def worked(self) -> None:
        """A call went through: the database is back, requests may wait for a connection."""
        self.down_until = 0.0

    def timed_out(self) -> None:
        if monotonic() < self.suspect_until:
            # Still nothing: still down. Both expire SUSPECT_FOR after the last request that
            # found no connection, so the server is back to normal waits once they come again.
            self.suspect_until = self.down_until = monotonic() + SUSPECT_FOR

    def _check_once(self) -> None:
        try:
            self._check()
        finally:
            self._checking.release()

    def _check(self) -> None:
        try:
            if self.pool is not None:
                self.pool.check()  # drops the broken idle connections and replaces them
        except Exception:  # the pool may be closing; nothing to heal then
            pass


class PostgresStore(EventStore):
    backend = "postgres"

    def __init__(
        self,
        url: str,
        *,
        registry: UpcasterRegistry | None = None,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 5.0,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
    ) -> None:
        """``timeout``: the longest a call waits for a free connection before it raises
        ``StoreUnavailable`` (a bounded wait, so that an overloaded or absent database gives
        503s, not requests that hang)."""
        super().__init__(registry)
        self.url = url
        self.timeouts = timeouts
        self.health = _PoolHealth(timeout)
        self.pool = psycopg_pool.ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            configure=functools.partial(_configure, timeouts),
            check=self.health.check_if_idle,
            reset=_mark_idle,
            reconnect_timeout=RECONNECT_TIMEOUT,
            open=False,
            name="sync-server",
            kwargs=connect_options(timeouts),
        )
        self.health.pool = self.pool
        self.pool.open(wait=False)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        connection: psycopg.Connection[Any] | None = None
        try:
            with self.pool.connection(timeout=self.health.wait()) as connection:
                yield connection
            self.health.worked()
        except psycopg_pool.PoolTimeout as error:
            self.health.timed_out()
            raise StoreUnavailable(f"PostgreSQL is unavailable: {error}") from error
        except psycopg.Error as error:
            # OperationalError: also a lock timeout, a deadlock or a serialization failure:
            # retryable, so a 503 too. Any error on a connection that is now closed (the server
            # ended an idle transaction's session, which psycopg raises as an InternalError)
            # is one too, and only a connection that broke says the database may be gone.
            broken = connection is None or connection.closed
            if broken:
                self.health.lost()
            if broken or isinstance(error, psycopg.OperationalError):
                raise StoreUnavailable(f"PostgreSQL is unavailable: {error}") from error
            raise

    @contextmanager
    def transaction(  # type: ignore[override]
        self, owner: UUID, *, pipelined: bool = False
    ) -> Iterator[Transaction]:
        with self._connection() as connection:
            sql = PostgresSql(connection)
            pipeline = sql.pipelined() if pipelined else contextlib.nullcontext()
            with pipeline, connection.transaction():
                sql.execute(
                    f"SELECT pg_advisory_xact_lock_shared(?, {SCHEMA_KEY}), "
                    "pg_advisory_xact_lock(?, ?)",
                    [LOCK_APPENDS, LOCK_OWNER, lock_key(owner)],
                )
                tx = PostgresTransaction(sql, owner, self.registry)
                yield tx
                tx.settle()
            notice = changes.committed(owner, tx.recorded)
            if notice is not None:
                _notify(connection, [notice])

    def announce(self, notices: Sequence[changes.Committed]) -> None:
        if not notices:
            return
        try:
            with self._connection() as connection:
                _notify(connection, notices)
        except StoreUnavailable as error:
            log.warning("change notices not sent", extra={"error": str(error)})

    @contextmanager
    def sql(self) -> Iterator[Sql]:  # type: ignore[override]
        with self._connection() as connection, connection.transaction():
            yield PostgresSql(connection)

    @contextmanager
    def snapshot(self) -> Iterator[Sql]:  # type: ignore[override]
        with self._connection() as connection, connection.transaction():
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PostgresSql(connection)

    def hold_appends(self, sql: Sql) -> None:
        # Owner transactions take LOCK_APPENDS shared before their owner lock: this waits for
        # those in flight, and queues new ones behind it until the caller's transaction ends.
        sql.execute(f"SELECT pg_advisory_xact_lock(?, {SCHEMA_KEY})", [LOCK_APPENDS])

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
        settled = (
            "AND tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint "
            if settled_only
            else ""
        )
        columns, params = _FEED_COLUMNS, []
        if types is not None:
            columns, times = feed_columns("::text", "type = ANY(?::text[])")
            params = [list(types)] * times
        if part is not None:  # the rule of ``FeedPart.holds``
            settled += f"AND get_byte(uuid_send(owner), 15) % {part.count:d} = {part.index:d} "
            # The planner has no statistics for that expression and guesses it keeps one row in
            # 200: it then expects to read the whole rest of the feed for a page, and reads
            # it all through a bitmap and sorts it, page after page (a million-event rebuild
            # in two processes took longer than in one). Walking the feed's index in order
            # and stopping at the LIMIT is the plan; without sorts it is the only one left.
            sql.execute("SET LOCAL enable_sort = off")
        # Binary: PostgreSQL then sends uuids, integers and times as they are stored instead
        # of formatting them as text for psycopg to parse back; reading the feed took a third
        # of the database's CPU and a fifth less of Python's (data and metadata stay text).
        rows = sql.fetchall(
            f"SELECT {columns} FROM events WHERE (tx, position) > (?, ?) {settled}"
            "ORDER BY tx, position LIMIT ?",
            [*params, after.tx, after.position, limit],
            binary=True,
        )
        if part is not None:  # the caller's transaction goes on as it was
            sql.execute("SET LOCAL enable_sort TO DEFAULT")
        return rows

    @asynccontextmanager
    async def watch(self, deliver: changes.Deliver) -> AsyncIterator[None]:
        task = asyncio.create_task(
            listener.listen(self.url, deliver, options=connect_options(self.timeouts)),
            name="change listener",
        )
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def pool_stats(self) -> dict[str, int]:
        return dict(self.pool.get_stats())

    def close(self) -> None:
        self._closed.set()
        self.pool.close()
