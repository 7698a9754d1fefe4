"""Sync end to end: push and pull over HTTP on loopback against a real ``sync-server`` process.

For each backend it starts ``sync-server serve`` (one process, 127.0.0.1, a free port, a data
directory or PostgreSQL schema of its own, dropped afterwards), registers users over HTTP and
measures with httpx, one request at a time:

* push ops/s with batches of 1, 50 and 500 realistic ops (creates of shows, costs, products and
  workouts; updates with the right ``base_version``; sales, stock adjustments, logged sets);
  every result is checked to be ``applied`` at the version the client expects;
* the latency of a pull of a 10-change delta (another device pushed 10 updates; median, p95,
  p99 over many pulls), on a user who already has 10,000 entities;
* a 10,000-change first sync: pages of 5000 followed by cursor until ``has_more`` is false.

A pull's time runs from sending the request to having decoded the page (msgspec), as a client
needs the cursor. Client, server and database share the machine's cores.

In the same run, as the yardstick, ``bench/append.py`` measures the store's append and the raw
INSERT limit of the same database; the push table gives the ratios to them. It also gives, read
from ``/proc`` over the timed spans (``bench/proc_cpu.py``), the CPU the server process and the
local PostgreSQL used per batch and how busy the machine's cores were: on a small machine they
say which of the two a push waits for. ``--server-cpus`` and ``--database-cpus`` give each its
own cores for the run (``bench/pinning.py``).

    .venv/bin/python bench/sync.py [--backend sqlite|postgres|both] [--rounds 3] [--pulls 300]
        [--clients 2] [--batches 500] [--no-pulls] [--server-cpus 0] [--database-cpus 1]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import httpx
import msgspec
import psycopg

from bench import pinning, proc_cpu
from bench.append import (
    PG_URL,
    Measurement,
    load_average,
    machine,
    measure,
    pace,
    postgres_schema,
)
from event_store import open_store

BATCHES = (1, 50, 500)
OPS_PER_MEASUREMENT = {1: 300, 50: 5000, 500: 10000}
FIRST_SYNC_CHANGES = 10_000
PAGE = 5000
DELTA = 10
SERVER_ENV = {
    "SYNC_JWT_SECRET": "bench-secret-" + "x" * 48,
    # A bench measures sync, not password hashing: argon2 as cheap as it goes.
    "SYNC_ARGON2_MEMORY_KIB": "64",
    "SYNC_ARGON2_TIME_COST": "1",
    "SYNC_RATE_LIMIT_PER_MINUTE": "100000",
    "SYNC_RATE_LIMIT_PER_ACCOUNT_PER_MINUTE": "100000",
    "SYNC_ACCESS_TOKEN_TTL": "86400",
    "SYNC_MIGRATE_ON_START": "true",
    "SYNC_PULL_MAX_LIMIT": str(PAGE),
}

JSON = {"Content-Type": "application/json"}

_encode = msgspec.json.Encoder().encode


# -- the server ---------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    database_url: str | None
    data_dir: Path

    def count_events(self) -> int:
        """Events in the server's log, read beside it (WAL readers do not block its writer)."""
        store = open_store(self.database_url, data_dir=str(self.data_dir), pool_max=1)
        try:
            return store.count_events()
        finally:
            store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(backend: str, cpus: set[int] | None = None) -> Iterator[Server]:
    """``sync-server serve`` on a database of its own; stopped and the database dropped after.
    ``cpus``: the cores the server process may run on (all, by default)."""
    with tempfile.TemporaryDirectory() as tmp, _database(backend) as database_url:
        port = free_port()
        env = {**os.environ, **SERVER_ENV, "SYNC_DATA_DIR": f"{tmp}/data"}
        if database_url:
            env["DATABASE_URL"] = database_url
        command = [sys.executable, "-m", "sync_server", "serve", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", "1"]  # fmt: skip
        with open(f"{tmp}/server.log", "wb") as log:
            process = subprocess.Popen(
                command, env=env, stdout=log, stderr=log, preexec_fn=pinning.pin_child(cpus)
            )
        server = Server(f"http://127.0.0.1:{port}", process, database_url, Path(f"{tmp}/data"))
        try:
            _wait_ready(server, Path(f"{tmp}/server.log"))
            print(f"  server pid {process.pid} on {server.url}", flush=True)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@contextmanager
def _database(backend: str) -> Iterator[str | None]:
    if backend == "sqlite":
        yield None
    else:
        with postgres_schema() as url:
            yield url


def _wait_ready(server: Server, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after 30 s:\n{log.read_text(errors='replace')}")


def signed_in_client(server: Server) -> httpx.Client:
    """A keep-alive client of a newly registered user."""
    client = httpx.Client(base_url=server.url, timeout=60)
    response = client.post(
        "/v1/auth/register",
        json={"email": f"bench-{uuid.uuid4().hex[:12]}@example.com", "password": "x" * 16},
    )
    response.raise_for_status()
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return client


# -- a device that writes like a real one --------------------------------------------------------


@dataclass
class Entity:
    entity: str
    id: uuid.UUID
    version: int = 1
    sets: int = 0  # workouts: sets logged by log_set so far


@dataclass
class Device:
    """Generates realistic ops against a model of the user's data, and what each must answer.

    Every op is meant to apply: updates carry the version the model knows, sales never exceed
    the stock, logged sets stay within the limits. ``expected`` holds the version each op's
    result must report.
    """

    rng: random.Random
    client_id: uuid.UUID = field(default_factory=uuid.uuid4)
    entities: dict[str, list[Entity]] = field(
        default_factory=lambda: {"show": [], "cost": [], "product": [], "workout": []}
    )
    counter: int = 0

    def batch(self, size: int, kinds: tuple[str, ...] | None = None) -> tuple[bytes, list[int]]:
        """A push body of ``size`` ops and the version each op's result must carry."""
        return self._body([self.op(self._kind(kinds)) for _ in range(size)])

    def show_updates(self, size: int) -> tuple[bytes, list[int]]:
        """Updates of ``size`` different shows: a delta of exactly ``size`` changes."""
        shows = self.rng.sample(self.entities["show"], size)
        return self._body([self.op("update show", show) for show in shows])

    def _body(self, ops: list[tuple[dict[str, Any], int]]) -> tuple[bytes, list[int]]:
        body = {"client_id": self.client_id, "schema_version": 1, "ops": [op for op, _ in ops]}
        return _encode(body), [version for _, version in ops]

    def _kind(self, kinds: tuple[str, ...] | None) -> str:
        kind = self.rng.choice(kinds) if kinds else self.rng.choices(KINDS, WEIGHTS)[0]
        # What an op needs may need something in turn: an update of a cost, a cost, a show.
        while (needs := NEEDS.get(kind)) and not self.entities[needs]:
            kind = f"create {needs}"
        return kind

    def op(self, kind: str, target: Entity | None = None) -> tuple[dict[str, Any], int]:
        self.counter += 1
        n = self.counter
        action, _, entity = kind.partition(" ")
        if action == "create":
            target = Entity(entity, uuid.uuid4())
            data = self._fields(entity, n)
            self.entities[entity].append(target)
            return self._op(target, "create", data), 1
        if action == "update":
            target = target or self.rng.choice(self.entities[entity])
            data = self._change(entity, n)
            op = self._op(target, "update", data, base_version=target.version)
        else:
            target = self.rng.choice(self.entities["workout" if kind == "log_set" else "product"])
            op = self._op(target, kind, self._action(kind, target, n))
        target.version += 1
        return op, target.version

    def _op(
        self, target: Entity, action: str, data: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        return {
            "op_id": uuid.uuid4(), "entity": target.entity, "id": target.id, "action": action,
            "data": data, "client_ts": _now(), **extra,
        }  # fmt: skip

    def _fields(self, entity: str, n: int) -> dict[str, Any]:
        day = (date(2026, 1, 1) + timedelta(days=n % 365)).isoformat()
        if entity == "show":
            return {"date": day, "city": self.rng.choice(CITIES), "country": "ES",
                    "venue": "Sala Apolo", "fee": f"{8000 + n % 5000}.00", "currency": "EUR",
                    "status": "confirmed", "mgmt_agency": "Mgmt", "mgmt_pct": "15",
                    "booking_pct": "10", "wht_pct": "19"}  # fmt: skip
        if entity == "cost":
            show = self.rng.choice(self.entities["show"])
            return {"show_id": show.id, "type": self.rng.choice(COST_TYPES),
                    "amount": f"{50 + n % 900}.50", "currency": "EUR"}  # fmt: skip
        if entity == "product":
            return {"sku": f"SKU-{n}", "name": f"T-shirt {n}", "unit": "unit",
                    "quantity": 1_000_000, "reorder_point": 20}  # fmt: skip
        sets = [{"reps": 5, "weight": "100", "unit": "kg"}] * 3
        return {"date": day, "name": "Leg day", "exercises": [{"name": "Squat", "sets": sets}]}

    def _change(self, entity: str, n: int) -> dict[str, Any]:
        if entity == "show":
            return {"fee": f"{9000 + n}.00"}
        if entity == "cost":
            return {"amount": f"{60 + n}.25"}
        if entity == "product":
            return {"reorder_point": n}  # n never repeats: every update changes something
        return {"notes": f"felt good {n}"}

    def _action(self, kind: str, target: Entity, n: int) -> dict[str, Any]:
        if kind == "record_sale":
            return {"quantity": 1 + n % 3, "unit_price": "19.90", "sold_at": _now()}
        if kind == "adjust_stock":
            return {"delta": 10, "reason": "restock"}
        # 20 sets at most per exercise: a new exercise every 19 logged sets.
        target.sets += 1
        exercise = f"Lift {target.sets // 19}"
        if target.sets >= 19 * 49:  # close to 50 exercises: move to a workout of its own
            self.entities["workout"].remove(target)
        return {"exercise": exercise, "reps": 8, "weight": "60.5", "unit": "kg"}


# (what, weight): a touring artist's and a shop's day, more edits and sales than creates.
MIX = (
    ("create show", 8), ("create cost", 12), ("create product", 4), ("create workout", 4),
    ("update show", 20), ("update cost", 6), ("update product", 5), ("update workout", 5),
    ("record_sale", 22), ("adjust_stock", 6), ("log_set", 8),
)  # fmt: skip
KINDS, WEIGHTS = (tuple(column) for column in zip(*MIX, strict=True))
NEEDS = {
    "create cost": "show", "update show": "show", "update cost": "cost",
    "update product": "product", "update workout": "workout", "record_sale": "product",
    "adjust_stock": "product", "log_set": "workout",
}  # fmt: skip
"""The entity an op of each kind needs to exist first (a cost is on a show…)."""
CREATES = ("create show", "create cost", "create product", "create workout")
CITIES = ("Madrid", "Barcelona", "Valencia", "Sevilla", "Bilbao", "Zaragoza")
COST_TYPES = ("sound", "light", "transport", "hotel", "catering")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_push(response: httpx.Response, expected: list[int]) -> None:
    """Every op applied, at the version the device expects: the bench measures real work."""
    if response.status_code != 200:
        raise RuntimeError(f"push answered {response.status_code}: {response.text[:500]}")
    results = msgspec.json.decode(response.content)["results"]
    for result, version in zip(results, expected, strict=True):
        if result["status"] != "applied" or result.get("version") != version:
            raise RuntimeError(f"an op was not applied as expected: {result} (want v{version})")


# -- measurements --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushFigure:
    batch: int
    ops: int
    ops_per_s: float
    events_per_op: float
    server_ms: float | None = None
    """CPU of the server process per batch, over every round (``bench/proc_cpu.py``)."""
    database_ms: float | None = None
    """CPU of the local PostgreSQL per batch (None on SQLite: it runs inside the server)."""
    busy: float | None = None
    """Share of the machine's cores busy while the rounds ran."""
    pace_ms: float = 0.0
    """``bench/append.py``'s ``pace`` just before the rounds (median): the machine's minute."""


def measure_push(server: Server, batch: int, rounds: int, clients: int = 1) -> PushFigure:
    """Push ops/s with ``clients`` users pushing at once, each one request at a time; and what
    the server process, the database and the machine used while they pushed."""
    pushers = [_Pusher(server, batch, seed) for seed in range(clients)]
    total = OPS_PER_MEASUREMENT[batch]
    rates, events_before, pushed = [], server.count_events(), 0
    usage = _Usage(server)
    paces = []
    for _ in range(rounds):
        for pusher in pushers:
            pusher.prepare(total)
        paces.append(pace())
        threads = [threading.Thread(target=pusher.run) for pusher in pushers]
        usage.start()
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rates.append(total * clients / (time.perf_counter() - started))
        usage.stop()
        for pusher in pushers:
            pusher.check()
        pushed += total * clients
    events = server.count_events() - events_before
    for pusher in pushers:
        pusher.client.close()
    batches = pushed / batch
    return PushFigure(
        batch,
        total * clients,
        statistics.median(rates),
        events / pushed,
        None if usage.server is None else usage.server / batches * 1000,
        None if usage.database is None else usage.database / batches * 1000,
        usage.busy(),
        statistics.median(paces),
    )


class _Usage:
    """CPU seconds the server process and the database used over the timed spans only (not
    while the next round's bodies are generated), and how busy the machine was meanwhile."""

    def __init__(self, server: Server) -> None:
        self._pid = server.process.pid
        self._postgres = server.database_url is not None
        self.server: float | None = 0.0
        self.database: float | None = 0.0 if self._postgres else None
        self._busy: list[float] = []
        self._at: tuple[float | None, float | None, proc_cpu.MachineTime | None] = (
            None, None, None,
        )  # fmt: skip

    def _read(self) -> tuple[float | None, float | None, proc_cpu.MachineTime | None]:
        database = proc_cpu.postgres_seconds() if self._postgres else None
        return proc_cpu.process_seconds(self._pid), database, proc_cpu.MachineTime.now()

    def start(self) -> None:
        self._at = self._read()

    def stop(self) -> None:
        (server, database, machine), (server0, database0, machine0) = self._read(), self._at
        self.server = _add(self.server, server, server0)
        self.database = _add(self.database, database, database0)
        if machine is not None and machine0 is not None:
            self._busy.append(machine.busy_since(machine0))

    def busy(self) -> float | None:
        return statistics.mean(self._busy) if self._busy else None


def _add(sum_: float | None, now: float | None, before: float | None) -> float | None:
    """``sum_`` plus what was used between two readings; None once any reading is missing."""
    if sum_ is None or now is None or before is None:
        return None
    return sum_ + now - before


class _Pusher:
    """One user's device pushing pre-encoded batches, one request at a time."""

    def __init__(self, server: Server, batch: int, seed: int) -> None:
        self.client = signed_in_client(server)
        self.device = Device(random.Random(batch * 1000 + seed))
        self.batch = batch
        # A user who already has some data to edit, sell and log against.
        for _ in range(4):
            body, expected = self.device.batch(100)
            check_push(self.client.post("/v1/sync/push", content=body, headers=JSON), expected)
        self.bodies: list[tuple[bytes, list[int]]] = []
        self.responses: list[httpx.Response] = []

    def prepare(self, total: int) -> None:
        self.bodies = [self.device.batch(self.batch) for _ in range(total // self.batch)]
        self.responses = []

    def run(self) -> None:
        for body, _ in self.bodies:
            self.responses.append(self.client.post("/v1/sync/push", content=body, headers=JSON))

    def check(self) -> None:
        for response, (_, expected) in zip(self.responses, self.bodies, strict=True):
            check_push(response, expected)


@dataclass(frozen=True)
class PullFigures:
    delta_ms: list[float]
    first_sync_ms: list[float]
    first_sync_pages: int


def pull_all(client: httpx.Client, since: str | None = None) -> tuple[int, str, int]:
    """Follow cursors until ``has_more`` is false: (changes, last cursor, pages)."""
    changes = pages = 0
    while True:
        params = {"limit": str(PAGE)} | ({"since": since} if since else {})
        response = client.get("/v1/sync/pull", params=params)
        response.raise_for_status()
        page = msgspec.json.decode(response.content)
        changes += len(page["changes"])
        since, pages = page["cursor"], pages + 1
        if not page["has_more"]:
            return changes, since, pages


def measure_pulls(server: Server, pulls: int, first_syncs: int) -> PullFigures:
    writer = signed_in_client(server)
    device = Device(random.Random(7))
    for _ in range(FIRST_SYNC_CHANGES // 500):
        body, expected = device.batch(500, CREATES)
        check_push(writer.post("/v1/sync/push", content=body, headers=JSON), expected)

    # Another device of the same user: a fresh install syncing everything.
    reader = httpx.Client(base_url=server.url, timeout=60, headers=writer.headers)
    first_sync, pages = [], 0
    for _ in range(first_syncs):
        started = time.perf_counter()
        changes, cursor, pages = pull_all(reader)
        first_sync.append((time.perf_counter() - started) * 1000)
        if changes != FIRST_SYNC_CHANGES:
            raise RuntimeError(f"first sync gave {changes} changes, not {FIRST_SYNC_CHANGES}")

    delta = []
    for _ in range(pulls):
        body, expected = device.show_updates(DELTA)
        check_push(writer.post("/v1/sync/push", content=body, headers=JSON), expected)
        started = time.perf_counter()
        response = reader.get("/v1/sync/pull", params={"since": cursor})
        response.raise_for_status()
        page = msgspec.json.decode(response.content)
        delta.append((time.perf_counter() - started) * 1000)
        if len(page["changes"]) != DELTA or page["has_more"]:
            raise RuntimeError(f"a delta pull gave {len(page['changes'])} changes")
        cursor = page["cursor"]
    writer.close()
    reader.close()
    return PullFigures(delta, first_sync, pages)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- the run -------------------------------------------------------------------------------------


def run_backend(backend: str, args: argparse.Namespace) -> None:
    print(f"\n== {backend}", flush=True)
    print("  yardstick: bench/append.py (store append and raw INSERT, same database)", flush=True)
    sizes = sorted({*args.batches, *([BATCHES[-1]] if args.clients > 1 else [])})
    yardstick = {m.batch: m for m in measure(backend, args.events, args.rounds, sizes)}
    if backend == "postgres":
        checkpoint()
    database_cpus = args.database_cpus if backend == "postgres" else None
    with (
        pinning.postgres_pinned(database_cpus),
        running_server(backend, args.server_cpus) as server,
    ):
        pushes = [measure_push(server, batch, args.rounds) for batch in args.batches]
        if args.clients > 1:
            pushes.append(measure_push(server, BATCHES[-1], args.rounds, args.clients))
        pulls = None if args.no_pulls else measure_pulls(server, args.pulls, args.first_syncs)
    print_push(backend, pushes, yardstick)
    if pulls is not None:
        print_pull(backend, pulls)


def checkpoint() -> None:
    """Flush what the yardstick wrote before measuring push, so that the checkpoint its hundreds
    of thousands of rows start is not written out during the push measurement."""
    try:
        with psycopg.connect(PG_URL, autocommit=True) as connection:
            connection.execute("CHECKPOINT")
    except psycopg.Error as error:  # not a superuser: measure anyway, and say so
        print(f"  (no CHECKPOINT before measuring: {error})", flush=True)


def print_push(backend: str, pushes: list[PushFigure], yardstick: dict[int, Measurement]) -> None:
    print(
        f"\n  push over HTTP ({backend}; median of rounds; the last row with --clients > 1 has "
        "several users pushing at once)"
    )
    print(f"  {'batch':>5} {'ops':>6} {'push ops/s':>10} {'ev/op':>5} {'append ev/s':>11} "
          f"{'INSERT ev/s':>11} {'push/append':>11} {'push/INSERT':>11} "
          f"{'server ms':>9} {'db ms':>6} {'busy':>4} {'pace':>4}")  # fmt: skip
    for p in pushes:
        y = yardstick[p.batch]
        print(f"  {p.batch:5d} {p.ops:6d} {p.ops_per_s:10,.0f} {p.events_per_op:5.2f} "
              f"{y.store:11,.0f} {y.insert:11,.0f} {p.ops_per_s / y.store:11.2f} "
              f"{p.ops_per_s / y.insert:11.2f} {_ms(p.server_ms):>9} {_ms(p.database_ms):>6} "
              f"{'-' if p.busy is None else f'{p.busy:.0%}':>4} {p.pace_ms:4.0f}")  # fmt: skip
    print("  (server ms, db ms: CPU of the server process and of PostgreSQL per batch, from "
          "/proc; busy: share of the machine's cores in use while pushing;\n   pace: ms of CPU "
          "a fixed piece of Python took before the rounds, bench/append.py: lower is a faster "
          "minute)")  # fmt: skip
    if backend == "postgres" and any(p.batch == BATCHES[-1] for p in pushes):
        rate = max(p.ops_per_s for p in pushes if p.batch == BATCHES[-1])
        print(f"  target: batches of 500 >= 10,000 ops/s: {_verdict(rate >= 10_000)}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_pull(backend: str, pulls: PullFigures) -> None:
    d, f = pulls.delta_ms, pulls.first_sync_ms
    print(f"\n  pull over HTTP ({backend})")
    print(f"  {DELTA}-change delta, {len(d)} pulls: median {statistics.median(d):.2f} ms, "
          f"p95 {percentile(d, 95):.2f} ms, p99 {percentile(d, 99):.2f} ms")  # fmt: skip
    print(f"  {FIRST_SYNC_CHANGES:,}-change first sync ({pulls.first_sync_pages} pages of "
          f"{PAGE}), {len(f)} runs: median {statistics.median(f):.0f} ms, "
          f"min {min(f):.0f} ms, max {max(f):.0f} ms")  # fmt: skip
    if backend == "postgres":
        print(f"  target: delta median < 10 ms: {_verdict(statistics.median(d) < 10)}; "
              f"first sync < 1 s: {_verdict(statistics.median(f) < 1000)}")  # fmt: skip


def _cores(cpus: set[int] | None) -> str:
    return "any" if cpus is None else ",".join(map(str, sorted(cpus)))


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per push figure (median)")
    parser.add_argument("--pulls", type=int, default=300, help="10-change delta pulls")
    parser.add_argument("--first-syncs", type=int, default=5, help="10,000-change first syncs")
    parser.add_argument("--events", type=int, default=20000, help="events per yardstick figure")
    parser.add_argument(
        "--clients",
        type=int,
        default=1,
        help="also measure batches of 500 with this many users pushing at once",
    )
    parser.add_argument(
        "--batches",
        type=lambda text: [int(size) for size in text.split(",")],
        default=list(BATCHES),
        help="push batch sizes to measure, of 1, 50 and 500 (default: all three)",
    )
    parser.add_argument("--no-pulls", action="store_true", help="measure pushes only")
    parser.add_argument(
        "--server-cpus",
        type=pinning.parse_cpus,
        help="pin the server process to these cores, e.g. 0 (Linux; default: not pinned)",
    )
    parser.add_argument(
        "--database-cpus",
        type=pinning.parse_cpus,
        help="pin the local PostgreSQL to these cores while measuring, e.g. 1 (Linux, root or "
        "the postgres user; the masks are put back after)",
    )
    args = parser.parse_args()
    if not set(args.batches) <= set(BATCHES):
        parser.error(f"--batches takes sizes among {BATCHES}")
    print(f"machine: {machine()}; client and server on loopback; "
          f"load average {load_average()}; pace {pace():.0f} ms")  # fmt: skip
    print(f"cores: server {_cores(args.server_cpus)}, PostgreSQL {_cores(args.database_cpus)}")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        run_backend(backend, args)
    print(f"load average at the end: {load_average()}; pace {pace():.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
