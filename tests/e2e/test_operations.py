"""Running the service: request ids, access logs, CORS, /metrics (one and several workers) and
/ready following the database down and back, over HTTP against real server processes."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api import show, sign_up
from conftest import POSTGRES_URL, Database, ServerFactory, drop_database, free_port, fresh_database


def log_lines(server: Any) -> list[dict[str, Any]]:
    lines = []
    for line in server.logs().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.2)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text`` (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', sample))
        if sample.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


@pytest.fixture
def client(server: Any) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


# -- request ids and logs ------------------------------------------------------------------------


def test_every_response_carries_a_request_id_echoed_when_sent(client: httpx.Client) -> None:
    headers = sign_up(client).headers
    answers = [
        client.get("/health"),
        client.get("/nowhere"),
        client.get("/v1/shows"),  # 401
        client.get("/v1/shows", headers=headers),
        client.get("/docs"),
        client.get("/metrics"),
    ]
    ids = [response.headers["x-request-id"] for response in answers]
    assert all(re.fullmatch(r"[0-9a-f]{32}", id_) for id_ in ids) and len(set(ids)) == len(ids)
    echoed = client.get("/v1/shows", headers={**headers, "X-Request-ID": "trace-42"})
    assert echoed.headers["x-request-id"] == "trace-42"
    unsafe = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


def test_one_structured_log_line_per_request_and_warnings_for_refusals(
    client: httpx.Client, server: Any
) -> None:
    device = sign_up(client)
    headers = device.headers
    user = device.user_id
    created = client.post("/v1/shows", json=show(), headers={**headers, "X-Request-ID": "log-1"})
    path = f"/v1/shows/{created.json()['id']}"
    client.patch(path, json={"city": "Oslo"}, headers={**headers, "X-Request-ID": "log-2"})
    client.patch(
        path, json={"city": "Rome"}, headers={**headers, "If-Match": '"1"', "X-Request-ID": "log-3"}
    )
    wait_for(lambda: any(line.get("request_id") == "log-3" for line in log_lines(server)
                         if line["msg"] == "request"))  # fmt: skip
    lines = {line["request_id"]: line for line in log_lines(server) if line["msg"] == "request"
             and line.get("request_id", "").startswith("log-")}  # fmt: skip
    assert lines["log-1"]["route"] == "/v1/shows" and lines["log-1"]["status"] == 201
    assert lines["log-2"]["route"] == "/v1/shows/{id}" and lines["log-2"]["method"] == "PATCH"
    for line in lines.values():
        assert line["user_id"] == user
        assert isinstance(line["duration_ms"], float | int)
    assert lines["log-3"]["status"] == 409
    refused = [line for line in log_lines(server) if line["msg"] == "api op refused"
               and line.get("request_id") == "log-3"]  # fmt: skip
    assert refused and refused[0]["level"] == "warning" and refused[0]["code"] == "version_conflict"
    assert device.token not in server.logs()


# -- CORS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_cors_preflight_and_exposed_headers(server_factory: ServerFactory) -> None:
    running = server_factory(SYNC_CORS_ORIGINS="https://app.example.com, https://admin.example.com")
    with running.client() as client:
        preflight = client.options(
            "/v1/shows/00000000-0000-4000-8000-000000000000",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": (
                    "authorization, content-type, if-match, idempotency-key"
                ),
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "PATCH" in preflight.headers["access-control-allow-methods"]
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert "if-match" in allowed and "idempotency-key" in allowed
        conditional_get = client.options(
            "/v1/shows/00000000-0000-4000-8000-000000000000",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization, if-none-match",
            },
        )
        assert conditional_get.status_code == 200
        foreign = client.options(
            "/v1/shows",
            headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "GET"},
        )
        assert foreign.status_code == 400
        assert "access-control-allow-origin" not in foreign.headers
        headers = sign_up(client).headers
        answer = client.post(
            "/v1/shows", json=show(), headers={**headers, "Origin": "https://admin.example.com"}
        )
        assert answer.headers["access-control-allow-origin"] == "https://admin.example.com"
        exposed = answer.headers["access-control-expose-headers"].lower()
        assert {"etag", "location", "x-request-id"} <= set(re.split(r",\s*", exposed))
        refused = client.get("/v1/shows", headers={"Origin": "https://app.example.com"})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "https://app.example.com"


# -- metrics -------------------------------------------------------------------------------------


def test_metrics_move_with_requests_ops_events_and_pulls(client: httpx.Client) -> None:
    before = client.get("/metrics").text
    headers = sign_up(client).headers
    for _ in range(3):
        assert client.post("/v1/shows", json=show(), headers=headers).status_code == 201
    client.post("/v1/shows", json=show(fee="-1"), headers=headers)
    push = {
        "client_id": str(uuid.uuid4()),
        "ops": [
            {"op_id": str(uuid.uuid4()), "entity": "show", "id": str(uuid.uuid4()),
             "action": "create", "data": show()},
            {"op_id": str(uuid.uuid4()), "entity": "nope", "id": str(uuid.uuid4()),
             "action": "create", "data": {}},
        ],
    }  # fmt: skip
    assert client.post("/v1/sync/push", json=push, headers=headers).status_code == 200
    assert len(client.get("/v1/sync/pull", headers=headers).json()["changes"]) == 4
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert moved("sync_http_requests_total", route="/v1/shows", method="POST", status="201") == 3
    assert moved("sync_http_requests_total", route="/v1/shows", status="422") == 1
    assert moved("sync_http_request_duration_seconds_count", route="/v1/shows", status="201") == 3
    assert moved("sync_ops_total", source="api", status="applied") == 3
    assert moved("sync_ops_total", source="api", status="rejected") == 1
    assert moved("sync_ops_total", source="sync", status="applied") == 1
    assert moved("sync_ops_total", source="sync", status="rejected") == 1
    assert moved("sync_events_appended_total", source="api") == 3
    assert moved("sync_events_appended_total", source="sync") == 1
    assert moved("sync_pull_changes_count") == 1 and moved("sync_pull_changes_sum") == 4
    client.request("BREW", "/health")
    assert 'method="other"' in client.get("/metrics").text  # unknown methods share one label


@pytest.mark.parametrize("backend", ["postgres"])
def test_metrics_add_up_every_worker_process(server_factory: ServerFactory) -> None:
    running = server_factory(workers=2)
    with running.client() as client:
        headers = sign_up(client).headers
        for _ in range(40):
            # A new connection each time, so that requests spread over both workers.
            with running.client() as fresh:
                assert fresh.get("/v1/shows", headers=headers).status_code == 200
        for _ in range(6):
            with running.client() as fresh:
                text = fresh.get("/metrics").text
                assert metric(text, "sync_http_requests_total", route="/v1/shows") == 40
        # min 2 connections per process (SYNC_POOL_MIN_SIZE), counted for both processes
        assert metric(text, "sync_db_pool_connections", state="size") >= 3


# -- readiness follows the database --------------------------------------------------------------


class Proxy:
    """A TCP relay to PostgreSQL that can be cut and restored, to stand for a database outage
    without stopping the database other tests use."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self.lock:
            if self.listener is not None:
                # shutdown, not only close: a thread blocked in accept() on a closed socket
                # would still take one more connection (which then outlives the outage).
                with contextlib.suppress(OSError):
                    self.listener.shutdown(socket.SHUT_RDWR)
                self.listener.close()
                self.listener = None
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                downstream, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                downstream.close()
                continue
            with self.lock:
                if self.listener is not listener:  # cut while this one was being connected
                    downstream.close()
                    upstream.close()
                    return
                self.sockets += [downstream, upstream]
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize("backend", ["postgres"])
def test_ready_turns_503_while_the_database_is_down_and_200_when_it_returns(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    direct = fresh_database("postgres", tmp_path)
    match = re.search(r"@([^/:]+):(\d+)/", POSTGRES_URL)
    assert match, POSTGRES_URL
    proxy = Proxy((match[1], int(match[2])))
    proxy.start()
    assert direct.url is not None
    relayed = Database("postgres", direct.url.replace(match[0], f"@127.0.0.1:{proxy.port}/"),
                       tmp_path / "relayed", direct.schema)  # fmt: skip
    try:
        running = server_factory(database=relayed)
        with running.client() as client:
            assert client.get("/ready").json()["status"] == "ready"
            proxy.stop()
            wait_for(lambda: client.get("/ready").status_code == 503)
            down = client.get("/ready")
            assert down.json()["status"] == "unavailable"
            assert client.get("/health").status_code == 200  # the process itself is fine
            proxy.start()
            wait_for(lambda: client.get("/ready").status_code == 200)
            headers = sign_up(client).headers
            assert client.post("/v1/shows", json=show(), headers=headers).status_code == 201
    finally:
        proxy.stop()
        drop_database(direct)
