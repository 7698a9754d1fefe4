"""Growth: does a push, or a small pull, cost more when the log is 100 times larger?

It grows one PostgreSQL log (``bench/seed.py``: the real push path, 1,000 users) to each size of
``--sizes`` in turn, and at each size starts a server on it and times, over HTTP, one client
at a time:

* ``health``: ``GET /health``, the floor of a request on this machine (no database);
* ``push 1``: a push of one op (a new show);
* ``push 20``: a push of 20 mixed ops (creates, updates on known versions, sales, …);
* ``pull``: a pull since the cursor of the previous pull, which finds the one change just pushed.

Every request also passes the auth lookup (session and user by primary key). Figures are
p50/p95 in ms, and the ratio to ``health``. At the last size it records the plans of a push of 20
ops and of a small pull by a seeded user with history (``EXPLAIN (ANALYZE, BUFFERS)`` of every
statement, through ``auto_explain``; it needs a superuser) into ``--explain``.

    .venv/bin/python bench/growth.py --sizes 10000,1000000 --explain bench/EXPLAIN.md
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import httpx  # noqa: E402
import msgspec  # noqa: E402
import psycopg  # noqa: E402
from load import (  # noqa: E402
    PG_URL,
    Known,
    build_ops,
    first_ops,
    percentile,
    postgres_schema_url,
    start_server,
)
from seed import grow  # noqa: E402

from event_store.postgres import PostgresStore  # noqa: E402
from projections import runner  # noqa: E402
from schemas.events import build_registry  # noqa: E402
from schemas.ops import PushRequest  # noqa: E402
from sync_server import pull_cursors  # noqa: E402
from sync_server.pull import Since, pull  # noqa: E402
from sync_server.push import Origin, push  # noqa: E402

KINDS = ("health", "push 1", "push 20", "pull")


def timed(samples: dict[str, list[float]], kind: str, call: Any) -> Any:
    started = time.perf_counter()
    response = call()
    samples[kind].append((time.perf_counter() - started) * 1000)
    if response.status_code != 200:
        raise RuntimeError(f"{kind}: {response.status_code} {response.text[:300]}")
    return response.json()


def measure(url: str, rounds: int, seed: int) -> dict[str, list[float]]:
    """Time ``rounds`` of each kind of request, interleaved, for a new user."""
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with httpx.Client(base_url=url, timeout=60) as http:
        email = f"growth-{uuid.uuid4().hex[:12]}@example.com"
        body = {"email": email, "password": "growth benchmark password"}
        registered = http.post("/v1/auth/register", json=body).json()
        headers = {"Authorization": f"Bearer {registered['access_token']}"}
        client_id = str(uuid.uuid4())
        known = Known()
        cursor = None

        def sync() -> None:
            nonlocal cursor
            params = {"since": cursor} if cursor else {}
            page = timed(samples, "pull", lambda: http.get("/v1/sync/pull", params=params,
                                                            headers=headers))  # fmt: skip
            for change in page["changes"]:
                deleted = change["op"] == "delete"
                known.learn(change["entity"], change["id"], change["version"], deleted)
            cursor = page["cursor"]

        def send(kind: str, ops: list[dict[str, Any]]) -> None:
            payload = {"client_id": client_id, "ops": ops}
            timed(samples, kind, lambda: http.post("/v1/sync/push", json=payload, headers=headers))

        send("push 20", first_ops(rng)[0])  # products and shows to work on
        sync()
        for _ in range(rounds):
            timed(samples, "health", lambda: http.get("/health"))
            send("push 1", build_ops(rng, known, 1)[0])
            sync()
            send("push 20", build_ops(rng, known, 20)[0])
            sync()
    return samples


def table_sizes(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as db:
        rows = db.execute(
            "SELECT (SELECT count(*) FROM events), pg_total_relation_size('events'), "
            "pg_total_relation_size('shows') + pg_total_relation_size('costs') "
            "+ pg_total_relation_size('workouts') + pg_total_relation_size('inventory')"
        ).fetchone()
    assert rows is not None
    return {"events": rows[0], "log_mb": rows[1] >> 20, "read_tables_mb": rows[2] >> 20}


def analyze(database_url: str) -> None:
    # Fresh statistics at every size, as autovacuum would give a database that grew slowly.
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("VACUUM ANALYZE")


# -- plans ------------------------------------------------------------------------------------


class ExplainingStore(PostgresStore):
    """A store whose every statement's plan (with actual times and buffers) is collected."""

    def __init__(self, url: str) -> None:
        super().__init__(url, registry=build_registry(), min_size=1, max_size=1)
        self.plans: list[str] = []

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with super()._connection() as connection:
            if not getattr(connection, "_explaining", False):
                for statement in (
                    "LOAD 'auto_explain'",
                    "SET auto_explain.log_min_duration = 0",
                    "SET auto_explain.log_analyze = on",
                    "SET auto_explain.log_buffers = on",
                    "SET auto_explain.log_timing = on",
                    "SET auto_explain.log_level = notice",
                ):
                    connection.execute(statement)
                connection.commit()
                connection.add_notice_handler(lambda d: self.plans.append(d.message_primary or ""))
                connection._explaining = True  # type: ignore[attr-defined]
            yield connection


def explain(database_url: str, seed: int) -> list[tuple[str, list[str]]]:
    """The plans of a push of 20 ops and of a small pull, by the seeded user who pushed last."""
    store = ExplainingStore(database_url)
    key = b"k" * 32
    try:
        with store.sql() as sql:
            row = sql.fetchone(
                "SELECT owner FROM events WHERE metadata->>'source' = 'seed' "
                "ORDER BY position DESC LIMIT 1"
            )
        assert row is not None
        owner = row[0]
        known = Known()
        since = Since()
        while True:
            page = pull(store, key, owner, since, 5000)
            for change in page.changes:
                known.learn(change.entity, str(change.id), change.version, change.op == "delete")
            since = Since(cursor=pull_cursors.decode(key, owner, page.cursor))
            if not page.has_more:
                break
        ops = build_ops(random.Random(seed), known, 20)[0]
        request = msgspec.json.decode(
            msgspec.json.encode({"client_id": str(uuid.uuid4()), "ops": ops}), type=PushRequest
        )
        store.plans.clear()
        push(store, request, Origin(owner, request.client_id))
        pushed = list(store.plans)
        store.plans.clear()
        pull(store, key, owner, since, 500)
        pulled = list(store.plans)
    finally:
        store.close()
    return [("a push of 20 ops", pushed), ("a pull of the changes since the last one", pulled)]


def write_plans(path: Path, size: int, plans: list[tuple[str, list[str]]]) -> None:
    lines = [
        "# Query plans at the largest size of bench/growth.py",
        "",
        f"`EXPLAIN (ANALYZE, BUFFERS)` of every statement (through `auto_explain`), with "
        f"{size:,} events in the log, for a seeded user with history. Written by "
        "`bench/growth.py --explain`; rerun it to refresh.",
        "",
    ]
    for title, texts in plans:
        lines += [f"## {title}", ""]
        for text in texts:
            lines += ["```", text.strip(), "```", ""]
    path.write_text("\n".join(lines))


# -- the run ------------------------------------------------------------------------------------


def caught_up(database_url: str) -> None:
    """Bring the catch-up read models (sales) up to the grown log before measuring. Seeding
    pushes in-process, where no runner follows the log; otherwise the server's own runner would
    be projecting the whole growth during the measurement, as no running deployment does."""
    store = PostgresStore(database_url, registry=build_registry())
    try:
        started = time.perf_counter()
        applied = runner.catch_up(store)
        print(f"catch-up models brought up to the log: {applied:,} events in "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000", help="log sizes, ascending")
    parser.add_argument("--database-url", help="grow this database (default: a new schema)")
    parser.add_argument("--postgres-url", default=PG_URL)
    parser.add_argument("--rounds", type=int, default=200, help="requests of each kind")
    parser.add_argument("--procs", type=int, default=1, help="processes seeding the log")
    parser.add_argument("--explain", help="write the plans at the last size to this file")
    parser.add_argument("--keep", action="store_true", help="keep the new schema")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    drop = None
    url = args.database_url
    if url is None:
        url, drop = postgres_schema_url(args.postgres_url)
    results: list[tuple[dict[str, int], dict[str, list[float]]]] = []
    try:
        for size in sizes:
            added, seconds = grow(url, size, procs=args.procs, seed=args.seed)
            print(f"log grown by {added:,} events in {seconds:.0f} s", flush=True)
            caught_up(url)
            analyze(url)
            target = start_server("postgres", 1, database_url=url)
            try:
                samples = measure(target.url, args.rounds, args.seed + size)
            finally:
                target.stop()
            results.append((table_sizes(url), samples))
            print_table(results)
        if args.explain:
            write_plans(Path(args.explain), sizes[-1], explain(url, args.seed))
            print(f"plans written to {args.explain}")
    finally:
        if drop is not None and not args.keep:
            drop()
    return 0


def print_table(results: list[tuple[dict[str, int], dict[str, list[float]]]]) -> None:
    header = f"{'events':>10} {'log MB':>7} {'rows MB':>7}"
    for kind in KINDS:
        header += f" | {kind + ' p50':>12} {'p95':>6} {'x':>5}"
    print(header)
    for sizes, samples in results:
        floor = percentile(sorted(samples["health"]), 50)
        line = f"{sizes['events']:10,} {sizes['log_mb']:7,} {sizes['read_tables_mb']:7,}"
        for kind in KINDS:
            values = sorted(samples[kind])
            p50 = percentile(values, 50)
            line += f" | {p50:12.2f} {percentile(values, 95):6.2f} {p50 / floor:5.1f}"
        print(line, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
