"""Several server processes against one PostgreSQL, and a server whose connections are killed.

Devices of two users push and pull through three processes at once (a server with two workers
and a second server on the same database), each request going to either at random, and some
pushes are sent again to the other one (a client retrying after a timeout). Afterwards every
device's copy equals a fresh pull, every op is in the log exactly once with the outcome its
device was told, and stock moved by exactly the sales that applied (DESIGN.md, "Scaling past
one machine"; invariants 1, 4 and 7).
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from api import Device, cost, op, product, sale, show, sign_in, sign_up, uid
from conftest import POSTGRES_URL, Server

pytestmark = pytest.mark.postgres

USERS = 2
DEVICES_PER_USER = 3
ROUNDS = 6
STOCK = 10_000


def fresh_connection_client(server: Server) -> httpx.Client:
    # No keep-alive: every request opens a connection, so the kernel spreads them over the
    # server's worker processes.
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(base_url=server.url, timeout=30, limits=limits)


def log_of(database_url: str, owners: list[str]) -> tuple[dict[str, set[int]], dict[str, str]]:
    """op_id -> transactions of its events; op_id -> status remembered under its key."""
    with psycopg.connect(database_url) as db:
        events = db.execute(
            "SELECT metadata->>'op_id', tx FROM events WHERE owner = ANY(%s::uuid[])", [owners]
        ).fetchall()
        keys = db.execute(
            "SELECT key, outcome FROM idempotency_keys WHERE owner = ANY(%s::uuid[])", [owners]
        ).fetchall()
    transactions: dict[str, set[int]] = {}
    for op_id, tx in events:
        transactions.setdefault(op_id, set()).add(tx)
    outcomes = {k.removeprefix("op:"): json.loads(bytes(v))["status"] for k, v in keys}
    return transactions, outcomes


@pytest.mark.parametrize("backend", ["postgres"])
def test_processes_sharing_one_database_converge_and_apply_each_op_once(
    server_factory: Any,
) -> None:
    first = server_factory(workers=2)
    second = server_factory(database=first.database)
    servers = [first, second]

    owners: list[Device] = []
    products: dict[str, str] = {}  # user id -> their product
    shared_shows: dict[str, str] = {}
    with first.client() as http:
        for _ in range(USERS):
            owner = sign_up(http)
            product_id, show_id = uid(), uid()
            owner.push(
                [
                    op("product", product_id, "create", product(quantity=STOCK)),
                    op("show", show_id, "create", show()),
                ]
            )
            owners.append(owner)
            products[owner.user_id] = product_id
            shared_shows[owner.user_id] = show_id

    told: dict[str, str] = {}  # op_id -> the status its device was first told
    sold: dict[str, int] = {}  # product -> units of the sales that applied
    errors: list[str] = []
    lock = threading.Lock()
    devices: list[Device] = []

    def run(owner: Device, seed: int) -> None:
        rng = random.Random(seed)
        clients = [fresh_connection_client(s) for s in servers]
        device = sign_in(clients[0], owner.email)
        with lock:
            devices.append(device)
        base = 1
        try:
            for _ in range(ROUNDS):
                device.http = rng.choice(clients)
                for change in device.sync_changes(limit=rng.randint(1, 7)):
                    if change["id"] == shared_shows[owner.user_id]:
                        base = change["version"]
                show_id, quantity = uid(), rng.randint(1, 3)
                batch = [
                    op("show", show_id, "create", show()),
                    op("cost", uid(), "create", cost(show_id)),
                    op("product", products[owner.user_id], "record_sale", sale(quantity)),
                    op("show", shared_shows[owner.user_id], "update",
                       {"fee": f"{rng.randint(1, 99999)}.00"}, base=base),
                ]  # fmt: skip
                device.http = rng.choice(clients)
                results = device.push(batch)
                if rng.random() < 0.5:  # the answer was "lost": the client sends it again
                    device.http = rng.choice(clients)
                    again = device.push(batch)
                    for result, repeat in zip(results, again, strict=True):
                        if repeat["status"] != "duplicate" or repeat["original"] != result:
                            with lock:
                                errors.append(f"retry answered {repeat}, first {result}")
                with lock:
                    for sent, result in zip(batch, results, strict=True):
                        told[sent["op_id"]] = result["status"]
                    if results[2]["status"] == "applied":
                        product_id = products[owner.user_id]
                        sold[product_id] = sold.get(product_id, 0) + quantity
            device.http = rng.choice(clients)
            device.sync_changes()
        except Exception as error:  # a failed assertion in a thread must fail the test
            with lock:
                errors.append(repr(error))
        finally:
            device.http = clients[0]

    threads = [
        threading.Thread(target=run, args=(owner, n * 10 + d))
        for n, owner in enumerate(owners)
        for d in range(DEVICES_PER_USER)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert len(devices) == USERS * DEVICES_PER_USER

    with second.client() as http:
        truths = {o.user_id: sign_in(http, o.email).state() for o in owners}
    # Convergence: each device's copy, built from its pulls through both servers, is the truth.
    for device in devices:
        copy: dict[tuple[str, str], dict[str, Any]] = {}
        device.cursor = None
        with first.client() as http:
            device.http = http
            for change in device.sync_changes():
                copy[(change["entity"], change["id"])] = change
        assert copy == truths[device.user_id]

    # Exactly once: each op recorded once, with the outcome told; events from one transaction.
    assert first.database.url is not None
    transactions, outcomes = log_of(first.database.url, [o.user_id for o in owners])
    for op_id, status in told.items():
        assert outcomes.get(op_id) == status, op_id
        assert len(transactions.get(op_id, ())) == (1 if status == "applied" else 0), op_id
    for owner in owners:
        product_id = products[owner.user_id]
        quantity = truths[owner.user_id][("product", product_id)]["data"]["quantity"]
        assert quantity == STOCK - sold.get(product_id, 0)


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_server_whose_connections_die_answers_503_then_applies_the_retry_once(
    server_factory: Any,
) -> None:
    name = f"killed_{uuid.uuid4().hex[:12]}"
    server = server_factory()
    assert server.database.url is not None
    # A second process on the same database, whose connections carry a name to find them by.
    victim = server_factory(
        database=server.database, DATABASE_URL=f"{server.database.url}&application_name={name}"
    )
    with victim.client() as http:
        device = sign_up(http)
        product_id = uid()
        device.push([op("product", product_id, "create", product(quantity=100))])
        batch = [
            op("product", product_id, "record_sale", sale(2)),
            op("show", uid(), "create", show()),
        ]
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                [name],
            ).fetchall()
        assert killed
        statuses = []
        for _ in range(20):
            response = device.push_raw(batch)
            statuses.append(response.status_code)
            if response.status_code == 200:
                break
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["code"] == "unavailable"
        assert statuses[-1] == 200, statuses
        # Answered 503 while its connections were dead (or 200 at once if the pool's check of
        # idle connections caught them first), never 500; the op applied when it was answered.
        first = response.json()["results"]
        assert [r["status"] for r in first] == ["applied", "applied"]
        again = device.push(batch)
        assert [r["status"] for r in again] == ["duplicate", "duplicate"]
        assert [r["original"] for r in again] == first
        stock = device.state()[("product", product_id)]
        assert stock["data"]["quantity"] == 98
