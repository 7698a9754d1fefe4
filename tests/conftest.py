"""Fixtures shared by the whole suite: both storage backends, and real server processes.

PostgreSQL tests each get a schema of their own in the ``test`` database (set with
``SYNC_TEST_POSTGRES_URL``), so they never see each other's rows. When PostgreSQL cannot be
reached the PostgreSQL half of the suite is skipped locally and fails under ``CI=true``.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest

from event_store import EventStore, migrate, open_store
from sync_server.services import MIGRATIONS

POSTGRES_URL = os.environ.get("SYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BACKENDS = ["sqlite", "postgres"]


def _postgres_reachable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return str(error)
    return None


_pg_error: str | bool | None = False


def require_postgres() -> None:
    global _pg_error
    if _pg_error is False:
        _pg_error = _postgres_reachable()
    if _pg_error:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable: {_pg_error}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Database:
    """A fresh, empty database for one test (or module): its URL and how to drop it."""

    backend: str
    url: str | None
    data_dir: Path
    schema: str | None = None

    def env(self) -> dict[str, str]:
        env = {"SYNC_DATA_DIR": str(self.data_dir)}
        if self.url:
            env["DATABASE_URL"] = self.url
        return env

    def open(self) -> EventStore:
        return open_store(self.url, data_dir=str(self.data_dir), pool_min=1, pool_max=8)


def fresh_database(backend: str, tmp: Path) -> Database:
    if backend == "sqlite":
        return Database("sqlite", None, tmp / "data")
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    return Database("postgres", url, tmp / "data", schema)


def drop_database(database: Database) -> None:
    if database.schema:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {database.schema} CASCADE")


@pytest.fixture(autouse=True)
def root_logging_restored() -> Iterator[None]:
    """Put the root logger back as it was after each test. A command run in-process
    (``cli.main``) points it at the test's captured stderr, which is closed afterwards: every
    later log line, from any thread, would fail with "I/O operation on closed file"."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database(backend: str, tmp_path: Path) -> Iterator[Database]:
    db = fresh_database(backend, tmp_path)
    yield db
    drop_database(db)


@pytest.fixture
def store(database: Database) -> Iterator[EventStore]:
    """An empty, migrated store on each backend."""
    opened = database.open()
    migrate(opened, MIGRATIONS)
    yield opened
    opened.close()


def feed_settled(store: EventStore, position: int) -> None:
    """Wait until the global feed can show ``position``: on PostgreSQL it reads below the
    oldest transaction still running anywhere on the server (another test's, another
    process's), which may be a moment behind our own commit."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(e.position >= position for e in store.iter_all(batch=1000)):
            return
        time.sleep(0.05)
    raise AssertionError(f"the global feed never reached position {position}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Settings that keep tests fast without changing behaviour: cheap argon2, a fixed secret.
TEST_ENV = {
    "SYNC_JWT_SECRET": "test-secret-" + "x" * 40,
    "SYNC_ARGON2_MEMORY_KIB": "64",
    "SYNC_ARGON2_TIME_COST": "1",
    "SYNC_LOG_LEVEL": "info",
    "SYNC_MIGRATE_ON_START": "true",
    "SYNC_RATE_LIMIT_PER_MINUTE": "1000",
    "SYNC_RATE_LIMIT_PER_ACCOUNT_PER_MINUTE": "1000",
}


@dataclass
class Server:
    """A real ``sync-server serve`` process on 127.0.0.1 and a free port."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    database: Database
    env: dict[str, str] = field(default_factory=dict)

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(
    database: Database, tmp: Path, workers: int = 1, port: int | None = None, **env: str
) -> Server:
    port = port or free_port()
    log_path = tmp / f"server-{port}.log"
    full_env = {**os.environ, **TEST_ENV, **database.env(), **env}
    command = [
        sys.executable, "-m", "sync_server", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(command, env=full_env, stdout=log_file, stderr=log_file)
    server = Server(f"http://127.0.0.1:{port}", process, log_path, database, env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.logs()}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not become ready:\n{server.logs()}")


ServerFactory = Callable[..., Server]


@pytest.fixture
def server_factory(backend: str, tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers on a fresh database of ``backend``; all stopped and dropped afterwards.

    Calling it with ``database=`` reuses that database (several processes on one database);
    with ``port=``, that port (a server started again where a stopped one listened).
    """
    started: list[Server] = []
    databases: list[Database] = []

    def start(
        database: Database | None = None, workers: int = 1, port: int | None = None, **env: str
    ) -> Server:
        if database is None:
            database = fresh_database(backend, tmp_path)
            databases.append(database)
        server = start_server(database, tmp_path, workers=workers, port=port, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for database in databases:
        drop_database(database)


def serve_module(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, **env: str
) -> Iterator[Server]:
    """The body of a module-scoped server fixture parametrized by backend: a fresh database,
    one server on it (with ``env`` added to its environment), both gone afterwards."""
    tmp = tmp_path_factory.mktemp(f"server-{request.param}")
    database = fresh_database(request.param, tmp)
    running = start_server(database, tmp, **env)
    yield running
    running.stop()
    drop_database(database)


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per module and backend, shared by that module's tests (isolate by user)."""
    yield from serve_module(request, tmp_path_factory)


# -- the CLI, in-process ------------------------------------------------------------------------

RunCli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli_env(database: Database, store: EventStore, monkeypatch: pytest.MonkeyPatch) -> EventStore:
    """``sync-server`` commands pointed at ``store``'s database (the environment they set is
    restored afterwards)."""
    for name, value in database.env().items():
        monkeypatch.setenv(name, value)
    if not database.url:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    return store


@pytest.fixture
def run_cli(cli_env: EventStore, capsys: pytest.CaptureFixture[str]) -> RunCli:
    """``run_cli("verify")``: run a command in-process; its exit status, stdout and stderr."""
    from sync_server import cli

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = cli.main(list(argv))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    """A client of the module's shared server (tests isolate themselves by user)."""
    with server.client() as client:
        yield client
