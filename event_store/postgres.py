"""The production backend: PostgreSQL through psycopg 3 and a ``psycopg_pool`` pool.

Any number of server processes may share one database: the owner lock is an advisory
transaction lock, and the global feed is bounded by ``pg_snapshot_xmin`` (see ``store.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import psycopg
import psycopg_pool
from psycopg.types.json import set_json_loads

from . import changes, listener
from .errors import StoreUnavailable
from .events import Checkpoint, EventMetadata, NewEvent, StreamId
from .store import EVENT_COLUMNS, EventStore, Row, Sql, Transaction
from .upcasting import UpcasterRegistry

log = logging.getLogger("event_store")

# Namespaces (the first key) of the two-key advisory locks this product takes.
LOCK_OWNER = 0x5359_0001
LOCK_MIGRATE = 0x5359_0002


def lock_key(value: UUID) -> int:
    """A stable 32-bit key for an id; a collision only makes two owners share a lock."""
    return int.from_bytes(value.bytes[:4], "big", signed=True)


@functools.lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    """``?`` placeholders (shared with SQLite) to psycopg's ``%s``; a literal ``%`` doubled."""
    return sql.replace("%", "%%").replace("?", "%s")


_json_decode = msgspec.json.decode


class _PendingRow(msgspec.Struct, array_like=False):
    o: int
    t: str
    i: UUID
    v: int
    y: str
    s: int
    d: dict[str, Any]
    m: EventMetadata


_encode_rows = msgspec.json.Encoder().encode


class PostgresSql(Sql):
    backend = "postgres"

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection

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

    def copy(self, table: str, columns: str, rows: Iterable[Sequence[Any]]) -> None:
        """COPY rows in: the fastest way in, and done in C by psycopg."""
        with self.connection.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def script(self, sql: str) -> None:
        # No parameters: psycopg sends it as a simple query, several statements allowed.
        self.connection.execute(sql.encode())


class PostgresTransaction(Transaction):
    sql: PostgresSql

    def _versions_cursor(self, streams: Sequence[StreamId]) -> psycopg.Cursor[Any]:
        # One text parameter: dumping hundreds of UUIDs as an array costs more than the query.
        wanted = ",".join(f"{s.type}/{s.id}" for s in streams)
        return self.sql.connection.execute(
            _pg(
                "SELECT w.t, w.i, (SELECT max(version) FROM events e WHERE e.owner = ? "
                "AND e.stream_type = w.t AND e.stream_id = w.i) FROM ("
                "SELECT split_part(x, '/', 1) AS t, split_part(x, '/', 2)::uuid AS i "
                "FROM unnest(string_to_array(?, ',')) AS x) AS w"
            ),
            [self.owner, wanted],
        )

    def _recall_cursor(self, keys: Sequence[str]) -> psycopg.Cursor[Any]:
        return self.sql.connection.cursor(binary=True).execute(
            _pg("SELECT key, outcome FROM idempotency_keys WHERE owner = ? AND key = ANY(?)"),
            [self.owner, list(keys)],
        )

    def _current_versions(self, streams: Sequence[StreamId]) -> dict[StreamId, int]:
        return {StreamId(t, i): v for t, i, v in self._versions_cursor(streams) if v is not None}

    def _recall(self, keys: Sequence[str]) -> dict[str, bytes]:
        return {k: bytes(v) for k, v in self._recall_cursor(keys)}

    def _lookup(
        self, keys: Sequence[str], streams: Sequence[StreamId]
    ) -> tuple[dict[str, bytes], dict[StreamId, int]]:
        recall = self._recall_cursor(keys) if keys else None
        versions = self._versions_cursor(streams) if streams else None
        found = {k: bytes(v) for k, v in recall.fetchall()} if recall else {}
        current = (
            {StreamId(t, i): v for t, i, v in versions.fetchall() if v is not None}
            if versions
            else {}
        )
        return found, current

    def _insert(self, events: list[tuple[NewEvent, int]]) -> tuple[list[int], int]:
        # One JSON parameter for the whole batch: PostgreSQL parses it in C, where dumping
        # hundreds of values one by one would cost more than the insert. Positions come from
        # the column default, taken row by row in the ORDER BY order, after every check.
        document = _encode_rows(
            [
                _PendingRow(o, e.stream.type, e.stream.id, v, e.type, e.schema_version, e.data,
                            e.metadata)
                for o, (e, v) in enumerate(events)
            ]
        )  # fmt: skip
        rows = self.sql.fetchall(
            "INSERT INTO events (owner, stream_type, stream_id, version, type, schema_version, "
            "data, metadata, recorded_at) "
            "SELECT ?, r.t, r.i, r.v, r.y, r.s, r.d, r.m, ? FROM json_to_recordset(?::json) "
            "AS r(o int, t text, i uuid, v int, y text, s smallint, d json, m json) "
            "ORDER BY r.o RETURNING position, tx, stream_type, stream_id, version",
            [self.owner, self.now, document.decode()],
        )
        by_row = {(t, i, v): p for p, _, t, i, v in rows}
        positions = [by_row[(e.stream.type, e.stream.id, v)] for e, v in events]
        return positions, rows[0][1]

    def _remember(self, rows: list[tuple[UUID, str, bytes, datetime]]) -> None:
        # One statement, not executemany: a push remembers one key per op, often hundreds. Its
        # text never changes (keys and outcomes go as two binary arrays): psycopg splits a
        # statement at its placeholders in Python, and a VALUES list of thousands of them cost
        # more to convert than the insert itself. A transaction's rows share owner and time.
        by_moment: dict[tuple[UUID, datetime], list[tuple[str, bytes]]] = {}
        for owner, key, outcome, moment in rows:
            by_moment.setdefault((owner, moment), []).append((key, outcome))
        for (owner, moment), pairs in by_moment.items():
            self.sql.connection.cursor(binary=True).execute(
                "INSERT INTO idempotency_keys (owner, key, outcome, recorded_at) "
                "SELECT %s, k, o, %s FROM unnest(%s::text[], %s::bytea[]) AS t(k, o)",
                [owner, moment, [k for k, _ in pairs], [o for _, o in pairs]],
            )

    def _read_stream_rows(
        self, stream: StreamId, to_version: int | None, as_of: datetime | None
    ) -> list[Row]:
        query = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE owner = ? AND stream_type = ? "
            "AND stream_id = ?"
        )
        params: list[Any] = [self.owner, stream.type, stream.id]
        if to_version is not None:
            query += " AND version <= ?"
            params.append(to_version)
        if as_of is not None:
            query += " AND recorded_at <= ?"
            params.append(as_of)
        return self.sql.fetchall(query + " ORDER BY version", params)


def _notify(connection: psycopg.Connection[Any], notice: changes.Committed) -> None:
    """Send ``notice`` right after the commit that wrote its events, in a transaction of its own.

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
            connection.execute("SET LOCAL synchronous_commit = off")
            connection.execute(
                f"SELECT pg_notify({changes.CHANNEL_SQL}, %s)", [changes.encode(notice)]
            )
    except psycopg.Error as error:
        log.warning("change notice not sent", extra={"error": str(error)})


def _configure(connection: psycopg.Connection[Any]) -> None:
    set_json_loads(_json_decode, connection)
    connection.execute("SET TIME ZONE 'UTC'")
    connection.commit()


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
    ) -> None:
        super().__init__(registry)
        self.url = url
        self.pool = psycopg_pool.ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            configure=_configure,
            open=False,
            name="sync-server",
            # A dead database must answer 503 quickly instead of holding requests forever.
            kwargs={"connect_timeout": 3},
        )
        self.pool.open(wait=False)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self.pool.connection() as connection:
                yield connection
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as error:
            raise StoreUnavailable(f"PostgreSQL is unavailable: {error}") from error

    @contextmanager
    def transaction(self, owner: UUID) -> Iterator[Transaction]:  # type: ignore[override]
        with self._connection() as connection:
            with connection.transaction():
                sql = PostgresSql(connection)
                sql.execute("SELECT pg_advisory_xact_lock(?, ?)", [LOCK_OWNER, lock_key(owner)])
                tx = PostgresTransaction(sql, owner, self.registry)
                yield tx
            notice = changes.committed(owner, tx.recorded)
            if notice is not None:
                _notify(connection, notice)

    @contextmanager
    def sql(self) -> Iterator[Sql]:  # type: ignore[override]
        with self._connection() as connection, connection.transaction():
            yield PostgresSql(connection)

    @contextmanager
    def snapshot(self) -> Iterator[Sql]:  # type: ignore[override]
        with self._connection() as connection, connection.transaction():
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PostgresSql(connection)

    def _read_all_rows(self, sql: Sql, after: Checkpoint, limit: int) -> list[Row]:
        return sql.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE (tx, position) > (?, ?) "
            "AND tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint "
            "ORDER BY tx, position LIMIT ?",
            [after.tx, after.position, limit],
        )

    @asynccontextmanager
    async def watch(self, deliver: changes.Deliver) -> AsyncIterator[None]:
        task = asyncio.create_task(listener.listen(self.url, deliver), name="change listener")
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
