"""CPU cost of ``rebuild`` per 100,000 events, on a log made by ``bench/rebuild.py``'s generator.

Wall-clock rates swing with whatever else runs on the machine; the CPU time of this process (all
its threads: feed reader, projector, writer) does not, so it is the figure to compare changes
with. Each round rebuilds into empty read tables (the read tables are emptied first), then once
with the tables already equal to the log.

    .venv/bin/python bench/rebuild_cpu.py [--events 100000] [--rounds 3] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.append import load_average
from bench.rebuild import fresh, generate
from event_store import EventStore
from projections import rebuild as rebuild_module
from projections.rebuild import rebuild
from projections.rows import TABLES

T = TypeVar("T")

PHASES: dict[str, float] = {}
"""Wall seconds of the current run's phases: the fill, and the merges of the swap."""


def _timed_phase(name: str, function: Callable[..., T]) -> Callable[..., T]:
    def timed(*args: Any, **kwargs: Any) -> T:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            PHASES[name] = PHASES.get(name, 0.0) + time.perf_counter() - started

    return timed


rebuild_module.fill = _timed_phase("fill", rebuild_module.fill)
rebuild_module.merge = _timed_phase("merge", rebuild_module.merge)


def empty_read_tables(store: EventStore) -> None:
    with store.sql() as sql:
        for table in TABLES.values():
            sql.execute(f"DELETE FROM {table}")


def postgres_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL process on this machine still running (the
    server's own, and others' if the machine is shared): what the database did for a run.
    Backends that ended during the run are not counted; the store's pool keeps its own."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)
        except OSError:
            continue
        if fields[0].endswith("(postgres"):
            values = fields[1].split()
            total += int(values[11]) + int(values[12])  # utime, stime
    return total / tick


def measure(label: str, events: int, run: Callable[[], object]) -> tuple[float, float]:
    PHASES.clear()
    cpu, wall, database = time.process_time(), time.perf_counter(), postgres_cpu()
    run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    database = postgres_cpu() - database
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in PHASES.items())
    print(
        f"  {label:28} {cpu / events * 100_000:5.2f} CPU-s/100k events "
        f"(PostgreSQL {database / events * 100_000:4.2f}) "
        f"{events / wall:10,.0f} events/s (wall {wall:.1f} s: {phases}; CPU {cpu / wall:.0%})",
        flush=True,
    )
    return cpu, wall


def profiled(profiler: cProfile.Profile, store: EventStore) -> object:
    """``rebuild`` under ``profiler`` (its main thread only: not the reader's or the writer's)."""
    return profiler.runcall(rebuild, store)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="postgres")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--owners", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of the first empty-table rebuild")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; load average {load_average()}")  # fmt: skip
    with fresh(args.backend, "/tmp", f"rebuild_cpu_{os.getpid()}") as store:
        events = generate(store, args.events, args.owners)
        print(f"{args.backend}: {events:,} events, {args.owners} owners")
        rebuild(store)  # warm up: connections, caches, the tables' pages
        for round_ in range(args.rounds):
            empty_read_tables(store)
            if args.profile and round_ == 0:
                profiler = cProfile.Profile()
                measure(
                    "rebuild, empty (profiled)",
                    events,
                    functools.partial(profiled, profiler, store),
                )
                profiler.dump_stats(args.profile)
            else:
                measure("rebuild into empty tables", events, lambda: rebuild(store))
            measure("rebuild, live equal to log", events, lambda: rebuild(store))
    if args.backend == "sqlite":
        os.remove(f"/tmp/rebuild_cpu_{os.getpid()}.db")
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
