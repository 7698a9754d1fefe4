"""Two versions of the code pushing the same batches, interleaved: the ratio of their times.

On a shared machine the time of one push can move by a third within minutes, so two versions
measured one after the other tell little. This runs ``bench/push_cpu.py``'s work (the push
endpoint's, in process, batches of 500 from ``bench/sync.py``'s device, one user, a fresh
store each) in two worker processes, one per checkout, and alternates them every ``--per``
batches, ``--rounds`` times (which one goes first alternates too). Both push the very same
sequence of batches. It prints each side's median wall and CPU time per batch and the median
of the B/A ratios of neighbouring runs, with their quartiles. On PostgreSQL it also prints the
database's CPU time per batch: that of every ``postgres`` process of this machine (read from
``/proc``) over each turn, so the database must be local and otherwise idle.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/push_ab.py --a /tmp/before [--b .] [--rounds 100] [--per 2]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid


def _worker(checkout: str, backend: str, total: int) -> None:
    """Push batches on command (a count on stdin), answer the mean wall and CPU ms of each."""
    sys.path.insert(0, checkout)
    from bench.push_cpu import handle
    from bench.rebuild import fresh
    from bench.sync import Device
    from sync_server.app import tune_collector
    from sync_server.push import Origin

    device = Device(random.Random(7))
    warm = [device.batch(100)[0] for _ in range(4)]
    bodies = iter([device.batch(500)[0] for _ in range(total)])
    with tempfile.TemporaryDirectory() as tmp, fresh(backend, tmp, "ab") as store:
        origin = Origin(uuid.uuid4(), device.client_id)
        for body in warm:
            handle(store, body, origin)
        tune_collector()
        print("ready", flush=True)
        for line in sys.stdin:
            count = int(line)
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(count):
                handle(store, next(bodies), origin)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"{wall / count * 1000} {cpu / count * 1000}", flush=True)


def _start(checkout: str, backend: str, total: int) -> subprocess.Popen[str]:
    command = [sys.executable, os.path.abspath(__file__), "--worker", checkout,
               "--backend", backend, "--total", str(total)]  # fmt: skip
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=checkout
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the worker for {checkout} did not start")
    return process


def _run(process: subprocess.Popen[str], count: int) -> tuple[float, float]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(f"{count}\n")
    process.stdin.flush()
    wall, cpu = process.stdout.readline().split()
    return float(wall), float(cpu)


def _quartiles(values: list[float]) -> str:
    q1, median, q3 = statistics.quantiles(values, n=4)
    return f"{median:.3f} (quartiles {q1:.3f}-{q3:.3f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", help="checkout A (e.g. a git worktree); required")
    parser.add_argument("--b", default=os.path.join(os.path.dirname(__file__), ".."))
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--per", type=int, default=2, help="batches per turn")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.backend, args.total)
        return 0
    if not args.a:
        parser.error("--a is required")
    # Here, not at the top: a worker must import the ``bench`` package of its own checkout.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from bench.proc_cpu import postgres_seconds

    total = args.rounds * args.per
    sides = {
        name: _start(os.path.abspath(path), args.backend, total)
        for name, path in (("A", args.a), ("B", args.b))
    }
    times: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    database: dict[str, list[float]] = {"A": [], "B": []}
    for round_ in range(args.rounds):
        for name in ("A", "B") if round_ % 2 == 0 else ("B", "A"):
            before = postgres_seconds() or 0.0
            times[name].append(_run(sides[name], args.per))
            database[name].append(((postgres_seconds() or 0.0) - before) / args.per * 1000)
    for process in sides.values():
        assert process.stdin is not None
        process.stdin.close()
        process.wait()
    for name in ("A", "B"):
        walls, cpus = zip(*times[name], strict=True)
        print(f"{name}: wall {statistics.median(walls):.1f} ms, cpu {statistics.median(cpus):.1f} "
              f"ms per batch of 500 (median of {args.rounds} turns)")  # fmt: skip
        if args.backend == "postgres" and any(database[name]):
            print(f"{name}: database cpu {statistics.mean(database[name]):.1f} ms per batch "
                  f"(mean of {args.rounds} turns; /proc counts in ticks)")  # fmt: skip
    pairs = list(zip(times["A"], times["B"], strict=True))
    print(f"B/A wall: {_quartiles([b[0] / a[0] for a, b in pairs])}")
    print(f"B/A cpu:  {_quartiles([b[1] / a[1] for a, b in pairs])}")
    if args.backend == "postgres" and statistics.mean(database["A"]) > 0:
        ratio = statistics.mean(database["B"]) / statistics.mean(database["A"])
        print(f"B/A database cpu (ratio of means): {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
