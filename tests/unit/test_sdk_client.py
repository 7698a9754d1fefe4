"""The SDK's client against a scripted server (``httpx.MockTransport``): token refresh and
rotation, revoked sessions, batch splitting on 413, resets, and the local store's guarantees.

The scripted server applies every op and serves what was pushed back as pull pages: enough to
drive the client's paths that a real server only takes under unusual conditions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from client_sdk import (
    Changed,
    Client,
    NotAuthenticated,
    RetryPolicy,
    SessionRevoked,
    StoreInUse,
    SyncError,
)

SHOW = {"date": "2026-12-01", "city": "Madrid", "country": "ES", "fee": "100"}


class ScriptedServer:
    """Just enough of the protocol: auth with rotating tokens, push, pull."""

    def __init__(self) -> None:
        self.user_id = str(uuid.uuid4())
        self.access = "access-1"
        self.refresh = "refresh-1"
        self.spent: set[str] = set()
        self.revoked = False
        self.max_batch = 1000
        self.rows: dict[str, dict[str, Any]] = {}
        self.log: list[str] = []
        self.pushes: list[int] = []
        self.refreshes = 0
        self.reset_next_pull = False
        self.expire_next = 0
        self.lock = threading.Lock()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            return self._handle(request)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in ("/v1/auth/register", "/v1/auth/login"):
            user = {"id": self.user_id, "email": "a@example.com", "name": None}
            status = 201 if path.endswith("register") else 200
            return httpx.Response(
                status,
                json={"user": user, "access_token": self.access, "refresh_token": self.refresh,
                      "expires_in": 900},
            )  # fmt: skip
        if path == "/v1/auth/refresh":
            self.refreshes += 1
            token = json.loads(request.content)["refresh_token"]
            if self.revoked or token in self.spent:
                self.revoked = True
                return _problem(401, "refresh_token_reused")
            if token != self.refresh:
                return _problem(401, "invalid_refresh_token")
            self.spent.add(token)
            self.access = f"access-{self.refreshes + 1}"
            self.refresh = f"refresh-{self.refreshes + 1}"
            return httpx.Response(
                200,
                json={"access_token": self.access, "refresh_token": self.refresh, "expires_in": 9},
            )
        if request.headers.get("authorization") != f"Bearer {self.access}" or self.revoked:
            return _problem(401, "token_expired")
        if self.expire_next:
            self.expire_next -= 1
            self.access = self.access + "-expired"
            return _problem(401, "token_expired")
        if path == "/v1/sync/push":
            return self._push(json.loads(request.content))
        if path == "/v1/sync/pull":
            return self._pull(request.url.params.get("since"))
        return _problem(404, "not_found")

    def _push(self, body: dict[str, Any]) -> httpx.Response:
        ops = body["ops"]
        if len(ops) > self.max_batch:
            return _problem(413, "too_many_ops")
        self.pushes.append(len(ops))
        results = []
        for op in ops:
            key = f"{op['entity']}:{op['id']}"
            row = self.rows.get(key, {"version": 0, "data": {}})
            version = row["version"] + 1
            self.rows[key] = {"version": version, "data": {**row["data"], **op.get("data", {})},
                              "entity": op["entity"], "id": op["id"]}  # fmt: skip
            self.log.append(key)
            results.append({"op_id": op["op_id"], "status": "applied", "version": version})
        return httpx.Response(200, json={"results": results, "cursor": "c"})

    def _pull(self, since: str | None) -> httpx.Response:
        if self.reset_next_pull and since is not None:
            self.reset_next_pull = False
            return httpx.Response(
                200, json={"changes": [], "cursor": "c0", "has_more": True, "reset": True}
            )
        changes = [
            {"entity": r["entity"], "id": r["id"], "op": "upsert", "version": r["version"],
             "data": {"id": r["id"], "version": r["version"], **r["data"]}}
            for r in self.rows.values()
        ]  # fmt: skip
        return httpx.Response(
            200, json={"changes": changes, "cursor": "c-all", "has_more": False, "reset": False}
        )


def _problem(status: int, code: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"type": "about:blank", "title": "x", "status": status, "code": code},
        headers={"content-type": "application/problem+json"},
    )


Opener = Callable[..., Client]


@pytest.fixture
def fake() -> ScriptedServer:
    return ScriptedServer()


@pytest.fixture
def open_client(fake: ScriptedServer, tmp_path: Path) -> Opener:
    def open_(name: str = "device", **options: Any) -> Client:
        options.setdefault("transport", fake.transport())
        options.setdefault("retry", RetryPolicy(attempts=2, base_delay=0))
        return Client(tmp_path / f"{name}.db", "http://server", sleep=lambda s: None, **options)

    return open_


def stored_tokens(client: Client) -> tuple[str | None, str | None]:
    with client.store.transaction():
        return client.store.get_meta("access_token"), client.store.get_meta("refresh_token")


def together(threads: int, call: Callable[[], object]) -> list[BaseException]:
    """Run ``call`` in that many threads at once; what they raised."""
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            call()
        except BaseException as error:
            with lock:
                errors.append(error)

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return errors


# -- tokens --------------------------------------------------------------------------------------


def test_an_expired_access_token_is_refreshed_once_and_the_new_pair_stored(
    fake: ScriptedServer, open_client: Opener
) -> None:
    with open_client() as client:
        client.login("a@example.com", "password1")
        client.shows.create(SHOW)
        fake.expire_next = 1
        assert client.sync().applied == 1
        assert fake.refreshes == 1
        assert stored_tokens(client) == (fake.access, fake.refresh) == ("access-2", "refresh-2")


def test_threads_hitting_401_together_refresh_only_once(
    fake: ScriptedServer, open_client: Opener
) -> None:
    with open_client() as client:
        client.login("a@example.com", "password1")
        fake.access = "rotated-elsewhere"  # every request now gets a 401 first
        assert together(6, lambda: client.api.pull(None, 10)) == []
        assert fake.refreshes == 1  # a second refresh would present a spent token


def test_calls_that_wait_for_a_refresh_that_finds_the_session_over_all_say_so(
    fake: ScriptedServer, open_client: Opener
) -> None:
    all_sent = threading.Barrier(6)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/sync/pull":
            all_sent.wait(30)  # every call holds the session when it is refused
        return fake.handle(request)

    with open_client(transport=httpx.MockTransport(handle)) as client:
        client.login("a@example.com", "password1")
        fake.access = "rotated-elsewhere"
        fake.revoked = True
        errors = together(6, lambda: client.api.pull(None, 10))
        assert len(errors) == 6 and all(isinstance(e, SessionRevoked) for e in errors)
        assert fake.refreshes == 1


def test_a_refused_refresh_ends_the_session_and_keeps_the_data(
    fake: ScriptedServer, open_client: Opener
) -> None:
    with open_client() as client:
        client.login("a@example.com", "password1")
        show = client.shows.create(SHOW)
        fake.revoked = True
        with pytest.raises(SessionRevoked) as ended:
            client.sync()
        assert ended.value.code == "refresh_token_reused"
        assert stored_tokens(client) == (None, None) and not client.signed_in
        assert [op.id for op in client.pending()] == [show.id]
        with pytest.raises(NotAuthenticated):
            client.sync()


def test_a_401_after_a_successful_refresh_ends_the_session(
    fake: ScriptedServer, open_client: Opener
) -> None:
    with open_client() as client:
        client.login("a@example.com", "password1")
        fake.expire_next = 2
        with pytest.raises(SessionRevoked):
            client.sync()
        assert fake.refreshes == 1


# -- push and pull -------------------------------------------------------------------------------


def test_a_batch_too_large_for_the_server_is_split(
    fake: ScriptedServer, open_client: Opener
) -> None:
    fake.max_batch = 3
    with open_client(batch_size=10) as client:
        client.login("a@example.com", "password1")
        made = [client.shows.create(SHOW, notes=str(n)).id for n in range(10)]
        assert client.sync().applied == 10
        assert fake.pushes == [2, 2, 2, 2, 2]  # 10 refused, 5 refused, then pairs
        assert fake.log == [f"show:{id_}" for id_ in made]  # in the order they were made


def test_a_reset_drops_the_copy_and_pulls_again(fake: ScriptedServer, open_client: Opener) -> None:
    with open_client() as client:
        client.login("a@example.com", "password1")
        client.shows.create(SHOW)
        client.sync()
        fake.reset_next_pull = True
        report = client.sync()
        assert (report.resets, report.pulled) == (1, 1)
        assert len(client.shows.list()) == 1


def test_an_answer_that_does_not_match_the_ops_sent_fails_the_sync_and_keeps_them(
    open_client: Opener, fake: ScriptedServer
) -> None:
    def wrong(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/sync/push":
            return httpx.Response(200, json={"results": [], "cursor": "c"})
        return fake.handle(request)

    with open_client(transport=httpx.MockTransport(wrong)) as client:
        client.login("a@example.com", "password1")
        client.shows.create(SHOW)
        with pytest.raises(SyncError):
            client.sync()
        assert len(client.pending()) == 1


# -- the store -----------------------------------------------------------------------------------


def test_one_process_per_store_file(open_client: Opener) -> None:
    with open_client("phone"), pytest.raises(StoreInUse):
        open_client("phone")
    open_client("phone").close()  # free again once closed


def test_queued_ops_and_tokens_survive_a_reopen(fake: ScriptedServer, open_client: Opener) -> None:
    with open_client("phone") as client:
        client.login("a@example.com", "password1")
        show = client.shows.create(SHOW)
        client_id = client.client_id
    with open_client("phone") as again:
        assert again.client_id == client_id
        assert again.shows.get(show.id)["city"] == "Madrid"
        assert again.signed_in
        assert again.sync().applied == 1


def test_the_store_file_is_private(open_client: Opener, tmp_path: Path) -> None:
    open_client("private").close()
    assert (tmp_path / "private.db").stat().st_mode & 0o077 == 0


def test_the_sdk_depends_on_schemas_only() -> None:
    """DESIGN.md: ``client_sdk`` speaks HTTP and shares nothing with the server but schemas."""
    probe = (
        "import sys, client_sdk; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'event_store', 'projections', 'sync_server', 'starlette', 'psycopg', 'uvicorn'}))"
    )
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "[]"


def test_a_sync_started_from_its_own_listener_fails_instead_of_hanging(
    open_client: Opener,
) -> None:
    with open_client() as client:
        client.login("a@example.com", "password1")
        failures: list[BaseException] = []

        def sync_again(changed: Changed) -> None:
            if changed.origin == "sync":
                try:
                    client.sync()
                except SyncError as error:
                    failures.append(error)

        client.on_change(sync_again)
        client.shows.create(SHOW)
        client.sync()
        assert failures and "listener" in str(failures[0])
