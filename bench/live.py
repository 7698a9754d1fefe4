"""Live updates: how soon another device has a change, with many event streams open.

For each backend it starts the server (on PostgreSQL two processes on one fresh schema: pushes
go to the first, every stream is held by the second, so each poke crosses processes through
LISTEN/NOTIFY; on SQLite one process), signs up ``--users`` users with ``--streams`` reader
devices among them, and opens one ``GET /v1/sync/stream`` per reader (async httpx, one
connection each). Then a writer device pushes ``--pushes`` single-op batches, one at a time,
each to a user picked at random. Every reader of that user, on its poke, pulls from its own
cursor; the change has *arrived* when that pull returns it.

It prints p50/p95/p99 of, per (change, reader device):

* ``sent→has``: from the moment the push request is sent until the reader's pull returned the
  change (an upper bound of "push committed → other device has the change");
* ``ack→has``: from the push's answer until then (a lower bound; negative when the other
  device had it before the writer had its answer);
* ``sent→poke``: from the push request until the poke reached the reader.

    .venv/bin/python bench/live.py [--backends postgres,sqlite] [--streams 1000] [--users 250]
                                   [--pushes 300] [--interval 0.02]

The client side (every stream, every pull) runs in this one Python process, on the same
machine as the server: its own scheduling delays are part of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from sse import Parser  # noqa: E402  (the tests' event-stream reader)

from bench.append import load_average, postgres_schema  # noqa: E402
from bench.sync import SERVER_ENV, free_port  # noqa: E402

PASSWORD = "live bench password"


# -- servers ------------------------------------------------------------------------------------


@dataclass
class Servers:
    push_url: str
    stream_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


def _serve(env: dict[str, str], log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    command = [sys.executable, "-m", "sync_server", "serve", "--port", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited; see {log}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return url, process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not become ready; see {log}")


@contextmanager
def running(backend: str, work: Path, streams: int) -> Iterator[Servers]:
    """One server process on SQLite; two on one PostgreSQL schema (dropped afterwards)."""
    env = {
        **os.environ,
        **SERVER_ENV,
        "SYNC_DATA_DIR": str(work / "data"),
        "SYNC_LOG_LEVEL": "warning",
        "SYNC_LIVE_MAX_STREAMS_PER_USER": str(streams),
    }
    env.pop("DATABASE_URL", None)
    log = work / f"server-{backend}.log"
    with postgres_schema() if backend == "postgres" else nullcontext(None) as database_url:
        if database_url:
            env["DATABASE_URL"] = database_url
        servers = Servers("", "")
        try:
            urls = []
            for _ in range(2 if database_url else 1):
                url, process = _serve(env, log)
                servers.processes.append(process)
                urls.append(url)
            servers.push_url, servers.stream_url = urls[0], urls[-1]
            yield servers
        finally:
            for process in servers.processes:
                process.terminate()
            for process in servers.processes:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()


# -- devices ------------------------------------------------------------------------------------


@dataclass
class Reader:
    user: int
    token: str
    cursor: str | None = None
    opened: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Sample:
    sent: float
    acked: float = 0.0
    poked: dict[int, float] = field(default_factory=dict)  # reader index -> poke arrival
    had: dict[int, float] = field(default_factory=dict)  # reader index -> pull returned it


async def sign_up(
    push: httpx.AsyncClient, users: int, readers: int
) -> tuple[list[str], list[Reader]]:
    gate = asyncio.Semaphore(16)

    async def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            response = await push.post(path, json=body)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    async def user(index: int) -> tuple[str, list[Reader]]:
        email = f"live-{uuid.uuid4().hex[:12]}@example.com"
        writer = await call("/v1/auth/register", {"email": email, "password": PASSWORD})
        mine = readers // users + (1 if index < readers % users else 0)
        logins = [
            call("/v1/auth/login", {"email": email, "password": PASSWORD}) for _ in range(mine)
        ]
        return writer["access_token"], [
            Reader(index, signed["access_token"]) for signed in await asyncio.gather(*logins)
        ]

    made = await asyncio.gather(*(user(i) for i in range(users)))
    return [writer for writer, _ in made], [r for _, rs in made for r in rs]


async def follow(
    streams: httpx.AsyncClient,
    pulls: httpx.AsyncClient,
    index: int,
    reader: Reader,
    samples: dict[str, Sample],
    opening: asyncio.Semaphore,
) -> None:
    """Hold one stream; on each poke pull from the reader's own cursor until up to date."""
    headers = {"Authorization": f"Bearer {reader.token}"}
    await opening.acquire()  # a few at a time: a thousand waiting requests slow httpx down
    page = (await pulls.get("/v1/sync/pull", headers=headers)).json()
    reader.cursor = page["cursor"]
    parser = Parser()
    async with streams.stream(
        "GET", "/v1/sync/stream", params={"since": reader.cursor}, headers=headers
    ) as response:
        opening.release()
        response.raise_for_status()
        async for line in response.aiter_lines():
            message = parser.feed(line)
            if message is None:
                continue
            if message.event == ":" and message.data == "open":
                reader.opened.set()
            if message.event != "poke":
                continue
            poked = time.perf_counter()
            more = True
            while more:
                answer = await pulls.get(
                    "/v1/sync/pull", params={"since": reader.cursor}, headers=headers
                )
                page = answer.json()
                now = time.perf_counter()
                for change in page["changes"]:
                    sample = samples.get(change["id"])
                    if sample is not None:
                        sample.poked.setdefault(index, poked)
                        sample.had.setdefault(index, now)
                reader.cursor, more = page["cursor"], page["has_more"]


async def push_all(
    client: httpx.AsyncClient,
    writers: list[str],
    pushes: int,
    interval: float,
    samples: dict[str, Sample],
    rng: random.Random,
) -> list[int]:
    """Push ``pushes`` single-op batches one after the other; return each one's user."""
    users: list[int] = []
    client_id = str(uuid.uuid4())
    for _ in range(pushes):
        user = rng.randrange(len(writers))
        show_id = str(uuid.uuid4())
        body = {
            "client_id": client_id,
            "ops": [
                {
                    "op_id": str(uuid.uuid4()),
                    "entity": "show",
                    "id": show_id,
                    "action": "create",
                    "data": {"date": "2026-12-01", "city": "Madrid", "country": "ES",
                             "fee": "12000.00"},
                }
            ],
        }  # fmt: skip
        sample = samples[show_id] = Sample(time.perf_counter())
        response = await client.post(
            "/v1/sync/push", json=body, headers={"Authorization": f"Bearer {writers[user]}"}
        )
        sample.acked = time.perf_counter()
        assert response.json()["results"][0]["status"] == "applied", response.text
        users.append(user)
        await asyncio.sleep(interval)
    return users


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    return f"p50 {at(50):7.1f} ms   p95 {at(95):7.1f} ms   p99 {at(99):7.1f} ms"


async def measure(servers: Servers, args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    # Streams in a pool of their own: httpx looks through every connection of its pool for each
    # request, so pulls sharing the pool of a thousand streams would pay for all of them.
    many = httpx.Limits(max_connections=args.streams + 10, max_keepalive_connections=None)
    timeout = httpx.Timeout(60.0)
    async with (
        httpx.AsyncClient(base_url=servers.push_url, timeout=timeout) as push,
        httpx.AsyncClient(base_url=servers.stream_url, timeout=timeout, limits=many) as held,
        httpx.AsyncClient(base_url=servers.stream_url, timeout=timeout) as pulls,
    ):
        started = time.perf_counter()
        writers, readers = await sign_up(push, args.users, args.streams)
        print(f"  {len(writers)} users, {len(readers)} reader devices signed in "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        samples: dict[str, Sample] = {}
        started = time.perf_counter()
        opening = asyncio.Semaphore(50)
        following = [
            asyncio.create_task(follow(held, pulls, i, reader, samples, opening))
            for i, reader in enumerate(readers)
        ]
        opening = asyncio.gather(*(reader.opened.wait() for reader in readers))
        done, _ = await asyncio.wait([opening, *following], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a stream that failed to open raises here
        print(f"  {len(readers)} streams open in {time.perf_counter() - started:.1f} s")
        cpu_before = [cpu_seconds(p.pid) for p in servers.processes], time.process_time()
        pushing = time.perf_counter()
        users = await push_all(push, writers, args.pushes, args.interval, samples, rng)
        expected = {
            show_id: [i for i, r in enumerate(readers) if r.user == user]
            for show_id, user in zip(samples, users, strict=True)
        }
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
            len(samples[s].had) < len(wanted) for s, wanted in expected.items()
        ):
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - pushing
        server_cpu = [
            cpu_seconds(p.pid) - before
            for p, before in zip(servers.processes, cpu_before[0], strict=True)
        ]
        bench_cpu = time.process_time() - cpu_before[1]
        for task in following:
            task.cancel()
        await asyncio.gather(*following, return_exceptions=True)

    sent_has, ack_has, sent_poke, poke_has = [], [], [], []
    missing = 0
    for show_id, wanted in expected.items():
        sample = samples[show_id]
        for reader in wanted:
            if reader not in sample.had:
                missing += 1
                continue
            sent_has.append(sample.had[reader] - sample.sent)
            ack_has.append(sample.had[reader] - sample.acked)
            sent_poke.append(sample.poked[reader] - sample.sent)
            poke_has.append(sample.had[reader] - sample.poked[reader])
    push_rtt = [s.acked - s.sent for s in samples.values()]
    print(f"  {len(sent_has)} deliveries of {args.pushes} pushes, {missing} missing")
    print(f"  sent→has   {percentiles(sent_has)}")
    print(f"  ack→has    {percentiles(ack_has)}")
    print(f"  sent→poke  {percentiles(sent_poke)}")
    print(f"  poke→has   {percentiles(poke_has)}  (the pull after the poke)")
    print(f"  push round trip (for scale)  {percentiles(push_rtt)}")
    cpu = " + ".join(f"{c:.1f}" for c in server_cpu)
    print(
        f"  during the {elapsed:.1f} s of pushes: server CPU {cpu} s, bench CPU {bench_cpu:.1f} s, "
        f"load average {load_average()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="postgres,sqlite")
    parser.add_argument("--streams", type=int, default=1000, help="open event streams")
    parser.add_argument("--users", type=int, default=250, help="users the streams belong to")
    parser.add_argument("--pushes", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.02, help="pause between pushes (s)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(
        f"live bench: {args.streams} streams over {args.users} users, {args.pushes} pushes; "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load_average()} at start"
    )
    for backend in args.backends.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"bench-live-{backend}-"))
        where = "2 processes (push → A, streams on B)" if backend == "postgres" else "1 process"
        print(f"\n{backend}: {where}")
        try:
            with running(backend, work, args.streams) as servers:
                asyncio.run(measure(servers, args))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
