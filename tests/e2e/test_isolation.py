"""Isolation between users (DESIGN.md invariant 5), through every endpoint that takes an id or
returns data: user B can neither read, pull, push to, nor learn the existence of user A's
entities and events. "Learn the existence" is checked by comparing B's answer about A's entity
with B's answer about an id nobody uses: they must be the same."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from api import Device, cost, op, product, sale, show, sign_up, uid, workout


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


# -- every route that names an entity, found from the OpenAPI document -----------------------

COLLECTION_OF = {"shows": "show", "costs": "cost", "workouts": "workout", "inventory": "product"}
BODIES: dict[str, dict[str, Any]] = {
    "PATCH": {"notes": "mine now", "name": "mine", "amount": "1.00"},
    "POST": {"delta": -1, "reason": "theft", "quantity": 1, "unit_price": "1.00",
             "sold_at": "2026-11-20T18:04:00Z", "exercise": "Squat", "reps": 1, "weight": "1",
             "unit": "kg"},
}  # fmt: skip


def entity_routes(http: httpx.Client) -> list[tuple[str, str]]:
    """(method, path template) of every operation whose path names one entity by ``{id}``."""
    document = http.get("/openapi.json").json()
    return [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if "{id}" in path and "{collection}" not in path and path.split("/")[2] in COLLECTION_OF
        for method in operations
        if method in ("get", "post", "patch", "put", "delete")
    ]


def answer(response: httpx.Response) -> str:
    """Status and body, with ids and request ids blanked out."""
    body = _UUID.sub("<id>", response.text)
    body = re.sub(r'"request_id":\s*"[^"]*"', '"request_id":""', body)
    return f"{response.status_code} {body}"


def test_every_route_answers_for_another_user_s_entity_as_for_a_missing_one(
    http: httpx.Client,
) -> None:
    victim = Victim(sign_up(http))
    mallory = sign_up(http)
    routes = entity_routes(http)
    assert len(routes) >= 10, routes  # item get, patch, delete, history, actions, per collection
    for method, template in routes:
        collection = template.split("/")[2]
        victims_id = victim.ids()[COLLECTION_OF[collection]]
        for query in ({}, {"version": "1"}, {"as_of": "2999-01-01T00:00:00Z"}):
            if method != "GET" and query:
                continue
            answers_ = []
            for id_ in (victims_id, uid()):
                response = http.request(
                    method,
                    template.replace("{id}", id_),
                    params=query,
                    json=BODIES.get(method),
                    headers=mallory.headers,
                )
                assert response.status_code < 500, (method, template, response.text)
                answers_.append(answer(response))
            assert answers_[0] == answers_[1], (method, template, query, answers_)
    # Nothing of A's moved, and A's data shows nowhere in B's lists, events, stats or reports.
    assert victim.device.state() == victim.state
    secret_ids = set(victim.ids().values()) | {victim.deleted}
    for path in ("/v1/shows", "/v1/costs", "/v1/workouts", "/v1/inventory", "/v1/events",
                 "/v1/stats", "/v1/reports/sales", "/v1/sync/pull"):  # fmt: skip
        response = http.get(path, headers=mallory.headers)
        assert response.status_code == 200, (path, response.text)
        assert not secret_ids & set(_UUID.findall(response.text)), path
        assert "A's secret" not in response.text
