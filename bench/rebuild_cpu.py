"""CPU cost of ``rebuild`` per 100,000 events, on a log made by ``bench/rebuild.py``'s generator.

Wall-clock rates swing with whatever else runs on the machine; the CPU time of this process (all
its threads: feed reader, projector, writer; and its fill processes) swings less, so it is the
figure to compare changes with. PostgreSQL's CPU time is that of every ``postgres`` process on
the machine (others' work included, if any), and that of the backends serving this process's
own connections ("ours": exact, but without the fill processes' backends). Each round rebuilds
into empty read tables (the read tables are emptied first), then once with the tables already
equal to the log, for each number of fill processes asked (alternated, for A/B on a busy
machine).

    .venv/bin/python bench/rebuild_cpu.py [--events 100000] [--rounds 3] [--workers 1,2]
        [--profile out.prof]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import os
import re
import resource
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.append import load_average, machine
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
    # TRUNCATE on PostgreSQL: a DELETE would leave every row dead, for the autovacuum to clean
    # up while the next rebuild runs, and the merge to step over.
    verb = "TRUNCATE" if store.backend == "postgres" else "DELETE FROM"
    with store.sql() as sql:
        for table in TABLES.values():
            sql.execute(f"{verb} {table}")


def postgres_cpu() -> tuple[float, float]:
    """CPU seconds used so far by PostgreSQL processes still running: (all of them, those
    serving this process's connections). The first includes others' work if the machine is
    shared; the second is exact but misses the fill processes' backends (gone with them)."""
    tick = os.sysconf("SC_CLK_TCK")
    mine = _own_ports()
    everyone = own = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)
            with open(f"/proc/{pid}/cmdline") as command:
                line = command.read()
        except OSError:
            continue
        if fields[0].endswith("(postgres"):
            values = fields[1].split()
            used = int(values[11]) + int(values[12])  # utime, stime
            everyone += used
            port = re.search(r"\((\d+)\)", line)  # "postgres: … 127.0.0.1(45304) idle"
            if port and int(port.group(1)) in mine:
                own += used
    return everyone / tick, own / tick


def _own_ports() -> set[int]:
    """Local TCP ports of this process's sockets."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                parts = line.split()
                if parts[9] in inodes:
                    ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def python_cpu() -> float:
    """CPU seconds of this process and of its children that ended (the fill processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def measure(label: str, events: int, run: Callable[[], object]) -> tuple[float, float]:
    PHASES.clear()
    cpu, wall, (database, own) = python_cpu(), time.perf_counter(), postgres_cpu()
    run()
    cpu, wall = python_cpu() - cpu, time.perf_counter() - wall
    after, own_after = postgres_cpu()
    database, own = after - database, own_after - own
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in PHASES.items())
    print(
        f"  {label:30} {cpu / events * 100_000:5.2f} CPU-s/100k events "
        f"(PostgreSQL {database / events * 100_000:4.2f}, ours {own / events * 100_000:4.2f}) "
        f"{events / wall:8,.0f} events/s (wall {wall:.1f} s: {phases})",
        flush=True,
    )
    return cpu, wall


def profiled(profiler: cProfile.Profile, store: EventStore) -> object:
    """``rebuild`` under ``profiler`` (its main thread only: not the reader's or the writer's)."""
    return profiler.runcall(rebuild, store, workers=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="postgres")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--owners", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workers",
        default="auto",
        help="fill processes, or a list to alternate in each round (1,2); auto: rebuild's choice",
    )
    parser.add_argument("--profile", help="write a cProfile of the first empty-table rebuild")
    args = parser.parse_args()
    choices = [None if w == "auto" else int(w) for w in args.workers.split(",")]
    print(f"machine: {machine()}; load average {load_average()}")
    with fresh(args.backend, "/tmp", f"rebuild_cpu_{os.getpid()}") as store:
        events = generate(store, args.events, args.owners)
        print(f"{args.backend}: {events:,} events, {args.owners} owners")
        rebuild(store)  # warm up: connections, caches, the tables' pages
        for round_ in range(args.rounds):
            for workers in choices:
                run = functools.partial(rebuild, store, workers=workers)
                named = f"{workers or 'auto'} worker(s)"
                empty_read_tables(store)
                if args.profile and round_ == 0:
                    profiler = cProfile.Profile()
                    run = functools.partial(profiled, profiler, store)
                    measure("rebuild, empty (profiled)", events, run)
                    profiler.dump_stats(args.profile)
                else:
                    measure(f"into empty tables, {named}", events, run)
                measure(f"live equal to log, {named}", events, run)
    if args.backend == "sqlite":
        os.remove(f"/tmp/rebuild_cpu_{os.getpid()}.db")
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
