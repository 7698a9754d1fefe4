"""What end-to-end tests need to speak to a server as a client would: users, devices, ops."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

PASSWORD = "correct horse battery staple"


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    return body


def uid() -> str:
    return str(uuid.uuid4())


def op(
    entity: str,
    id: str,
    action: str,
    data: dict[str, Any] | None = None,
    base: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    built: dict[str, Any] = {"op_id": uid(), "entity": entity, "id": id, "action": action}
    if data is not None:
        built["data"] = data
    if base is not None:
        built["base_version"] = base
    return {**built, **extra}


def show(**fields: Any) -> dict[str, Any]:
    return {"date": "2026-12-01", "city": "Madrid", "country": "ES", "fee": "12000.00", **fields}


def cost(show_id: str, **fields: Any) -> dict[str, Any]:
    return {"show_id": show_id, "type": "sound", "amount": "500.00", **fields}


def workout(**fields: Any) -> dict[str, Any]:
    squat = {"name": "Squat", "sets": [{"reps": 5, "weight": "100", "unit": "kg"}]}
    return {"date": "2026-11-20", "name": "Legs", "exercises": [squat], **fields}


def product(**fields: Any) -> dict[str, Any]:
    return {"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": "T-shirt", "quantity": 10, **fields}


def sale(quantity: int, **fields: Any) -> dict[str, Any]:
    return {"quantity": quantity, "unit_price": "4.50", "sold_at": "2026-11-20T18:04:00Z", **fields}


@dataclass
class Device:
    """One signed-in installation of a user: its own session, client id and pull cursor."""

    http: httpx.Client
    token: str
    email: str
    user_id: str
    client_id: str = field(default_factory=uid)
    cursor: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    def push_raw(self, ops: list[dict[str, Any]], **envelope: Any) -> httpx.Response:
        body = {"client_id": self.client_id, "ops": ops, **envelope}
        return self.http.post("/v1/sync/push", json=body, headers=self.headers)

    def push(self, ops: list[dict[str, Any]], **envelope: Any) -> list[dict[str, Any]]:
        response = self.push_raw(ops, **envelope)
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        assert [r["op_id"] for r in results] == [o["op_id"] for o in ops]
        return results

    def pull_raw(self, params: Any = None, **named: Any) -> httpx.Response:
        """``params``: query parameters as httpx takes them (pairs repeat a name), else
        ``named``."""
        return self.http.get("/v1/sync/pull", params=params or named, headers=self.headers)

    def pull(self, **params: Any) -> dict[str, Any]:
        response = self.pull_raw(**params)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    def pages(self, limit: int = 500, **params: Any) -> Iterator[dict[str, Any]]:
        """Follow this device's cursor until ``has_more`` is false."""
        while True:
            since = {"since": self.cursor} if self.cursor else {}
            page = self.pull(limit=limit, **since, **params)
            self.cursor = page["cursor"]
            yield page
            if not page["has_more"]:
                return

    def sync_changes(self, limit: int = 500) -> list[dict[str, Any]]:
        return [change for page in self.pages(limit) for change in page["changes"]]

    def state(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Everything the server holds for this user, pulled from the beginning."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        since: dict[str, str] = {}
        while True:
            page = self.pull(limit=5000, **since)
            for change in page["changes"]:
                rows[(change["entity"], change["id"])] = change
            since = {"since": page["cursor"]}
            if not page["has_more"]:
                return rows


def sign_up(http: httpx.Client, email: str | None = None) -> Device:
    email = email or new_email()
    response = http.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    body = response.json()
    return Device(http, body["access_token"], email, body["user"]["id"])


def sign_in(http: httpx.Client, email: str) -> Device:
    """Another device of the same user: a session of its own."""
    response = http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    return Device(http, body["access_token"], email, body["user"]["id"])
