"""Rebuild, verify, export and import rates over a generated log, on both backends.

The log is made of the events real pushes write (the data of each event type is taken from a
template batch pushed through ``push``), copied for many owners and entities and appended with
``EventStore.append`` in transactions of a few hundred events. Then it measures:

* reading the whole global feed (the yardstick: a rebuild cannot be faster than this);
* ``rebuild`` into empty read tables (every row written) and again when they already equal the
  log (the usual case: nothing to write);
* ``verify`` (rebuild aside, compare, check every hash chain);
* ``export`` to an NDJSON file and ``import`` of that file into an empty store.

    .venv/bin/python bench/rebuild.py [--backends sqlite,postgres] [--events 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


from bench.append import load_average, machine, postgres_schema
from event_store import EventStore, NewEvent, StreamId, open_store, transfer
from event_store.integrity import verify_chains
from projections.rebuild import rebuild, verify
from schemas.ops import Op, PushRequest
from sync_server.push import Origin, push
from sync_server.services import migrate_all

T = TypeVar("T")

SHOW, COST, PRODUCT, WORKOUT = (uuid.UUID(int=i) for i in range(1, 5))
TEMPLATE = [
    ("show", SHOW, "create", {"date": "2026-12-01", "city": "Madrid", "country": "ES",
                              "fee": "12000.00", "mgmt_pct": "10", "wht_pct": "15"}),
    ("show", SHOW, "update", {"fee": "12500.00"}),
    ("cost", COST, "create", {"show_id": str(SHOW), "type": "sound", "amount": "500.00"}),
    ("cost", COST, "update", {"amount": "650.00"}),
    ("product", PRODUCT, "create", {"sku": "TSHIRT-M", "name": "T-shirt", "quantity": 500}),
    ("product", PRODUCT, "record_sale",
     {"quantity": 2, "unit_price": "20.00", "sold_at": "2026-11-20T18:04:00Z"}),
    ("product", PRODUCT, "record_sale",
     {"quantity": 1, "unit_price": "20.00", "sold_at": "2026-11-21T10:00:00Z"}),
    ("product", PRODUCT, "adjust_stock", {"delta": 10, "reason": "count"}),
    ("workout", WORKOUT, "create", {"date": "2026-11-20", "name": "Legs", "exercises": [
        {"name": "Squat", "sets": [{"reps": 5, "weight": "100", "unit": "kg"}]}]}),
    ("workout", WORKOUT, "log_set",
     {"exercise": "Squat", "reps": 5, "weight": "105", "unit": "kg"}),
]  # fmt: skip


def template_events(store: EventStore) -> list[tuple[str, str, dict[str, Any]]]:
    """(stream type, event type, data) of what pushing the template writes, ids as above."""
    owner = uuid.uuid4()
    ops = [
        Op(op_id=uuid.uuid4(), entity=e, id=i, action=a, data=d,
           base_version=None if a == "create" else 1)
        for e, i, a, d in TEMPLATE
    ]  # fmt: skip
    pushed = push(store, PushRequest(uuid.uuid4(), ops), Origin(owner, uuid.uuid4()))
    assert all(r.status == "applied" for r in pushed.results), pushed.results
    return [(e.stream.type, e.type, e.data) for e in pushed.events]


def generate(store: EventStore, total: int, owners: int) -> int:
    templates = template_events(store)
    people = [uuid.uuid4() for _ in range(owners)]
    written = len(templates)
    unit = 0
    while written < total:
        owner = people[unit % owners]
        events = []
        for _ in range(max(1, 500 // len(templates))):
            ids = {old: uuid.uuid4() for old in (SHOW, COST, PRODUCT, WORKOUT)}
            for stream_type, type_, data in templates:
                stream_id = ids[{"show": SHOW, "cost": COST, "product": PRODUCT,
                                 "workout": WORKOUT}[stream_type]]  # fmt: skip
                if "show_id" in data:
                    data = {**data, "show_id": str(ids[SHOW])}
                events.append(NewEvent(StreamId(stream_type, stream_id), type_, data))
        store.append(owner, events)
        written += len(events)
        unit += 1
    return written


@contextlib.contextmanager
def fresh(backend: str, tmp: str, name: str) -> Iterator[EventStore]:
    """A new, migrated store: a SQLite file in ``tmp``, or a PostgreSQL schema of its own."""
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            store = open_store(f"sqlite:///{tmp}/{name}.db")
        else:
            store = open_store(stack.enter_context(postgres_schema()), pool_min=1, pool_max=4)
        stack.callback(store.close)
        migrate_all(store)
        yield store


def timed(label: str, events: int, run: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    print(f"  {label:34} {seconds:8.1f} s {events / seconds:12,.0f} events/s", flush=True)
    return result


def bench(backend: str, total: int, owners: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, fresh(backend, tmp, "source") as store:
        started = time.perf_counter()
        events = generate(store, total, owners)
        print(f"{backend}: {events:,} events, {owners} owners "
              f"(generated in {time.perf_counter() - started:.0f} s)")  # fmt: skip
        timed("read the global feed (yardstick)", events, lambda: sum(1 for _ in store.iter_all()))
        timed("rebuild into empty tables", events, lambda: rebuild(store))
        timed("rebuild, live equal to the log", events, lambda: rebuild(store))
        timed("verify: read tables", events, lambda: verify(store))
        timed("verify: hash chains", events, lambda: list(verify_chains(store)))
        path = os.path.join(tmp, "log.ndjson")
        with open(path, "wb") as out:
            timed("export", events, lambda: transfer.export(store, out))
        print(f"  export file: {os.path.getsize(path) / 1e6:,.0f} MB")
        with fresh(backend, tmp, "copy") as copy, open(path, "rb") as source:
            timed("import (the log, no read tables)", events,
                  lambda: transfer.import_log(copy, source))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--owners", type=int, default=1000)
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {load_average()}")
    for backend in args.backends.split(","):
        bench(backend, args.events, args.owners)
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
