"""Append throughput of the event store against the raw limit of the same database.

For each backend and batch size (1, 50, 500 events per transaction) it measures
``EventStore.append`` (owner lock, version check, positions, idempotency key) and, in the same
run on the same machine, plain INSERTs of the same rows in the same batches (and COPY on
PostgreSQL) into an identical table. It prints events/s and the ratio to the raw rate.

    .venv/bin/python bench/append.py [--backends sqlite,postgres] [--events 20000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import msgspec
import psycopg

from event_store import EventStore, NewEvent, StreamId, migrate, open_store
from event_store.migrator import EVENT_LOG

PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATCHES = (1, 50, 500)
OWNERS = [uuid.uuid4() for _ in range(100)]
DATA = {"date": "2026-12-01", "city": "Madrid", "country": "ES", "fee": "12000.00"}
META = {"actor": "bench", "client_id": "c", "op_id": "x", "source": "bench"}


def events_for(batch: int) -> list[NewEvent]:
    return [NewEvent(StreamId("show", uuid.uuid4()), "show.created", DATA) for _ in range(batch)]


def raw_rows(batch: int, start: int, tx: int) -> list[tuple[object, ...]]:
    now = datetime.now(UTC)
    data, meta = msgspec.json.encode(DATA).decode(), msgspec.json.encode(META).decode()
    return [
        (
            start + i,
            tx,
            OWNERS[i % 100],
            "show",
            uuid.uuid4(),
            1,
            "show.created",
            1,
            data,
            meta,
            now,
        )
        for i in range(batch)
    ]


def rate(total_events: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return total_events / (time.perf_counter() - started)


def bench_store(store: EventStore, batch: int, total: int) -> float:
    transactions = max(1, total // batch)
    prepared = [events_for(batch) for _ in range(transactions)]

    def run() -> None:
        for i, events in enumerate(prepared):
            store.append(OWNERS[i % 100], events, idempotency_key=f"bench-{uuid.uuid4()}")

    return rate(transactions * batch, run)


COLUMNS = (
    "position, tx, owner, stream_type, stream_id, version, type, schema_version, data, "
    "metadata, recorded_at"
)


def bench_raw_postgres(url: str, schema: str, batch: int, total: int, copy: bool) -> float:
    transactions = max(1, total // batch)
    with psycopg.connect(url) as conn:
        conn.execute(f"SET search_path = {schema}")
        conn.execute("DROP TABLE IF EXISTS events_raw")
        conn.execute("CREATE TABLE events_raw (LIKE events INCLUDING ALL)")
        conn.commit()
        prepared = [raw_rows(batch, i * batch + 1, i) for i in range(transactions)]

        def run() -> None:
            for rows in prepared:
                with conn.transaction():
                    if copy:
                        with conn.cursor().copy(f"COPY events_raw ({COLUMNS}) FROM STDIN") as cp:
                            for row in rows:
                                cp.write_row(row)
                    else:
                        with conn.cursor() as cur:
                            cur.executemany(
                                f"INSERT INTO events_raw ({COLUMNS}) VALUES "
                                "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                                rows,
                            )

        return rate(transactions * batch, run)


def bench_raw_sqlite(path: str, batch: int, total: int) -> float:
    import sqlite3

    transactions = max(1, total // batch)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("DROP TABLE IF EXISTS events_raw")
    ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    conn.execute(ddl.replace("CREATE TABLE events", "CREATE TABLE events_raw", 1))
    for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
        "AND sql IS NOT NULL"
    ).fetchall():
        conn.execute(sql.replace(name, name + "_raw").replace(" ON events ", " ON events_raw "))
    prepared = [
        [tuple(str(v) if isinstance(v, uuid.UUID | datetime) else v for v in row) for row in rows]
        for rows in (raw_rows(batch, i * batch + 1, i) for i in range(transactions))
    ]

    def run() -> None:
        for rows in prepared:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                f"INSERT INTO events_raw ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows
            )
            conn.execute("COMMIT")

    try:
        return rate(transactions * batch, run)
    finally:
        conn.close()


def total_for(batch: int, events: int) -> int:
    # Batches of one are slow on a durable database: fewer of them keep the run short.
    return events // 10 if batch == 1 else events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--events", type=int, default=20000, help="events per measurement")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"{'backend':9} {'batch':>5} {'store ev/s':>11} {'INSERT ev/s':>12} {'ratio':>6} "
          f"{'COPY ev/s':>10} {'ratio':>6}")  # fmt: skip
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            schema = None
            if backend == "postgres":
                schema = f"bench_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(PG_URL, autocommit=True) as conn:
                    conn.execute(f"CREATE SCHEMA {schema}")
                url = f"{PG_URL}?options=-csearch_path%3D{schema}"
                store = open_store(url, pool_min=1, pool_max=2)
            else:
                store = open_store(f"sqlite:///{tmp}/bench.db")
            try:
                migrate(store, [EVENT_LOG])
                for batch in BATCHES:
                    total = total_for(batch, args.events)
                    store_rate = bench_store(store, batch, total)
                    copy_rate = None
                    if backend == "postgres":
                        insert_rate = bench_raw_postgres(PG_URL, schema, batch, total, copy=False)  # type: ignore[arg-type]
                        copy_rate = bench_raw_postgres(PG_URL, schema, batch, total, copy=True)  # type: ignore[arg-type]
                    else:
                        insert_rate = bench_raw_sqlite(f"{tmp}/bench.db", batch, total)
                    line = (
                        f"{backend:9} {batch:5d} {store_rate:11,.0f} {insert_rate:12,.0f} "
                        f"{store_rate / insert_rate:6.2f}"
                    )
                    if copy_rate:
                        line += f" {copy_rate:10,.0f} {store_rate / copy_rate:6.2f}"
                    print(line, flush=True)
            finally:
                store.close()
                if schema:
                    with psycopg.connect(PG_URL, autocommit=True) as conn:
                        conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
