"""Isolation between users (DESIGN.md invariant 5), through every endpoint that takes an id or
returns data: user B can neither read, pull, push to, nor learn the existence of user A's
entities and events. "Learn the existence" is checked by comparing B's answer about A's entity
with B's answer about an id nobody uses: they must be the same."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api import Device, cost, op, product, sale, show, sign_up, uid, workout


@pytest.fixture
def http(server: Any) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


class Victim:
    """User A with one live entity of each kind and one deleted show."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.show, self.cost, self.workout, self.product = uid(), uid(), uid(), uid()
        self.deleted = uid()
        results = device.push(
            [
                op("show", self.show, "create", show(notes="A's secret")),
                op("cost", self.cost, "create", cost(self.show)),
                op("workout", self.workout, "create", workout()),
                op("product", self.product, "create", product(quantity=5)),
                op("show", self.deleted, "create", show()),
                op("show", self.deleted, "delete", base=1),
            ]
        )
        assert {r["status"] for r in results} == {"applied"}
        self.state = device.state()

    def ids(self) -> dict[str, str]:
        return {
            "show": self.show,
            "cost": self.cost,
            "workout": self.workout,
            "product": self.product,
        }


def probes(target: dict[str, str], deleted_show: str) -> list[dict[str, Any]]:
    """Every op B could send about the entities in ``target`` (A's, or ids nobody uses)."""
    the_show = target["show"]
    return [
        op("show", the_show, "update", {"fee": "1"}, base=1),
        op("show", the_show, "delete", base=1),
        op("show", deleted_show, "update", {"fee": "1"}, base=2),
        op("cost", target["cost"], "update", {"amount": "1"}, base=1),
        op("cost", uid(), "create", cost(the_show)),
        op("cost", uid(), "create", cost(deleted_show)),
        op("workout", target["workout"], "log_set",
           {"exercise": "Squat", "reps": 1, "weight": "1", "unit": "kg"}),
        op("workout", target["workout"], "delete", base=1),
        op("product", target["product"], "record_sale", sale(1)),
        op("product", target["product"], "adjust_stock", {"delta": -1, "reason": "theft"}),
        op("product", target["product"], "update", {"name": "mine"}, base=1),
    ]  # fmt: skip


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def answers(results: list[dict[str, Any]]) -> list[str]:
    """What each result tells its sender, with ids (which the sender chose) blanked out."""
    return [
        _UUID.sub("<id>", json.dumps({k: v for k, v in r.items() if k != "op_id"})) for r in results
    ]


def test_pushes_about_another_user_s_entities_answer_as_if_they_did_not_exist(
    http: httpx.Client,
) -> None:
    victim = Victim(sign_up(http))
    mallory = sign_up(http)
    unused = {name: uid() for name in victim.ids()}

    about_victim = mallory.push(probes(victim.ids(), victim.deleted))
    about_nothing = mallory.push(probes(unused, uid()))
    assert answers(about_victim) == answers(about_nothing)
    assert all(r["status"] == "rejected" for r in about_victim)

    # A's data did not move, and B saw none of it.
    assert victim.device.state() == victim.state
    assert mallory.state() == {}


def test_creating_with_another_user_s_id_creates_one_s_own(http: httpx.Client) -> None:
    victim = Victim(sign_up(http))
    mallory = sign_up(http)
    result = mallory.push([op("show", victim.show, "create", show(city="Oslo", country="NO"))])
    # "already_exists" would leak that A uses this id.
    assert result[0]["status"] == "applied" and result[0]["version"] == 1
    assert victim.device.state() == victim.state
    assert mallory.state()[("show", victim.show)]["data"]["city"] == "Oslo"


def test_pulls_and_cursors_are_per_user(http: httpx.Client) -> None:
    victim = Victim(sign_up(http))
    mallory = sign_up(http)
    assert mallory.pull()["changes"] == []
    assert mallory.pull(since="2000-01-01T00:00:00Z")["changes"] == []
    stolen = victim.device.pull(limit=1)["cursor"]
    response = mallory.pull_raw(since=stolen)
    assert response.status_code == 400
    assert "show" not in response.text  # the refusal says nothing of A's data
