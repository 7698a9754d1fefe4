"""Convergence (DESIGN.md, invariant 7) of SDK clients against a real server, on both backends.

Hypothesis drives five devices of one user working offline on a small pool of shared ids:
random writes of every entity and action, syncs in random order, answers lost after the server
committed, networks that stay down through the retries, and devices killed mid-sync (``Crash``
raised out of the transport before or after the server saw a request) and reopened on the same
file. The devices use different conflict policies. The server only takes four ops per push, so
the clients' batches of eight are split along the way.

Once everyone has synced, every device's copy must equal the server's read tables, the tables
rebuilt from the log alone by the projectors (``projections.apply.apply_events``), and what a
fresh device pulls, with nothing left queued; and every stock movement must have been applied
exactly once: a product's quantity is its initial one plus the movements no device was told
were refused. A last test kills a real client process with SIGKILL mid-sync.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from conftest import BACKENDS, Server, serve_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sdk_harness import (
    PASSWORD,
    Crash,
    Fault,
    FaultyTransport,
    local_rows,
    new_email,
    open_client,
    rebuilt_rows,
    server_rows,
)

from client_sdk import AlreadyExists, Client, ConflictInfo, NetworkError, NotFound
from client_sdk.entities import Collection
from projections import tables

DEVICES = 5
INITIAL_STOCK = 100
POOL = {"show": 2, "cost": 2, "workout": 1, "product": 2}
SERVER_BATCH = 4


def larger_wins(conflict: ConflictInfo) -> dict[str, Any]:
    """A callback policy: each field in conflict takes the larger of the two values (a
    deletion in conflict gives way)."""
    return {
        name: max(conflict.mine[name], conflict.theirs.get(name), key=repr)
        for name in conflict.fields
        if name in conflict.mine
    }


POLICIES: list[Any] = ["merge", "server_wins", "client_wins", larger_wins, "merge"]


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server that takes only a few ops per push, so the clients' batches get split."""
    yield from serve_module(request, tmp_path_factory, SYNC_MAX_OPS_PER_BATCH=str(SERVER_BATCH))


# -- random writes -------------------------------------------------------------------------------


def _new_fields(entity: str, rng: random.Random, ids: dict[str, list[UUID]]) -> dict[str, Any]:
    if entity == "show":
        return {
            "date": rng.choice(["2026-12-01", "2026-12-02"]),
            "city": rng.choice(["Madrid", "Oslo", "Lyon"]),
            "country": rng.choice(["ES", "NO", "FR"]),
            "fee": str(rng.randint(0, 50) * 100),
        }
    if entity == "cost":
        return {
            "show_id": rng.choice(ids["show"]),
            "type": rng.choice(["hotel", "sound"]),
            "amount": f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}",
            "currency": rng.choice(["EUR", "EUR", "USD"]),
        }
    if entity == "workout":
        sets = [{"reps": rng.randint(1, 10), "weight": str(rng.randint(20, 120)), "unit": "kg"}]
        return {
            "date": "2026-11-20",
            "name": rng.choice(["Legs day", "Push day"]),
            "exercises": [{"name": "squat", "sets": sets}],
        }
    return {
        "sku": rng.choice(["A", "B", "C"]),
        "name": rng.choice(["Pens", "Pads"]),
        "quantity": INITIAL_STOCK,
        "reorder_point": rng.randint(0, 120),
    }


def _changes(entity: str, rng: random.Random, ids: dict[str, list[UUID]]) -> dict[str, Any]:
    options: dict[str, Any] = {
        "show": {
            "fee": str(rng.randint(0, 50) * 100),
            "city": rng.choice(["Madrid", "Oslo", "Lyon", "Porto"]),
            "status": rng.choice(["draft", "confirmed", "canceled"]),
            "notes": rng.choice([None, "bring cables", "late load-in"]),
            "mgmt_pct": str(rng.randint(0, 20)),
        },
        "cost": {
            "amount": str(rng.randint(1, 500)),
            "type": rng.choice(["hotel", "sound", "light"]),
            "show_id": rng.choice(ids["show"]),
        },
        "workout": {
            "name": rng.choice(["Legs day", "Pull day"]),
            "notes": rng.choice([None, "felt strong"]),
        },
        "product": {
            "name": rng.choice(["Pens", "Pads", "Ink"]),
            "reorder_point": rng.randint(0, 120),
            "sku": rng.choice(["A", "B", "C"]),
        },
    }[entity]
    names = rng.sample(sorted(options), rng.randint(1, 2))
    return {name: options[name] for name in names}


@dataclass
class Movement:
    product: UUID
    delta: int
    op_id: UUID


def _collection(client: Client, entity: str) -> Collection:
    return {
        "show": client.shows,
        "cost": client.costs,
        "workout": client.workouts,
        "product": client.inventory,
    }[entity]


def random_write(
    client: Client, rng: random.Random, ids: dict[str, list[UUID]], movements: list[Movement]
) -> None:
    entity = rng.choice(sorted(ids))
    id_ = rng.choice(ids[entity])
    entities = _collection(client, entity)
    try:
        if entities.get(id_) is None:
            entities.create(_new_fields(entity, rng, ids), id=id_)
            return
        roll = rng.random()
        if roll < 0.1:
            entities.delete(id_)
        elif roll < 0.5 and entity == "workout":
            client.workouts.log_set(
                id_,
                exercise=rng.choice(["squat", "bench"]),
                reps=rng.randint(1, 10),
                weight=str(rng.randint(20, 120)),
                unit=rng.choice(["kg", "lb"]),
            )
        elif roll < 0.6 and entity == "product":
            delta = rng.choice([-30, -5, 5, 10, 20])
            client.inventory.adjust_stock(id_, delta=delta, reason="count")
            movements.append(Movement(id_, delta, client.pending()[-1].op_id))
        elif roll < 0.75 and entity == "product":
            quantity = rng.randint(1, 40)
            sold_at = datetime.now(UTC) - timedelta(days=rng.randint(0, 40))
            client.inventory.record_sale(id_, quantity=quantity, unit_price="2.50", sold_at=sold_at)
            movements.append(Movement(id_, -quantity, client.pending()[-1].op_id))
        else:
            entities.update(id_, _changes(entity, rng, ids))
    except (AlreadyExists, NotFound):
        pass  # a tombstone, or a cost whose show is gone: the app would not offer it


# -- the scenario --------------------------------------------------------------------------------


@dataclass
class Devices:
    server: Server
    email: str
    folder: Path
    transports: list[FaultyTransport] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    def open(self, index: int) -> Client:
        transport = FaultyTransport()
        client = open_client(
            self.folder / f"device-{index}.db",
            self.server.url,
            transport=transport,
            conflicts={e: POLICIES[index] for e in POOL},
            batch_size=2 * SERVER_BATCH,
        )
        if index < len(self.clients):
            self.transports[index], self.clients[index] = transport, client
        else:
            self.transports.append(transport)
            self.clients.append(client)
        return client

    def sync(self, index: int, faults: list[Fault]) -> None:
        self.transports[index].plan.extend(faults)
        try:
            self.clients[index].sync()
        except NetworkError:
            pass  # offline for now; everything stays queued
        except Crash:
            self.clients[index].close()
            self.open(index)
        self.transports[index].plan.clear()

    def close(self) -> None:
        for client in self.clients:
            client.close()


write_step = st.tuples(st.just("write"), st.integers(0, DEVICES - 1), st.integers(0, 2**32))
fault = st.sampled_from(["ok", "ok", "ok", "lose", "down", "crash_before", "crash_after"])
sync_step = st.tuples(st.just("sync"), st.integers(0, DEVICES - 1), st.lists(fault, max_size=6))
steps = st.lists(st.one_of(write_step, sync_step), min_size=8, max_size=30)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, seed=st.integers(0, 2**32))
def test_devices_converge_to_the_servers_state(server: Server, steps: list[Any], seed: int) -> None:
    rng = random.Random(seed)
    ids = {entity: [UUID(int=rng.getrandbits(128)) for _ in range(n)] for entity, n in POOL.items()}
    movements: list[Movement] = []
    folder = Path(tempfile.mkdtemp(prefix="sdk-devices-"))
    devices = Devices(server, new_email(), folder)
    try:
        for index in range(DEVICES):
            client = devices.open(index)
            if index == 0:
                client.register(devices.email, PASSWORD)
            else:
                client.login(devices.email, PASSWORD)
        for kind, index, detail in steps:
            if kind == "write":
                writer = random.Random(detail)
                for _ in range(writer.randint(2, 6)):
                    random_write(devices.clients[index], writer, ids, movements)
            else:
                devices.sync(index, detail)
        _settle(devices)
        _assert_converged(devices, movements)
    finally:
        devices.close()
        shutil.rmtree(folder, ignore_errors=True)


def _settle(devices: Devices) -> None:
    """Everyone syncs until nothing is queued anywhere, then once more to pull the last
    writes."""
    for _ in range(6):
        for client in devices.clients:
            client.sync()
        if not any(client.pending() for client in devices.clients):
            break
    for client in devices.clients:
        client.sync()


def _assert_converged(devices: Devices, movements: list[Movement]) -> None:
    owner = devices.clients[0].user_id
    assert owner is not None
    store = devices.server.database.open()
    try:
        expected = server_rows(store, owner)
        assert rebuilt_rows(store, owner) == expected  # the log alone gives the same tables
        with store.snapshot() as sql:
            products = {
                row.id: row.data["quantity"]
                for (_, table, _), row in tables.load_all(sql, owner).items()
                if table == "inventory"
            }
    finally:
        store.close()

    fresh = open_client(devices.folder / "fresh.db", devices.server.url)
    try:
        fresh.login(devices.email, PASSWORD)
        fresh.sync()
        assert local_rows(fresh) == expected
    finally:
        fresh.close()

    for client in devices.clients:
        assert client.pending() == []
        assert local_rows(client) == expected
        for entity in POOL:
            shown = {r.id: dict(r) for r in _collection(client, entity).list()}
            assert shown == {
                id_: {
                    k: v
                    for k, v in data.items()
                    if k not in ("id", "version", "created_at", "updated_at")
                }
                for (kind, id_), (_, deleted, data) in expected.items()
                if kind == entity and not deleted
            }

    refused = {r.op_id for client in devices.clients for r in client.rejections()}
    for product, quantity in products.items():
        applied = [m.delta for m in movements if m.product == product and m.op_id not in refused]
        assert quantity == INITIAL_STOCK + sum(applied)


# -- a real process, killed ----------------------------------------------------------------------

_CHILD = """
import sys
import httpx
from client_sdk import Client

class Announcing(httpx.HTTPTransport):
    def handle_request(self, request):
        print("request", flush=True)
        return super().handle_request(request)

path, url, product, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with Client(path, url, transport=Announcing(), batch_size=3) as client:
    if not client.pending():
        for _ in range(count):
            client.inventory.adjust_stock(product, delta=1, reason="restock")
    print("queued", flush=True)
    client.sync()
    print("done", flush=True)
"""


def test_a_client_process_killed_mid_sync_loses_nothing_and_applies_nothing_twice(
    server: Server, tmp_path: Path
) -> None:
    email, count = new_email(), 60
    owner = open_client(tmp_path / "owner.db", server.url)
    owner.register(email, PASSWORD)
    product = owner.inventory.create(sku="K", name="Keys", quantity=INITIAL_STOCK)
    owner.sync()
    path = tmp_path / "killed.db"
    with open_client(path, server.url) as device:
        device.login(email, PASSWORD)
        device.sync()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", _CHILD, str(path), server.url, str(product.id), str(count)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    kill_at = random.Random().randint(1, 15)  # any moment will do: the outcome may not depend on it
    seen = 0
    for line in child.stdout:
        if line.startswith("request"):
            seen += 1
            if seen == kill_at:
                child.send_signal(signal.SIGKILL)
                break
    child.wait(30)

    with open_client(path, server.url) as device:
        assert device.inventory.get(product.id)["quantity"] == INITIAL_STOCK + count
        device.sync()
        assert device.pending() == []
    owner.sync()
    assert owner.inventory.get(product.id)["quantity"] == INITIAL_STOCK + count
    owner.close()
