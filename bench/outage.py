"""Outage: the database goes away for a while under load; the server must answer 503, not 500
nor hang, recover by itself, and every retried op must apply exactly once.

It runs ``bench/load.py``'s devices against a server on PostgreSQL, takes the database away
``--at`` seconds into the run for ``--outage`` seconds, and prints a timeline (per second: the
requests that ended in it, their statuses, latencies, and what ``/ready`` said), then the load
figures and checks (convergence, exactly-once, stock).

Two ways to take the database away:

* ``--via stop`` (the real thing): ``pg_ctlcluster … stop -m fast`` and ``start`` of the local
  cluster (needs root). Every client of that cluster loses it for those seconds; it is always
  started again, whatever happens to this script.
* ``--via proxy``: the server reaches PostgreSQL through a TCP proxy in this process, which
  cuts every connection and refuses new ones for the outage. Nobody else is disturbed, so it is
  the one to iterate with.

    .venv/bin/python bench/outage.py --via proxy --devices 50 --duration 30 --at 8 --outage 10
    .venv/bin/python bench/outage.py --via stop --workers 2 --devices 200 --duration 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import (
    GAVE_UP,
    NETWORK_ERROR,
    add_population_arguments,
    percentile,
    population_options,
    postgres_schema_url,
    print_figures,
    run_load,
    start_server,
    timeline,
)

# -- taking the database away --------------------------------------------------------------


def _cluster(action: str, *options: str) -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", *options, version, "main", action]


class StopCluster:
    """``pg_ctlcluster stop`` / ``start``: the whole local cluster goes away."""

    def down(self) -> None:
        subprocess.run(_cluster("stop", "--mode", "fast"), check=True, capture_output=True)

    def up(self) -> None:
        if subprocess.run(_cluster("status"), capture_output=True).returncode != 0:
            subprocess.run(_cluster("start"), check=True, capture_output=True)


class Proxy:
    """A TCP proxy to PostgreSQL in a thread of its own; ``down`` cuts and refuses, ``up``
    listens again."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self._call(self._listen())

    def _call(self, coroutine: object) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        if self.server is None or not self.server.is_serving():  # cut while connecting
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self.writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    async def _down(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()  # a reset, as when the server process dies
        self.writers.clear()

    def down(self) -> None:
        self._call(self._down())

    def up(self) -> None:
        if self.server is None or not self.server.is_serving():
            self._call(self._listen())

    def url(self, database_url: str) -> str:
        parts = urlsplit(database_url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) > 1 else host))


# -- watching /ready -------------------------------------------------------------------------


@dataclass
class ReadyProbe:
    """Polls ``/ready`` twice a second; keeps (seconds since start, status) pairs."""

    url: str
    start_at: float
    seen: list[tuple[float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self.stop.is_set():
                try:
                    status = http.get(f"{self.url}/ready").status_code
                except httpx.HTTPError:
                    status = NETWORK_ERROR
                self.seen.append((time.time() - self.start_at, status))
                self.stop.wait(0.5)


def _terminate_with_finally(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally (the database comes back)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--via", choices=("stop", "proxy"), default="stop")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--at", type=float, default=8.0, help="seconds into the load")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds without database")
    add_population_arguments(parser, duration=30.0, think=1.0)
    args = parser.parse_args()
    if args.via == "stop" and os.geteuid() != 0:
        parser.error("--via stop runs pg_ctlcluster: run as root, or use --via proxy")
    signal.signal(signal.SIGTERM, _terminate_with_finally)

    database_url, drop = postgres_schema_url(args.postgres_url)
    switch: StopCluster | Proxy
    if args.via == "proxy":
        upstream = urlsplit(args.postgres_url)
        switch = Proxy(upstream.hostname or "127.0.0.1", upstream.port or 5432)
        server_url = switch.url(database_url)
    else:
        switch, server_url = StopCluster(), database_url
    target = start_server("postgres", args.workers, database_url=server_url)
    target.database_url = database_url  # the checks read the database directly
    marks = Marks()
    probe: ReadyProbe | None = None

    def outage(start_at: float) -> None:
        nonlocal probe
        probe = ReadyProbe(target.url, start_at)
        threading.Thread(target=probe.run, daemon=True).start()
        time.sleep(max(0.0, start_at + args.at - time.time()))
        marks.stop = time.time() - start_at
        try:
            switch.down()
            print(f"database stopped at {marks.stop:.1f} s", flush=True)
            time.sleep(args.outage)
        finally:
            marks.start = time.time() - start_at
            switch.up()
            marks.started = time.time() - start_at
            print(f"database started at {marks.start:.1f} s (ready at {marks.started:.1f} s)",
                  flush=True)  # fmt: skip

    try:
        outcome = run_load(target, **population_options(args), during=outage)
    finally:
        switch.up()  # never leave the database down
        if probe is not None:
            probe.stop.set()
        target.stop()
        with contextlib.suppress(Exception):
            drop()

    rows = print_timeline(outcome.samples, marks, probe.seen if probe else [])
    print_figures(outcome.figures)
    statuses = Counter(outcome.samples.status)
    verdict = verdict_of(statuses, rows, marks, outcome.checks.ok)
    print(verdict)
    if args.json:
        Path(args.json).write_text(
            json.dumps({**outcome.figures, "marks_s": vars(marks), "timeline": rows}, indent=2)
        )
    return 0 if verdict.endswith("OUTAGE PASSED") else 1


@dataclass
class Marks:
    """Seconds since the load began: the stop asked, the start asked, the start returned."""

    stop: float = math.inf
    start: float = math.inf
    started: float = math.inf

    def state(self, second: int) -> str:
        """What the database was doing during (part of) this second."""
        if second + 1 <= self.stop or second >= self.started:
            return "up"
        return "down" if second < self.start else "start"


def print_timeline(
    samples: object, marks: Marks, ready: list[tuple[float, int]]
) -> list[dict[str, object]]:
    print(f"\n{'s':>3} {'db':5} {'req':>5} {'p50 ms':>8} {'max ms':>8} {'ready':>9}  statuses")
    rows = []
    for second, statuses, latencies in timeline(samples):  # type: ignore[arg-type]
        readies = sorted({s for t, s in ready if second <= t < second + 1})
        row = {
            "second": second,
            "database": marks.state(second),
            "requests": sum(statuses.values()),
            "p50_ms": round(percentile(latencies, 50), 1),
            "max_ms": round(latencies[-1], 1),
            "ready": readies,
            "statuses": {str(k or "network"): v for k, v in sorted(statuses.items())},
        }
        rows.append(row)
        print(
            f"{second:3d} {row['database']:5} {row['requests']:5d} {row['p50_ms']:8.1f} "
            f"{row['max_ms']:8.1f} {','.join(map(str, readies)):>9}  {row['statuses']}"
        )
    return rows


def verdict_of(
    statuses: Counter[int], rows: list[dict[str, object]], marks: Marks, checks_ok: bool
) -> str:
    bad = {s: n for s, n in statuses.items() if s not in (200, 503)}
    recovered = next(
        (
            row["second"]
            for row in rows
            if isinstance(row["second"], int)
            and row["second"] >= marks.start
            and set(row["statuses"]) == {"200"}  # type: ignore[arg-type]
        ),
        None,
    )
    lines = [
        f"statuses other than 200 and 503: {bad or 'none'}",
        f"503 answers: {statuses[503]}; requests given up: {statuses[GAVE_UP]}",
        f"first second with only 200s after the database was started again "
        f"(at {marks.start:.1f} s, ready at {marks.started:.1f} s): {recovered}",
    ]
    passed = not bad and recovered is not None and checks_ok
    lines.append("OUTAGE PASSED" if passed else "OUTAGE FAILED")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
