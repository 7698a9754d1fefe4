"""Helpers for the client SDK's end-to-end tests: fault injection, clients, server state.

``FaultyTransport`` sits under the SDK's httpx client and follows a plan, one entry per HTTP
request (retries included): let it through, lose the answer after the server committed, refuse
to connect, or "crash" (raise ``Crash``, a ``BaseException`` nothing in the SDK catches) before
or after the server saw the request.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import httpx
import msgspec

from client_sdk import Client, RetryPolicy
from client_sdk.store import StoredRow
from event_store import EventStore
from projections import tables
from projections.apply import apply_events
from projections.rows import ENTITIES, ReadRow, RowKey

PASSWORD = "correct horse battery staple"
Fault = Literal["ok", "lose", "down", "crash_before", "crash_after"]


Copy = dict[tuple[str, UUID], tuple[int, bool, Any]]
"""A copy of one user's read tables: (entity, id) -> (version, deleted, data or None)."""


class Crash(BaseException):
    """The process died here (simulated): nothing after this point ran."""


class FaultyTransport(httpx.BaseTransport):
    def __init__(self, plan: Iterable[Fault] = ()) -> None:
        self.inner = httpx.HTTPTransport()
        self.plan: deque[Fault] = deque(plan)
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        fault = self.plan.popleft() if self.plan else "ok"
        if fault == "down":
            raise httpx.ConnectError("injected: network down", request=request)
        if fault == "crash_before":
            raise Crash("before the request left")
        response = self.inner.handle_request(request)
        response.read()
        if fault == "lose":
            response.close()
            raise httpx.ReadError("injected: the answer was lost", request=request)
        if fault == "crash_after":
            response.close()
            raise Crash("after the server answered")
        return response

    def close(self) -> None:
        self.inner.close()


def new_email() -> str:
    return f"sdk-{uuid.uuid4().hex[:12]}@example.com"


def fast_retry() -> RetryPolicy:
    return RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)


def open_client(path: Path | str, url: str, **options: Any) -> Client:
    """A client that never sleeps between retries (tests assert outcomes, not timing)."""
    options.setdefault("retry", fast_retry())
    options.setdefault("sleep", lambda seconds: None)
    return Client(path, url, **options)


class Devices:
    """``devices(name, **options)``: a client on its own file in ``folder``, signed in on the
    server at ``url`` as one new user (the first device registers it); ``close()`` closes
    them all."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url = url
        self.folder = folder
        self.email = new_email()
        self.opened: list[Client] = []

    def __call__(self, name: str, **options: Any) -> Client:
        client = open_client(self.folder / f"{name}.db", self.url, **options)
        if self.opened:
            client.login(self.email, PASSWORD)
        else:
            client.register(self.email, PASSWORD)
        self.opened.append(client)
        return client

    def close(self) -> None:
        for client in self.opened:
            client.close()


def sign_out_elsewhere(client: Client, url: str) -> None:
    """End ``client``'s session on the server (as a logout on another device does), leaving
    its store untouched."""
    with client.store.transaction():
        refresh = client.store.get_meta("refresh_token")
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/v1/auth/logout", json={"refresh_token": refresh}).status_code == 204


def local_rows(client: Client) -> Copy:
    """The client's copy of the read tables: (entity, id) -> (version, deleted, data)."""
    with client.store.transaction():
        rows: list[StoredRow] = client.store.rows()
    return {(r.entity, r.id): (r.version, r.deleted, None if r.deleted else r.data) for r in rows}


def server_rows(store: EventStore, owner: UUID) -> Copy:
    """The server's read tables for ``owner``, in the same shape, straight from the database."""
    with store.snapshot() as sql:
        found = tables.load_all(sql, owner)
    return _copy({(table, row.id): row for (_, table, _), row in found.items()})


def rebuilt_rows(store: EventStore, owner: UUID) -> Copy:
    """The read tables of ``owner`` rebuilt from the log alone, by the projectors, in the
    same shape."""
    rows: dict[RowKey, ReadRow] = {}
    apply_events(rows, store.read_owner(owner, 0, 10**9))
    return _copy(rows)


def _copy(rows: dict[RowKey, ReadRow]) -> Copy:
    return {
        (ENTITIES[table], row.id): (
            row.version,
            row.deleted,
            None if row.deleted else msgspec.json.decode(tables.body_of(row)),
        )
        for (table, _), row in rows.items()
    }
