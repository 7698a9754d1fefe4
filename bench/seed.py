"""Seed: grow a database's event log (and its read tables) to a given number of events, fast.

Events go in through the real command path, ``sync_server.push.push``, in-process and in big
batches: decided, appended with their op keys and projected in one transaction each, exactly as
a push over HTTP would do it. So the read tables always match the log (``sync-server verify``
holds), and the data has the shape of real use: the op mix of ``bench/load.py`` (creates,
updates, sales, workout sets, cost deletions) spread over ``--owners`` users.

    .venv/bin/python bench/seed.py --database-url postgresql://… --events 1000000
    .venv/bin/python bench/seed.py --new-schema --events 10000     # prints the schema's URL

It adds to what is there: run it again with a larger ``--events`` total to grow the same log.
``--procs`` processes seed different owners at once.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import msgspec  # noqa: E402
from load import PG_URL, Known, build_ops, first_ops, postgres_schema_url  # noqa: E402

from event_store import EventStore, migrate, open_store  # noqa: E402
from schemas.events import build_registry  # noqa: E402
from schemas.ops import PushRequest  # noqa: E402
from sync_server.push import Origin, push  # noqa: E402
from sync_server.services import MIGRATIONS  # noqa: E402

_to_request = msgspec.json.Decoder(PushRequest).decode
_encode = msgspec.json.Encoder().encode


def open_database(url: str | None, data_dir: str | None = None) -> EventStore:
    store = open_store(url, data_dir=data_dir or ".sync-data", registry=build_registry(),
                       pool_min=1, pool_max=2)  # fmt: skip
    migrate(store, MIGRATIONS)
    return store


def event_count(store: EventStore) -> int:
    with store.sql() as sql:
        row = sql.fetchone("SELECT count(*) FROM events")
    return int(row[0]) if row else 0


class Owner:
    """One seeded user: what it knows of its entities, so that later batches update them."""

    def __init__(self, seed: int) -> None:
        self.id = uuid.uuid4()
        self.client_id = uuid.uuid4()
        self.rng = random.Random(seed)
        self.known = Known()
        self.started = False

    def batch(self, size: int) -> list[dict[str, Any]]:
        if not self.started:
            self.started = True
            return first_ops(self.rng)[0]
        return build_ops(self.rng, self.known, size)[0]

    def learn(self, ops: list[dict[str, Any]], results: list[Any]) -> None:
        for op, result in zip(ops, results, strict=True):
            if result.status == "applied" and result.version:
                deleted = op["action"] == "delete"
                self.known.learn(op["entity"], str(op["id"]), result.version, deleted)


def seed_owners(store: EventStore, events: int, owners: int, batch: int, seed: int) -> int:
    """Append about ``events`` events for ``owners`` new users; return how many were written."""
    people = [Owner(seed * 1_000_003 + n) for n in range(owners)]
    written = 0
    while written < events:
        for owner in people:
            ops = owner.batch(min(batch, max(1, events - written)))
            request = _to_request(_encode({"client_id": owner.client_id, "ops": ops}))
            pushed = push(store, request, Origin(owner.id, owner.client_id, source="seed"))
            owner.learn(ops, pushed.results)
            written += len(pushed.events)
            if written >= events:
                break
    return written


def _worker(url: str | None, data_dir: str | None, events: int, owners: int, batch: int,
            seed: int) -> int:  # fmt: skip
    store = open_database(url, data_dir)
    try:
        return seed_owners(store, events, owners, batch, seed)
    finally:
        store.close()


def grow(
    url: str | None,
    total: int,
    *,
    data_dir: str | None = None,
    owners: int = 1000,
    batch: int = 250,
    procs: int = 1,
    seed: int = 1,
) -> tuple[int, float]:
    """Seed until the log holds ``total`` events; return (events added, seconds)."""
    store = open_database(url, data_dir)
    try:
        missing = total - event_count(store)
    finally:
        store.close()
    if missing <= 0:
        return 0, 0.0
    started = time.perf_counter()
    if procs == 1 or url is None or url.startswith("sqlite:"):  # SQLite: one writer anyway
        added = _worker(url, data_dir, missing, owners, batch, seed)
    else:
        shares = [(url, data_dir, missing // procs + (n < missing % procs),
                   max(1, owners // procs), batch, seed * 100 + n)
                  for n in range(procs)]  # fmt: skip
        with multiprocessing.get_context("spawn").Pool(procs) as pool:
            added = sum(pool.starmap(_worker, shares))
    return added, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--database-url", help="postgresql://… or sqlite:///path/sync.db")
    where.add_argument("--new-schema", action="store_true", help="a fresh PostgreSQL schema")
    parser.add_argument("--postgres-url", default=PG_URL)
    parser.add_argument("--events", type=int, required=True, help="total events wanted")
    parser.add_argument("--owners", type=int, default=1000, help="users the new events belong to")
    parser.add_argument("--batch", type=int, default=250, help="ops per push")
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    url = args.database_url
    if args.new_schema:
        url, _ = postgres_schema_url(args.postgres_url)
        print(f"schema: {url}")
    added, seconds = grow(url, args.events, owners=args.owners, batch=args.batch,
                          procs=args.procs, seed=args.seed)  # fmt: skip
    rate = added / seconds if seconds else 0.0
    print(f"added {added:,} events in {seconds:.1f} s ({rate:,.0f} events/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
