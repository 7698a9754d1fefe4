"""Push latency as one user's history grows: batches of 500 ops, one after the other, for one
user, over HTTP against a real ``sync-server serve`` (PostgreSQL by default).

A push's lookups are bounded by its batch, so the time of a batch must not grow with the number
of ops the user pushed before it. It did once: the batch's idempotency keys were looked up with
``key = ANY(…)``, which PostgreSQL planned as a scan of every key the user ever had whenever its
statistics made owners look small. Before the batches, as ``bench/sync.py`` does, another user
makes 300 single-op pushes: that is what gave the planner those statistics. On the code before
the fix (08d3011) the median of the first 6 batches was 94 ms and of the last 6 305 ms; after
it, 70 and 103 ms.

    .venv/bin/python bench/push_history.py [--backend postgres|sqlite] [--batches 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.sync import JSON, _Pusher, check_push, measure_push, running_server

BATCH = 500


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--no-warm-up", action="store_true", help="skip the single-op pushes")
    args = parser.parse_args()
    with running_server(args.backend) as server:
        if not args.no_warm_up:
            measure_push(server, 1, 1)
        pusher = _Pusher(server, BATCH, seed=7)
        pusher.prepare(BATCH * args.batches)
        times = []
        for body, expected in pusher.bodies:
            started = time.perf_counter()
            response = pusher.client.post("/v1/sync/push", content=body, headers=JSON)
            times.append((time.perf_counter() - started) * 1000)
            check_push(response, expected)
        pusher.client.close()
    print(f"{args.backend}: {args.batches} batches of {BATCH} ops for one user, ms each:")
    print("  " + " ".join(f"{t:.0f}" for t in times))
    fifth = max(1, len(times) // 5)
    first, last = statistics.median(times[:fifth]), statistics.median(times[-fifth:])
    print(f"  median of the first {fifth}: {first:.0f} ms, of the last {fifth}: {last:.0f} ms "
          f"(x{last / first:.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
