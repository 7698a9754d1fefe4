"""Where a push's time goes, in process: the server's work for one batch without HTTP.

Each batch goes through what ``POST /v1/sync/push`` does between reading the body and writing
the answer (decode and convert the envelope, ``push``, encode the results), against a fresh
store, one user, batches from ``bench/sync.py``'s device. It prints, per batch, the median wall
time and the median CPU time of this process (``time.process_time``: the Python side; the
difference is mostly waiting on the database), and the ops/s each would allow. ``--profile``
prints the ``TOP`` (35) functions that take the most CPU (cProfile, sorted by own time, or by
the column ``SORT`` names); with ``CALLERS=<regex>`` also who calls the functions it matches
(``CALLERS='__hash__'``: where the UUIDs are hashed).

    .venv/bin/python bench/push_cpu.py [--backend postgres|sqlite] [--batch 500] [--batches 20]
        [--profile] [--default-gc]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import msgspec

from bench.append import load_average, machine
from bench.rebuild import fresh
from bench.sync import Device
from event_store import EventStore
from schemas.ops import PushRequest
from schemas.results import PushResponse
from sync_server.app import tune_collector
from sync_server.push import Origin, push

_encode = msgspec.json.Encoder().encode


def handle(store: EventStore, body: bytes, origin: Origin) -> bytes:
    """What the push endpoint does with a body (``request_body.read_json`` and the route)."""
    request = msgspec.convert(msgspec.json.decode(body), PushRequest, strict=True)
    pushed = push(store, request, origin)
    if any(result.status != "applied" for result in pushed.results):
        raise RuntimeError(f"not applied: {pushed.results[:3]}")
    return _encode(PushResponse(pushed.results, "cursor"))


class _CollectorClock:
    """Time spent in the cyclic garbage collector (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.runs = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.runs += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--default-gc", action="store_true", help="leave the garbage collector as Python sets it"
    )
    args = parser.parse_args()

    device = Device(random.Random(7))
    warm = [device.batch(100)[0] for _ in range(4)]
    bodies = [device.batch(args.batch)[0] for _ in range(args.batches)]
    print(f"machine: {machine()}; load average {load_average()}")
    with tempfile.TemporaryDirectory() as tmp, fresh(args.backend, tmp, "push") as store:
        origin = Origin(uuid.uuid4(), device.client_id)
        for body in warm:
            handle(store, body, origin)
        if not args.default_gc:
            tune_collector()  # as a server does once started
        collecting = _CollectorClock()
        gc.callbacks.append(collecting)
        profiler = cProfile.Profile() if args.profile else None
        walls, cpus = [], []
        for body in bodies:
            if profiler:
                profiler.enable()
            wall, cpu = time.perf_counter(), time.process_time()
            handle(store, body, origin)
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - wall)
            if profiler:
                profiler.disable()
    wall, cpu = statistics.median(walls) * 1000, statistics.median(cpus) * 1000
    print(f"{args.backend}, {args.batches} batches of {args.batch} ops, median per batch:")
    print(f"  wall {wall:7.1f} ms  ({args.batch / wall * 1000:8,.0f} ops/s)")
    print(f"  cpu  {cpu:7.1f} ms  ({args.batch / cpu * 1000:8,.0f} ops/s if Python were all)")
    print(f"  garbage collection {collecting.seconds / len(bodies) * 1000:.2f} ms a batch "
          f"(mean), {collecting.runs / len(bodies):.1f} collections a batch")  # fmt: skip
    if profiler:
        stats = pstats.Stats(profiler).sort_stats(os.environ.get("SORT", "tottime"))
        stats.print_stats(int(os.environ.get("TOP", "35")))
        if os.environ.get("CALLERS"):
            pstats.Stats(profiler).print_callers(os.environ["CALLERS"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
