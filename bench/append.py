"""Append throughput of the event store against the raw limit of the same database.

For each backend and batch size (1, 50, 500 events per transaction) it measures
``EventStore.append`` (owner lock, idempotency lookup, version check, positions, the event rows
and the idempotency key) and, in the same run on the same database, the raw limit: the very same
event rows inserted with plain INSERTs (and with COPY on PostgreSQL) into an identical table
(same columns, defaults and indexes), one transaction per batch, like the store. Every
measurement starts from empty tables; the rounds interleave store and raw runs, so that a noisy
neighbour slows all of them alike, and the median of the rounds is printed with its ratio to the
raw rates.

    .venv/bin/python bench/append.py [--backends sqlite,postgres] [--events 20000] [--rounds 3]

``bench/sync.py`` imports ``measure`` from here for its yardstick.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import msgspec
import psycopg

from event_store import EventMetadata, EventStore, NewEvent, StreamId, migrate, open_store
from event_store.migrator import EVENT_LOG

PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATCHES = (1, 50, 500)
OWNERS = [uuid.uuid4() for _ in range(100)]
DATA = {"date": "2026-12-01", "city": "Madrid", "country": "ES", "fee": "12000.00"}
META = EventMetadata(actor="bench", client_id="c", op_id="x", source="bench")

# The columns the store's own INSERT names on PostgreSQL; position and tx come from the column
# defaults there, as they do for the store.
PG_COLUMNS = "owner, stream_type, stream_id, version, type, schema_version, data, metadata, "
PG_COLUMNS += "recorded_at, hash"
# The store writes each event's link in its owner's hash chain (32 bytes): so do the raw rows,
# which also keeps them out of the partial index of unhashed events the copy of the table has.
RAW_HASH = bytes(range(32))
# SQLite has no defaults for them: the store computes position and tx, and so does the raw run.
SQLITE_COLUMNS = "position, tx, " + PG_COLUMNS


@dataclass(frozen=True)
class Transaction:
    """One batch as the store gets it and as the raw runs insert it: the same rows."""

    owner: uuid.UUID
    events: list[NewEvent]
    key: str

    def rows(self, now: datetime) -> list[tuple[Any, ...]]:
        encode = msgspec.json.encode
        return [
            (self.owner, e.stream.type, e.stream.id, 1, e.type, e.schema_version,
             encode(e.data).decode(), encode(e.metadata).decode(), now, RAW_HASH)
            for e in self.events
        ]  # fmt: skip


def workload(batch: int, total: int) -> list[Transaction]:
    """``total // batch`` transactions of ``batch`` creates each, owners taking turns."""
    return [
        Transaction(
            OWNERS[i % len(OWNERS)],
            [
                NewEvent(StreamId("show", uuid.uuid4()), "show.created", DATA, metadata=META)
                for _ in range(batch)
            ],
            f"bench-{uuid.uuid4()}",
        )
        for i in range(max(1, total // batch))
    ]


def timed(events: int, run: Callable[[], None]) -> float:
    """Events per second of ``run``."""
    started = time.perf_counter()
    run()
    return events / (time.perf_counter() - started)


# -- the store ---------------------------------------------------------------------------------


def store_rate(store: EventStore, work: Sequence[Transaction]) -> float:
    def run() -> None:
        for t in work:
            # A create expects its stream not to exist yet: the store checks every version.
            expected = {e.stream: 0 for e in t.events}
            store.append(t.owner, t.events, expected=expected, idempotency_key=t.key)

    return timed(sum(len(t.events) for t in work), run)


def empty_store(store: EventStore) -> None:
    with store.sql() as sql:
        if store.backend == "postgres":
            sql.execute("TRUNCATE events, idempotency_keys")
        else:
            sql.execute("DELETE FROM events")
            sql.execute("DELETE FROM idempotency_keys")


# -- the raw limit -----------------------------------------------------------------------------


class RawPostgres:
    """Plain INSERTs or COPY of the store's rows into ``events_raw``, a copy of ``events``."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)
        self.conn.execute("DROP TABLE IF EXISTS events_raw")
        self.conn.execute("CREATE TABLE events_raw (LIKE events INCLUDING ALL)")
        self.conn.commit()

    def rate(self, work: Sequence[Transaction], copy: bool) -> float:
        self.conn.execute("TRUNCATE events_raw")
        self.conn.commit()
        prepared = [t.rows(datetime.now(UTC)) for t in work]
        insert = f"INSERT INTO events_raw ({PG_COLUMNS}) VALUES ({','.join(['%s'] * 10)})"

        def run() -> None:
            for rows in prepared:
                with self.conn.transaction(), self.conn.cursor() as cur:
                    if copy:
                        with cur.copy(f"COPY events_raw ({PG_COLUMNS}) FROM STDIN") as cp:
                            for row in rows:
                                cp.write_row(row)
                    else:
                        cur.executemany(insert, rows)

        return timed(sum(len(r) for r in prepared), run)

    def close(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS events_raw")
        self.conn.commit()
        self.conn.close()


class RawSqlite:
    """Plain INSERTs of the store's rows into ``events_raw``, with the store's pragmas."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")  # as the store: durable commits
        self.conn.execute("DROP TABLE IF EXISTS events_raw")
        ddl = self.conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()
        self.conn.execute(ddl[0].replace("CREATE TABLE events", "CREATE TABLE events_raw", 1))
        indexes = self.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
            "AND sql IS NOT NULL"
        ).fetchall()
        for name, sql in indexes:
            sql = sql.replace(name, name + "_raw").replace(" ON events ", " ON events_raw ")
            self.conn.execute(sql)

    def rate(self, work: Sequence[Transaction]) -> float:
        self.conn.execute("DELETE FROM events_raw")
        now = datetime.now(UTC)
        prepared, position = [], 1
        for t in work:
            # Positions and tx as the store computes them: consecutive, tx = first position.
            rows = [(position + i, position, *row) for i, row in enumerate(t.rows(now))]
            prepared.append(rows)
            position += len(rows)
        insert = f"INSERT INTO events_raw ({SQLITE_COLUMNS}) VALUES ({','.join(['?'] * 12)})"

        def run() -> None:
            for rows in prepared:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.executemany(insert, rows)
                self.conn.execute("COMMIT")

        return timed(sum(len(r) for r in prepared), run)

    def close(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS events_raw")
        self.conn.close()


# -- a run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """Median events/s over the rounds of one backend and batch size."""

    backend: str
    batch: int
    events: int
    store: float
    insert: float
    copy: float | None = None


@contextmanager
def bench_database(backend: str) -> Iterator[tuple[EventStore, str]]:
    """A migrated store in a throwaway database (a temp file, or a PostgreSQL schema of its
    own, dropped afterwards), and the URL of that database for the raw runs."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(f"sqlite:///{tmp}/bench.db")
            try:
                migrate(store, [EVENT_LOG])
                yield store, f"{tmp}/bench.db"
            finally:
                store.close()
        return
    with postgres_schema() as url:
        store = open_store(url, pool_min=1, pool_max=2)
        try:
            migrate(store, [EVENT_LOG])
            yield store, url
        finally:
            store.close()


@contextmanager
def postgres_schema() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL schema of its own, dropped with all it holds after."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def events_for(batch: int, events: int) -> int:
    # Batches of one are bound by the commit (fsync) rate: fewer of them keep the run short.
    return max(batch, events // 10 if batch == 1 else events)


def measure(
    backend: str, events: int = 20000, rounds: int = 3, batches: Sequence[int] = BATCHES
) -> list[Measurement]:
    """Store and raw rates of ``backend`` for each batch size (median of ``rounds``)."""
    results = []
    with bench_database(backend) as (store, url):
        raw: RawPostgres | RawSqlite = RawPostgres(url) if backend == "postgres" else RawSqlite(url)
        try:
            store_rate(store, workload(10, 100))  # warm up connections and caches
            empty_store(store)
            for batch in batches:
                total = events_for(batch, events)
                runs: dict[str, list[float]] = {"store": [], "insert": [], "copy": []}
                for _ in range(rounds):
                    work = workload(batch, total)
                    empty_store(store)
                    runs["store"].append(store_rate(store, work))
                    if isinstance(raw, RawPostgres):
                        runs["insert"].append(raw.rate(work, copy=False))
                        runs["copy"].append(raw.rate(work, copy=True))
                    else:
                        runs["insert"].append(raw.rate(work))
                median = {k: statistics.median(v) if v else None for k, v in runs.items()}
                results.append(
                    Measurement(
                        backend, batch, total, median["store"] or 0.0, median["insert"] or 0.0,
                        median["copy"],
                    )
                )  # fmt: skip
        finally:
            raw.close()
    return results


def load_average() -> str:
    """The 1, 5 and 15-minute load averages: other work on the machine skews every figure."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def pace() -> float:
    """The CPU milliseconds a fixed piece of pure-Python work takes now (median of three): how
    fast this machine's cores are this minute.

    This machine's cores are shared with others: within ten minutes of 2026-12-04 the same
    in-process push (``bench/push_cpu.py``) took 36 to 56 ms of CPU per batch, with the load
    average near zero and no steal time counted, and this figure mostly moved with it (240 to
    380 ms; in one of ten alternations it read 241 ms beside a 56 ms push); a small loop that
    stays in the CPU's cache barely moved (26 to 44 ms, not in step). So the work here is a
    push's kind: dictionaries of strings too big for the cache. It is a rough guide to the
    minute, measured just before the work, not a correction factor."""
    keys, order = _pace_work()
    half = len(order) // 2
    times: list[float] = []
    for _ in range(3):
        started = time.process_time()
        table: dict[str, int] = {}
        for n in order[:half]:
            key = keys[n]
            table[key] = table.get(key, 0) + n
        for n in order[half:]:
            table.get(keys[n])
        times.append(time.process_time() - started)
    return statistics.median(times) * 1000


@functools.cache
def _pace_work() -> tuple[list[str], list[int]]:
    order = list(range(400_000))
    random.Random(1).shuffle(order)
    return [f"k{n}" for n in range(400_000)], order


def machine() -> str:
    """The machine and the interpreter, for the first line of a benchmark's output.

    Which CPython build runs matters as much as the code: a build with libpython as a shared
    library and without profile-guided optimization (pyenv's default, this machine's
    ``python3``) ran a push 7-14% slower than Debian's ``/usr/bin/python3`` of the same minor
    version (bench/RESULTS.md), and the official Docker image the Dockerfile uses is built
    with profile-guided optimization. So the line says which one it was."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()} "
        f"({sys.executable}, {_libpython()})"
    )


def _libpython() -> str:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "libpython unknown"
    shared = re.search(r"/(libpython[0-9.]+\.so[0-9.]*)$", maps, re.MULTILINE)
    return f"{shared.group(1)} shared" if shared else "libpython linked in"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--events", type=int, default=20000, help="events per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement (median)")
    args = parser.parse_args()
    print(f"machine: {machine()}; {args.rounds} rounds, median; load average {load_average()}")
    print(f"{'backend':9} {'batch':>5} {'events':>6} {'store ev/s':>11} {'INSERT ev/s':>12} "
          f"{'store/INSERT':>12} {'COPY ev/s':>10} {'store/COPY':>10}")  # fmt: skip
    for backend in args.backends.split(","):
        for m in measure(backend, args.events, args.rounds):
            line = (
                f"{m.backend:9} {m.batch:5d} {m.events:6d} {m.store:11,.0f} {m.insert:12,.0f} "
                f"{m.store / m.insert:12.2f}"
            )
            if m.copy:
                line += f" {m.copy:10,.0f} {m.store / m.copy:10.2f}"
            print(line, flush=True)
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
