"""Many devices of one user push at once while others pull (DESIGN.md invariants 1, 3 and 4).

Every device is a session of the same user, so all writers contend for the same owner; readers
follow their cursors with small pages the whole time. Afterwards: every reader's copy equals the
server's, no reader ever saw an entity go back in version, and no write was lost (stock moved by
exactly the sales that applied; a contended show's version counts exactly the updates applied).
"""

from __future__ import annotations

import random
import threading
from typing import Any

from api import cost, op, product, sale, show, sign_in, sign_up, uid

WRITERS = 6
READERS = 3
ROUNDS = 12


def test_concurrent_pushes_and_pulls_lose_and_skip_nothing(server: Any) -> None:
    with server.client() as http:
        owner = sign_up(http)
        shared_show, shared_product = uid(), uid()
        owner.push(
            [
                op("show", shared_show, "create", show()),
                op("product", shared_product, "create", product(quantity=100_000)),
            ]
        )

    errors: list[str] = []
    done = threading.Event()
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def write(seed: int) -> None:
        rng = random.Random(seed)
        with server.client() as http:
            device = sign_in(http, owner.email)
            base = 1
            for _ in range(ROUNDS):
                show_id = uid()
                # The version this device last pulled: often stale, so some updates conflict.
                for change in device.sync_changes(limit=200):
                    if change["id"] == shared_show:
                        base = change["version"]
                batch = [
                    op("show", show_id, "create", show()),
                    op("cost", uid(), "create", cost(show_id)),  # two rows at one position
                    op("product", shared_product, "record_sale", sale(rng.randint(1, 3))),
                    op("show", shared_show, "update", {"fee": str(rng.randint(1, 99999))},
                       base=base),
                ]  # fmt: skip
                response = device.push_raw(batch)
                if response.status_code != 200:
                    errors.append(f"push {response.status_code}: {response.text}")
                    continue
                with lock:
                    results.extend(
                        {**r, "op": o}
                        for r, o in zip(response.json()["results"], batch, strict=True)
                    )

    copies: list[dict[tuple[str, str], dict[str, Any]]] = []

    def read(seed: int) -> None:
        rng = random.Random(seed)
        with server.client() as http:
            device = sign_in(http, owner.email)
            copy: dict[tuple[str, str], dict[str, Any]] = {}
            finishing = False
            while True:
                finishing = done.is_set()
                for page in device.pages(limit=rng.randint(1, 9)):
                    for change in page["changes"]:
                        key = (change["entity"], change["id"])
                        seen = copy.get(key)
                        if seen is not None and seen["version"] > change["version"]:
                            errors.append(f"{key} went back from {seen['version']}")
                        copy[key] = change
                if finishing:
                    break
            copies.append(copy)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    threads += [threading.Thread(target=read, args=(100 + n,)) for n in range(READERS)]
    for thread in threads:
        thread.start()
    for thread in threads[:WRITERS]:
        thread.join(120)
    done.set()
    for thread in threads[WRITERS:]:
        thread.join(120)

    assert errors == []
    with server.client() as http:
        truth = sign_in(http, owner.email).state()
    assert len(copies) == READERS
    for copy in copies:
        assert copy == truth

    applied_sales = sum(
        r["op"]["data"]["quantity"]
        for r in results
        if r["op"]["action"] == "record_sale" and r["status"] == "applied"
    )
    assert applied_sales > 0
    assert truth[("product", shared_product)]["data"]["quantity"] == 100_000 - applied_sales
    updates = [r for r in results if r["op"]["id"] == shared_show and r["op"]["action"] == "update"]
    applied_updates = [r for r in updates if r["status"] == "applied"]
    assert {r["status"] for r in updates} <= {"applied", "conflict"}
    assert applied_updates
    assert truth[("show", shared_show)]["version"] == 1 + len(applied_updates)
    shows = [k for k in truth if k[0] == "show"]
    assert len(shows) == 1 + WRITERS * ROUNDS
