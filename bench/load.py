"""Load: N devices of M users push and pull against one server, then everything is checked.

Each device is a signed-in session of its user with a local copy of the user's data built only
from its pulls. It alternates a small push (1-20 ops: creates, updates carrying the version the
device last saw, sales, workout sets, a few cost deletions; stale versions give the occasional
conflict) and a pull that follows its cursor until ``has_more`` is false, with think time in
between. A push or pull answered 503/429, or lost to a network error or timeout, is retried
as it was (the same op ids) until it gets an answer.

At the end it prints requests/s and p50/p95/p99 latency per endpoint, statuses, op outcomes,
the CPU each side used, and checks:

* convergence: every device's copy equals a fresh full pull of its user;
* exactly-once: every op answered ``applied`` (or ``duplicate`` of an applied one) is in the
  log once (its events all in one transaction), and the log holds no op of these users that
  was not applied (read from the database, so ``--database-url`` is needed with ``--url``);
* stock: every product's quantity is its initial quantity minus the sales that applied.

    .venv/bin/python bench/load.py --start postgres --workers 2 --devices 100 --duration 10
    .venv/bin/python bench/load.py --start sqlite --devices 100 --duration 10
    .venv/bin/python bench/load.py --url http://127.0.0.1:8000 --database-url postgresql://…

Generators run in ``--procs`` processes of their own (asyncio + httpx), so that their CPU is
measured apart from the server's. With ``--start`` the server gets cheap password hashing and
high rate limits (setup signs in every device; that is not what is measured); an already running
server needs ``SYNC_RATE_LIMIT_PER_MINUTE`` and ``SYNC_RATE_LIMIT_PER_ACCOUNT_PER_MINUTE`` high
enough for the setup's sign-ins.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import multiprocessing
import os
import random
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

if importlib.util.find_spec("sniffio") is None:
    # httpcore tries ``import sniffio`` for every lock it makes (several per request); without
    # the package each try searches the whole path, a third of the generator's CPU. A None
    # entry fails the import at once. (anyio, imported above, looked for it at import time.)
    sys.modules["sniffio"] = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD = "load generator password"
INITIAL_STOCK = 1_000_000
ENDPOINTS = ("push", "pull")
NETWORK_ERROR = 0  # the status recorded for a request that got no HTTP answer
GAVE_UP = -1  # a request retried until the run's grace period ended

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


# -- the server under test -----------------------------------------------------------------


@dataclass
class Target:
    """The server the load goes to, and (when known) the database behind it."""

    url: str
    database_url: str | None = None
    """``postgresql://…`` or ``sqlite:///path``; None: the exactly-once check is skipped."""
    process: subprocess.Popen[bytes] | None = None
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    log_path: Path | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for step in reversed(self.cleanup):
            step()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_schema_url(base: str) -> tuple[str, Callable[[], None]]:
    """A fresh schema in the ``base`` database (as the tests do) and how to drop it."""
    import psycopg

    schema = f"load_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options={quote(f'-csearch_path={schema}')}", drop


def start_server(
    backend: str,
    workers: int = 1,
    *,
    postgres_url: str = PG_URL,
    database_url: str | None = None,
    keep: bool = False,
    env: dict[str, str] | None = None,
) -> Target:
    """``sync-server migrate`` then ``serve`` on a free port, on a fresh database."""
    tmp = Path(tempfile.mkdtemp(prefix="sync-load-"))
    cleanup: list[Callable[[], None]] = []
    if not keep:
        cleanup.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    if backend == "postgres":
        if database_url is None:
            database_url, drop = postgres_schema_url(postgres_url)
            if not keep:
                cleanup.append(drop)
        server_env = {"DATABASE_URL": database_url}
        checked_url = database_url
    else:
        server_env = {"SYNC_DATA_DIR": str(tmp / "data")}
        checked_url = f"sqlite://{tmp / 'data' / 'sync.db'}"
    port = _free_port()
    full_env = {
        **os.environ,
        "SYNC_JWT_SECRET": secrets.token_urlsafe(48),
        "SYNC_ARGON2_MEMORY_KIB": "64",
        "SYNC_ARGON2_TIME_COST": "1",
        "SYNC_RATE_LIMIT_PER_MINUTE": "1000000",
        "SYNC_RATE_LIMIT_PER_ACCOUNT_PER_MINUTE": "1000000",
        "SYNC_LOG_LEVEL": os.environ.get("SYNC_LOG_LEVEL", "warning"),
        **server_env,
        **(env or {}),
    }
    command = [sys.executable, "-m", "sync_server"]
    if backend == "postgres":
        subprocess.run([*command, "migrate"], env=full_env, check=True, capture_output=True)
    log_path = tmp / "server.log"
    serve = [*command, "serve", "--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            serve, env=full_env, stdout=log, stderr=log, cwd=ROOT, start_new_session=True
        )
    target = Target(f"http://127.0.0.1:{port}", checked_url, process, cleanup, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            target.stop()
            raise RuntimeError(f"server exited: {log_path.read_text(errors='replace')}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{target.url}/ready", timeout=2).status_code == 200:
                return target
        time.sleep(0.2)
    target.stop()
    raise RuntimeError("server did not become ready")


# -- CPU accounting ---------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                pids += _tree(int(child))
    return pids


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for each in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]
    return (sum(values) - idle) / ticks, sum(values) / ticks


# -- what a device sends ------------------------------------------------------------------------


def uid() -> str:
    return str(uuid.uuid4())


def now_z() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


CITIES = ("Madrid", "Lisboa", "Berlin", "Paris", "Roma", "Wien", "Praha", "Oslo")
EXERCISES = ("Squat", "Bench press", "Deadlift", "Row", "Press", "Pull-up")
SHOW_FIELDS = ("fee", "notes", "city", "venue")
# How often each kind of op appears in a push (weights).
MIX = {
    "update_show": 30,
    "sale": 25,
    "create_cost": 13,
    "create_show": 10,
    "log_set": 8,
    "update_cost": 5,
    "create_workout": 4,
    "delete_cost": 3,
    "adjust_stock": 2,
}
_KINDS, _WEIGHTS = zip(*MIX.items(), strict=True)


def show_data(rng: random.Random) -> dict[str, Any]:
    return {
        "date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "city": rng.choice(CITIES),
        "country": "ES",
        "fee": f"{rng.randint(1000, 50000)}.00",
    }


def show_change(field_name: str, rng: random.Random) -> Any:
    # Values drawn from millions, so that an update practically never sets a field to the value
    # it has: such an update is applied without an event, which the log check cannot tell from
    # a lost one.
    if field_name == "fee":
        return f"{rng.randint(1000, 99999)}.{rng.randint(0, 99):02d}"
    if field_name == "city":
        return f"{rng.choice(CITIES)} {rng.randint(1, 10**6)}"
    return f"{field_name} {uuid.uuid4().hex}"


@dataclass
class Sent:
    """One op as the device sent it, and what became of it."""

    op_id: str
    kind: str
    entity_id: str
    quantity: int = 0
    """Units a sale takes out of stock (an adjustment: minus its delta)."""
    status: str = "unanswered"


@dataclass
class Known:
    """What a device knows of its user's entities: from its pulls, and its own applied ops."""

    versions: dict[str, int] = field(default_factory=dict)
    shows: list[str] = field(default_factory=list)
    costs: dict[str, None] = field(default_factory=dict)
    workouts: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)

    def learn(self, entity: str, id_: str, version: int, deleted: bool) -> None:
        if version <= self.versions.get(id_, 0):
            return
        first = id_ not in self.versions
        self.versions[id_] = version
        if entity == "cost":
            if deleted:
                self.costs.pop(id_, None)
            else:
                self.costs[id_] = None
        elif first and not deleted:
            {"show": self.shows, "workout": self.workouts, "product": self.products}[entity].append(
                id_
            )


def build_ops(
    rng: random.Random, known: Known, count: int | None = None
) -> tuple[list[dict[str, Any]], list[Sent]]:
    """A push of ``count`` ops (by default 1-20, mostly few), each valid on its own; stale
    versions may conflict."""
    if count is None:
        count = max(1, min(20, int(rng.triangular(1, 21, 1))))
    ops: list[dict[str, Any]] = []
    sent: list[Sent] = []
    for _ in range(count):
        kind = rng.choices(_KINDS, _WEIGHTS)[0]
        op, record = _op(kind, rng, known)
        ops.append(op)
        sent.append(record)
    return ops, sent


def first_ops(rng: random.Random) -> tuple[list[dict[str, Any]], list[Sent]]:
    """A user's first push: three products with plenty of stock, three shows."""
    ops: list[dict[str, Any]] = []
    sent: list[Sent] = []
    for _ in range(3):
        product = {"sku": f"SKU-{uuid.uuid4().hex[:10]}", "name": "T-shirt",
                   "quantity": INITIAL_STOCK}  # fmt: skip
        ops.append({"op_id": uid(), "entity": "product", "id": uid(), "action": "create",
                    "data": product})  # fmt: skip
        sent.append(Sent(ops[-1]["op_id"], "create_product", ops[-1]["id"]))
    for _ in range(3):
        ops.append({"op_id": uid(), "entity": "show", "id": uid(), "action": "create",
                    "data": show_data(rng)})  # fmt: skip
        sent.append(Sent(ops[-1]["op_id"], "create_show", ops[-1]["id"]))
    return ops, sent


def _op(kind: str, rng: random.Random, known: Known) -> tuple[dict[str, Any], Sent]:
    op_id = uid()
    if kind == "update_show" and known.shows:
        target = rng.choice(known.shows[-20:] + known.shows[:3])
        data = {name: show_change(name, rng) for name in rng.sample(SHOW_FIELDS, rng.randint(1, 2))}
        op = {
            "entity": "show",
            "id": target,
            "action": "update",
            "data": data,
            "base_version": known.versions[target],
        }
    elif kind in ("sale", "adjust_stock") and known.products:
        target = rng.choice(known.products)
        if kind == "sale":
            quantity = rng.randint(1, 3)
            data = {"quantity": quantity, "unit_price": "4.50", "sold_at": now_z()}
            op = {"entity": "product", "id": target, "action": "record_sale", "data": data}
        else:
            delta = rng.randint(1, 5)
            quantity = -delta
            data = {"delta": delta, "reason": "restock"}
            op = {"entity": "product", "id": target, "action": "adjust_stock", "data": data}
        return {"op_id": op_id, **op}, Sent(op_id, kind, target, quantity)
    elif kind == "create_cost" and known.shows:
        target = uid()
        data = {
            "show_id": rng.choice(known.shows),
            "type": "sound",
            "amount": f"{rng.randint(10, 900)}.00",
        }
        op = {"entity": "cost", "id": target, "action": "create", "data": data}
    elif kind in ("update_cost", "delete_cost") and known.costs:
        target = rng.choice(list(known.costs)[-30:])
        op = {"entity": "cost", "id": target, "base_version": known.versions[target]}
        if kind == "update_cost":
            amount = f"{rng.randint(10, 99999)}.{rng.randint(0, 99):02d}"
            op |= {"action": "update", "data": {"amount": amount}}
        else:
            op |= {"action": "delete"}
    elif kind == "log_set" and known.workouts:
        target = rng.choice(known.workouts[-10:])
        data = {
            "exercise": rng.choice(EXERCISES),
            "reps": rng.randint(1, 12),
            "weight": str(rng.randint(20, 200)),
            "unit": "kg",
        }
        op = {"entity": "workout", "id": target, "action": "log_set", "data": data}
    elif kind == "create_workout":
        target = uid()
        squat = {"name": "Squat", "sets": [{"reps": 5, "weight": "100", "unit": "kg"}]}
        data = {"date": "2026-11-20", "name": "Legs day", "exercises": [squat]}
        op = {"entity": "workout", "id": target, "action": "create", "data": data}
    else:
        kind, target = "create_show", uid()
        op = {"entity": "show", "id": target, "action": "create", "data": show_data(rng)}
    return {"op_id": op_id, "client_ts": now_z(), **op}, Sent(op_id, kind, target)


# -- one generator process ----------------------------------------------------------------------


@dataclass
class DeviceSpec:
    user: int
    user_id: str
    token: str
    client_id: str
    seed: int


@dataclass
class WorkerSpec:
    url: str
    devices: list[DeviceSpec]
    start_at: float
    duration: float
    think: float
    grace: float
    timeout: float


class Samples:
    """Every timed request: when it ended (s since start), endpoint, status, latency (s)."""

    def __init__(self) -> None:
        self.at = array("d")
        self.endpoint = array("b")
        self.status = array("h")
        self.latency = array("d")

    def add(self, at: float, endpoint: int, status: int, latency: float) -> None:
        self.at.append(at)
        self.endpoint.append(endpoint)
        self.status.append(status)
        self.latency.append(latency)

    def extend(self, other: Samples) -> None:
        self.at.extend(other.at)
        self.endpoint.extend(other.endpoint)
        self.status.extend(other.status)
        self.latency.extend(other.latency)

    def __len__(self) -> int:
        return len(self.at)


@dataclass
class WorkerResult:
    samples: Samples
    sent: dict[int, list[Sent]]
    """Every op sent, by user index."""
    statuses: Counter[str]
    diverged: list[str]
    devices: int
    went_back: int
    unanswered_requests: int
    cpu: float
    wall: float
    errors: list[str]


class Client:
    """HTTP with timing and retries: 503/429 (after Retry-After), network errors, timeouts."""

    def __init__(self, spec: WorkerSpec, samples: Samples) -> None:
        self.url = spec.url
        self.timeout = httpx.Timeout(spec.timeout)
        # Loaded once: each AsyncClient would otherwise load the CA bundle (milliseconds each).
        self.tls = ssl.create_default_context()
        self.connections: list[httpx.AsyncClient] = []
        self.samples = samples
        self.start = spec.start_at
        self.timed_until = spec.start_at + spec.duration
        self.give_up_at = spec.start_at + spec.duration + spec.grace
        self.errors: list[str] = []
        self.unanswered = 0

    def connection(self) -> httpx.AsyncClient:
        """A device's own connection. One pool per device, not one shared by all: httpcore's
        pool scans every connection it holds on every request, which with a thousand devices
        costs the generator more than the requests themselves."""
        http = httpx.AsyncClient(
            base_url=self.url,
            # Dropped by us before the server drops it (uvicorn: 5 s idle), or a request sent as
            # the server closes the connection fails.
            limits=httpx.Limits(max_connections=1, keepalive_expiry=4.0),
            timeout=self.timeout,
            verify=self.tls,
        )
        self.connections.append(http)
        return http

    async def close(self) -> None:
        for http in self.connections:
            await http.aclose()

    async def call(
        self,
        http: httpx.AsyncClient,
        endpoint: int,
        method: str,
        path: str,
        token: str,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        """The final status and, for a 200, the decoded body. Retried: 503 and 429 (after
        their Retry-After), other 5xx, network errors and timeouts; status -1: we gave up."""
        headers = {"Authorization": f"Bearer {token}"}
        if "content" in kwargs:
            headers["Content-Type"] = "application/json"
        delay = 0.25
        while True:
            started = time.perf_counter()
            wait: float | None = None
            try:
                response = await http.request(method, path, headers=headers, **kwargs)
                status = response.status_code
            except httpx.HTTPError as error:
                status, response = NETWORK_ERROR, None
                self._error(f"{type(error).__name__}: {error}")
            ended = time.time()
            if ended <= self.timed_until:
                self.samples.add(
                    ended - self.start, endpoint, status, time.perf_counter() - started
                )
            if status == 200 and response is not None:
                return status, _decode(response.content)
            if response is not None and status in (429, 503):
                if "retry-after" not in response.headers:
                    self._error(f"{method} {path} {status} without Retry-After")
                wait = float(response.headers.get("retry-after", "1"))
            elif response is not None:
                self._error(f"{method} {path} {status}: {response.text[:300]}")
                if status < 500:
                    return status, None
            if time.time() > self.give_up_at:
                self.unanswered += 1
                return GAVE_UP, None
            if wait is None:
                wait, delay = delay, min(delay * 2, 4.0)
            await asyncio.sleep(wait * random.uniform(0.5, 1.5))

    def _error(self, message: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(message)


class Device:
    """A signed-in installation: a local copy built from pulls, a cursor, its ops."""

    def __init__(self, spec: DeviceSpec, client: Client) -> None:
        self.spec = spec
        self.client = client
        self.http = client.connection()
        self.rng = random.Random(spec.seed)
        self.copy: dict[tuple[str, str], dict[str, Any]] = {}
        self.cursor: str | None = None
        self.known = Known()
        self.sent: list[Sent] = []
        self.statuses: Counter[str] = Counter()
        self.went_back = 0

    async def run(self, think: float) -> None:
        client = self.client
        await asyncio.sleep(self.rng.uniform(0, think))  # spread the start
        await self.pull()
        while time.time() < client.timed_until:
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * think)
            if time.time() >= client.timed_until:
                break
            await self.push()
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * think)
            if time.time() >= client.timed_until:
                break
            await self.pull()

    async def push(self) -> None:
        ops, sent = build_ops(self.rng, self.known)
        self.sent += sent
        body = _encode({"client_id": self.spec.client_id, "ops": ops})
        status, answer = await self.client.call(
            self.http, 0, "POST", "/v1/sync/push", self.spec.token, content=body
        )
        if answer is None:
            if status != GAVE_UP:  # refused whole (4xx): nothing of it was written
                for record in sent:
                    record.status = f"refused_{status}"
            return
        for record, result in zip(sent, answer["results"], strict=True):
            status = result["status"]
            if status == "duplicate":
                status = "duplicate_" + result["original"]["status"]
            record.status = status
            self.statuses[status] += 1
            if status in ("applied", "duplicate_applied") and result.get("version"):
                entity = next(o["entity"] for o in ops if o["op_id"] == record.op_id)
                self.known.learn(
                    entity, record.entity_id, result["version"], record.kind == "delete_cost"
                )

    async def pull(self) -> bool:
        """Follow the cursor to the end; False if a page could not be had."""
        while True:
            params = {"limit": "500"}
            if self.cursor:
                params["since"] = self.cursor
            _, page = await self.client.call(
                self.http, 1, "GET", "/v1/sync/pull", self.spec.token, params=params
            )
            if page is None:
                return False
            if page.get("reset"):
                self.copy.clear()
            for change in page["changes"]:
                key = (change["entity"], change["id"])
                seen = self.copy.get(key)
                if seen is not None and seen["version"] > change["version"]:
                    self.went_back += 1
                self.copy[key] = change
                self.known.learn(
                    change["entity"], change["id"], change["version"], change["op"] == "delete"
                )
            self.cursor = page["cursor"]
            if not page["has_more"]:
                return True


async def full_state(
    http: httpx.AsyncClient, token: str, entities: str | None = None
) -> dict[tuple[str, str], dict[str, Any]]:
    """Everything the server holds for a user, pulled from the beginning."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    params: dict[str, str] = {"limit": "5000"}
    if entities:
        params["entities"] = entities
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        response = await http.get("/v1/sync/pull", params=params, headers=headers)
        response.raise_for_status()
        page = _decode(response.content)
        for change in page["changes"]:
            rows[(change["entity"], change["id"])] = change
        params["since"] = page["cursor"]
        if not page["has_more"]:
            return rows


async def _run_worker(spec: WorkerSpec, barrier: Any) -> WorkerResult:
    samples = Samples()
    client = Client(spec, samples)
    devices = [Device(d, client) for d in spec.devices]
    await asyncio.sleep(max(0.0, spec.start_at - time.time()))
    cpu0, wall0 = time.process_time(), time.time()
    await asyncio.gather(*(d.run(spec.think) for d in devices))
    cpu, wall = time.process_time() - cpu0, time.time() - wall0
    # Every generator has stopped pushing before anyone takes its final pull.
    await asyncio.get_running_loop().run_in_executor(None, barrier.wait, spec.grace + 120)
    client.timed_until = 0.0  # nothing after this point is a timed sample
    client.give_up_at = time.time() + spec.grace
    caught_up = await asyncio.gather(*(d.pull() for d in devices))
    truths: dict[int, dict[tuple[str, str], dict[str, Any]]] = {}
    diverged: list[str] = []
    for device, ok in zip(devices, caught_up, strict=True):
        user = device.spec.user
        if user not in truths:
            truths[user] = await full_state(device.http, device.spec.token)
        if not ok or device.copy != truths[user]:
            diverged.append(_difference(device, truths[user], ok))
    await client.close()
    sent: dict[int, list[Sent]] = defaultdict(list)
    statuses: Counter[str] = Counter()
    for device in devices:
        sent[device.spec.user] += device.sent
        statuses.update(device.statuses)
    return WorkerResult(
        samples,
        dict(sent),
        statuses,
        diverged,
        len(devices),
        sum(d.went_back for d in devices),
        client.unanswered,
        cpu,
        wall,
        client.errors,
    )


def _difference(device: Device, truth: dict[tuple[str, str], dict[str, Any]], ok: bool) -> str:
    if not ok:
        return f"device of user {device.spec.user}: final pull failed"
    missing = truth.keys() - device.copy.keys()
    extra = device.copy.keys() - truth.keys()
    changed = [k for k in truth.keys() & device.copy.keys() if truth[k] != device.copy[k]]
    return (
        f"device of user {device.spec.user}: {len(missing)} missing, {len(extra)} extra, "
        f"{len(changed)} different (e.g. {(list(missing) + list(extra) + changed)[:1]})"
    )


def worker_main(spec: WorkerSpec, barrier: Any, results: Any) -> None:
    try:
        results.put(asyncio.run(_run_worker(spec, barrier)))
    except BaseException as error:  # the parent must hear of it instead of waiting forever
        barrier.abort()
        results.put(f"{type(error).__name__}: {error}")
        raise


# -- setup: users, devices, their first data ------------------------------------------------


@dataclass
class Population:
    devices: list[DeviceSpec]
    user_ids: list[str]
    tokens: list[str]
    """One access token per user (its first device's)."""
    seeded: dict[int, list[Sent]]
    """The ops the setup pushed, by user: the first products and shows."""
    stock: dict[str, int]
    """Initial quantity of every product."""


async def populate(url: str, users: int, devices: int, seed: int) -> Population:
    """Register ``users``, sign in ``devices`` spread over them, give each user some data."""
    rng = random.Random(seed)
    gate = asyncio.Semaphore(32)
    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def post(path: str, body: dict[str, Any], token: str | None = None) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with gate:
                for attempt in range(20):
                    response = await http.post(path, json=body, headers=headers)
                    if response.status_code not in (429, 503):
                        break
                    await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
            if response.status_code not in (200, 201):
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
            return response.json()

        emails = [f"load-{uuid.uuid4().hex[:12]}@example.com" for _ in range(users)]
        registered = await asyncio.gather(
            *(post("/v1/auth/register", {"email": e, "password": PASSWORD}) for e in emails)
        )
        user_ids = [r["user"]["id"] for r in registered]
        tokens = [r["access_token"] for r in registered]
        owners = [n % users for n in range(devices)]
        logins = await asyncio.gather(
            *(
                post(
                    "/v1/auth/login",
                    {"email": emails[u], "password": PASSWORD, "device_id": f"load-device-{n}"},
                )
                for n, u in enumerate(owners)
            )
        )
        specs = [
            DeviceSpec(u, user_ids[u], login["access_token"], uid(), rng.randrange(2**32))
            for u, login in zip(owners, logins, strict=True)
        ]
        seeded: dict[int, list[Sent]] = {}
        stock: dict[str, int] = {}
        pushes = []
        for user in range(users):
            ops, seeded[user] = first_ops(rng)
            stock |= {
                s.entity_id: INITIAL_STOCK for s in seeded[user] if s.kind == "create_product"
            }
            pushes.append(post("/v1/sync/push", {"client_id": uid(), "ops": ops}, tokens[user]))
        for user, answer in enumerate(await asyncio.gather(*pushes)):
            for record, result in zip(seeded[user], answer["results"], strict=True):
                record.status = result["status"]
    return Population(specs, user_ids, tokens, seeded, stock)


# -- checks ------------------------------------------------------------------------------------

APPLIED = ("applied", "duplicate_applied")


@dataclass
class Logged:
    """What the database holds for a set of users' ops."""

    transactions: dict[str, set[int]]
    """op_id -> the transactions whose events carry it."""
    outcomes: dict[str, str]
    """op_id -> the status of the outcome remembered under its idempotency key."""


def read_log(database_url: str, user_ids: list[str]) -> Logged:
    if database_url.startswith("sqlite:"):
        import sqlite3

        path = database_url.removeprefix("sqlite:").removeprefix("//")
        marks = ",".join("?" * len(user_ids))
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            events = db.execute(
                f"SELECT json_extract(metadata, '$.op_id'), tx FROM events "
                f"WHERE owner IN ({marks})",
                user_ids,
            ).fetchall()
            keys = db.execute(
                f"SELECT key, outcome FROM idempotency_keys WHERE owner IN ({marks})", user_ids
            ).fetchall()
    else:
        import psycopg

        with psycopg.connect(database_url) as db:
            events = db.execute(
                "SELECT metadata->>'op_id', tx FROM events WHERE owner = ANY(%s::uuid[])",
                [user_ids],
            ).fetchall()
            keys = db.execute(
                "SELECT key, outcome FROM idempotency_keys WHERE owner = ANY(%s::uuid[])",
                [user_ids],
            ).fetchall()
    transactions: dict[str, set[int]] = defaultdict(set)
    for op_id, tx in events:
        transactions[op_id].add(tx)
    outcomes = {
        key.removeprefix("op:"): _decode(bytes(outcome))["status"]
        for key, outcome in keys
        if key.startswith("op:")
    }
    return Logged(dict(transactions), outcomes)


@dataclass
class Checks:
    converged: str
    exactly_once: str
    stock: str
    ok: bool


def check(
    population: Population,
    sent: dict[int, list[Sent]],
    diverged: list[str],
    final_stock: dict[str, int],
    database_url: str | None,
) -> Checks:
    ok = not diverged
    devices = len(population.devices)
    converged = f"{devices - len(diverged)}/{devices} devices equal a fresh full pull"
    if diverged:
        converged += "; " + "; ".join(diverged[:3])

    every = [s for user in sent.values() for s in user]
    applied = {s.op_id for s in every if s.status in APPLIED}
    unanswered = {s.op_id for s in every if s.status == "unanswered"}
    if database_url is None:
        exactly_once = "skipped (no --database-url)"
    else:
        logged = read_log(database_url, population.user_ids)
        answered = {s.op_id: s.status.removeprefix("duplicate_") for s in every}
        answered = {k: v for k, v in answered.items() if v in ("applied", "conflict", "rejected")}
        # Every answered op was recorded once under its key (a primary key), with the outcome
        # the device was told; its events, if any, were written by one transaction; no op that
        # was not applied left an event.
        unrecorded = [op for op, status in answered.items() if logged.outcomes.get(op) != status]
        twice = [op for op, txs in logged.transactions.items() if len(txs) > 1]
        eventless = applied - logged.transactions.keys()
        phantom = logged.transactions.keys() - applied - unanswered
        ok = ok and not unrecorded and not twice and not eventless and not phantom
        exactly_once = (
            f"{len(answered)} ops answered, {len(applied)} applied; "
            f"recorded with another outcome or not at all {len(unrecorded)}, "
            f"applied with no event {len(eventless)}, written by two transactions {len(twice)}, "
            f"with events but not applied {len(phantom)}"
        )
        if unanswered:
            in_log = len(unanswered & logged.transactions.keys())
            exactly_once += f"; {len(unanswered)} never answered ({in_log} of them in the log)"

    taken: Counter[str] = Counter()
    for s in every:
        if s.kind in ("sale", "adjust_stock") and s.status in APPLIED:
            taken[s.entity_id] += s.quantity
    wrong = [
        p for p, initial in population.stock.items() if final_stock.get(p) != initial - taken[p]
    ]
    if any(s.kind in ("sale", "adjust_stock") and s.status == "unanswered" for s in every):
        stock = "not checked: some stock ops were never answered"
    else:
        ok = ok and not wrong
        stock = (
            f"{len(population.stock) - len(wrong)}/{len(population.stock)} products at initial "
            f"minus applied sales ({sum(taken.values())} units sold, net of restocking)"
        )
    return Checks(converged, exactly_once, stock, ok)


async def final_stock(url: str, tokens: list[str]) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        states = await asyncio.gather(*(full_state(http, t, "product") for t in tokens))
    return {
        id_: change["data"]["quantity"]
        for state in states
        for (_, id_), change in state.items()
        if change["op"] == "upsert"
    }


# -- figures -------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def summarize(samples: Samples, duration: float) -> dict[str, Any]:
    by_endpoint: dict[str, Any] = {}
    for code, name in enumerate(ENDPOINTS):
        picked = [i for i in range(len(samples)) if samples.endpoint[i] == code]
        latencies = sorted(samples.latency[i] * 1000 for i in picked)
        statuses = Counter(samples.status[i] for i in picked)
        by_endpoint[name] = {
            "requests": len(picked),
            "per_second": len(picked) / duration,
            "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99),
            "max_ms": latencies[-1] if latencies else math.nan,
            "statuses": {str(k or "network"): v for k, v in sorted(statuses.items())},
        }
    return by_endpoint


def timeline(samples: Samples) -> Iterator[tuple[int, Counter[int], list[float]]]:
    """Per second: the statuses of the requests that ended in it, and their latencies (ms)."""
    seconds: dict[int, tuple[Counter[int], list[float]]] = defaultdict(lambda: (Counter(), []))
    for i in range(len(samples)):
        statuses, latencies = seconds[int(samples.at[i])]
        statuses[samples.status[i]] += 1
        latencies.append(samples.latency[i] * 1000)
    for second in sorted(seconds):
        statuses, latencies = seconds[second]
        yield second, statuses, sorted(latencies)


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    figures: dict[str, Any]
    samples: Samples
    checks: Checks


def run_load(
    target: Target,
    *,
    devices: int,
    users: int,
    duration: float,
    think: float,
    procs: int,
    seed: int = 1,
    grace: float = 60.0,
    timeout: float = 30.0,
    during: Callable[[float], None] | None = None,
) -> Outcome:
    """Populate, run the generators, collect, check. ``during(start_at)`` runs in this process
    while the load runs (the outage script stops the database from there)."""
    started = time.time()
    population = asyncio.run(populate(target.url, users, devices, seed))
    print(
        f"setup: {users} users, {devices} devices signed in, "
        f"{len(population.stock)} products in {time.time() - started:.1f} s",
        flush=True,
    )
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(procs)
    results = context.Queue()
    start_at = time.time() + 2.0 + 0.5 * procs  # time for the processes to start
    shares = [population.devices[n::procs] for n in range(procs)]
    workers = [
        context.Process(
            target=worker_main,
            args=(
                WorkerSpec(target.url, share, start_at, duration, think, grace, timeout),
                barrier,
                results,
            ),
            daemon=True,
        )
        for share in shares
    ]
    for worker in workers:
        worker.start()
    server_pid = target.process.pid if target.process else None
    time.sleep(max(0.0, start_at - time.time()))
    busy0 = machine_busy()
    server0 = process_cpu(server_pid) if server_pid else 0.0
    try:
        if during is not None:
            during(start_at)
        time.sleep(max(0.0, start_at + duration - time.time()))
        busy1 = machine_busy()
        server1 = process_cpu(server_pid) if server_pid else 0.0
        collected: list[WorkerResult] = []
        for _ in workers:
            result = results.get(timeout=duration + grace + 600)
            if isinstance(result, str):
                raise RuntimeError(f"a generator failed: {result}")
            collected.append(result)
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()

    samples = Samples()
    sent: dict[int, list[Sent]] = defaultdict(list)
    for user, records in population.seeded.items():
        sent[user] += records
    statuses: Counter[str] = Counter()
    diverged: list[str] = []
    errors: list[str] = []
    for result in collected:
        samples.extend(result.samples)
        for user, records in result.sent.items():
            sent[user] += records
        statuses.update(result.statuses)
        diverged += result.diverged
        errors += result.errors
    stock = asyncio.run(final_stock(target.url, population.tokens))
    checks = check(population, sent, diverged, stock, target.database_url)
    wall = max(r.wall for r in collected)
    figures = {
        "devices": devices,
        "users": users,
        "duration_s": duration,
        "think_s": think,
        "procs": procs,
        "requests_per_second": len(samples) / duration,
        "endpoints": summarize(samples, duration),
        "ops": dict(statuses),
        "ops_applied_per_second": sum(statuses[s] for s in APPLIED) / duration,
        "went_back": sum(r.went_back for r in collected),
        "unanswered_requests": sum(r.unanswered_requests for r in collected),
        "generator_cpu_cores": sum(r.cpu for r in collected) / wall,
        "generator_cpu_per_proc": [round(r.cpu / r.wall, 2) for r in collected],
        "server_cpu_cores": (server1 - server0) / duration if server_pid else None,
        "machine_busy_cores": (busy1[0] - busy0[0]) / duration,
        "machine_cores": os.cpu_count(),
        "errors": errors[:10],
        "checks": {
            "converged": checks.converged,
            "exactly_once": checks.exactly_once,
            "stock": checks.stock,
            "ok": checks.ok,
        },
    }
    return Outcome(figures, samples, checks)


def print_figures(figures: dict[str, Any]) -> None:
    print(
        f"\n{figures['devices']} devices of {figures['users']} users, "
        f"{figures['duration_s']:.0f} s, think {figures['think_s']} s, "
        f"{figures['procs']} generator process(es)"
    )
    print(f"requests/s: {figures['requests_per_second']:.0f}")
    print(
        f"{'endpoint':8} {'req':>7} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8}  statuses"
    )
    for name, e in figures["endpoints"].items():
        print(
            f"{name:8} {e['requests']:7d} {e['per_second']:7.0f} {e['p50_ms']:8.1f} "
            f"{e['p95_ms']:8.1f} {e['p99_ms']:8.1f} {e['max_ms']:8.1f}  {e['statuses']}"
        )
    ops = figures["ops"]
    print(f"ops: {dict(sorted(ops.items()))}; applied/s {figures['ops_applied_per_second']:.0f}")
    server = figures["server_cpu_cores"]
    print(
        f"CPU (cores busy): generators {figures['generator_cpu_cores']:.2f} "
        f"(per process {figures['generator_cpu_per_proc']}), "
        f"server {'n/a' if server is None else f'{server:.2f}'}, "
        f"whole machine {figures['machine_busy_cores']:.2f} of {figures['machine_cores']}"
    )
    if figures["went_back"] or figures["unanswered_requests"]:
        print(
            f"versions seen going back: {figures['went_back']}; "
            f"requests given up: {figures['unanswered_requests']}"
        )
    for error in figures["errors"]:
        print(f"  error: {error}")
    checks = figures["checks"]
    print(f"convergence: {checks['converged']}")
    print(f"exactly-once: {checks['exactly_once']}")
    print(f"stock: {checks['stock']}")
    print("CHECKS PASSED" if checks["ok"] else "CHECKS FAILED")


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="an already running server")
    where.add_argument("--start", choices=("sqlite", "postgres"), help="start a server")
    parser.add_argument("--workers", type=int, default=1, help="server processes (--start)")
    parser.add_argument(
        "--database-url",
        help="the server's database, for the exactly-once check (postgresql://… or "
        "sqlite:///path/sync.db); with --start postgres: use it instead of a fresh schema",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    add_population_arguments(parser, duration=10.0, think=2.0)


def add_population_arguments(
    parser: argparse.ArgumentParser, *, duration: float, think: float
) -> None:
    """The options of ``run_load`` (shared with bench/outage.py)."""
    parser.add_argument("--postgres-url", default=PG_URL, help="where --start makes its schema")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--users", type=int, help="default: one per 4 devices")
    parser.add_argument("--duration", type=float, default=duration, help="seconds of load")
    parser.add_argument("--think", type=float, default=think, help="mean think time (s)")
    parser.add_argument("--procs", type=int, default=1, help="generator processes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="also write the figures to this file")


def population_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "devices": args.devices,
        "users": args.users or max(1, args.devices // 4),
        "duration": args.duration,
        "think": args.think,
        "procs": args.procs,
        "seed": args.seed,
    }


def open_target(args: argparse.Namespace) -> Target:
    if args.url:
        return Target(args.url.rstrip("/"), args.database_url)
    return start_server(
        args.start,
        args.workers,
        postgres_url=args.postgres_url,
        database_url=args.database_url,
        keep=args.keep,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_arguments(parser)
    args = parser.parse_args()
    target = open_target(args)
    try:
        outcome = run_load(target, **population_options(args))
    finally:
        target.stop()
    print_figures(outcome.figures)
    if args.json:
        Path(args.json).write_text(json.dumps(outcome.figures, indent=2, default=str))
    return 0 if outcome.checks.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
