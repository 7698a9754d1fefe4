"""The PostgreSQL store when its connections break or the database is gone: every call raises
``StoreUnavailable`` (the server's 503), never a driver error and never a wait without end, and
the pool heals by itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import POSTGRES_URL, Database, drop_database, free_port, fresh_database

from event_store import EventStore, StoreUnavailable, open_store
from event_store import postgres as backend

pytestmark = pytest.mark.postgres


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = fresh_database("postgres", tmp_path)
    yield db
    drop_database(db)


@pytest.fixture
def named() -> str:
    """An application_name only this test's connections carry, to find and kill them."""
    return f"outage_{uuid.uuid4().hex[:12]}"


def open_named(database: Database, name: str, size: int = 3) -> EventStore:
    assert database.url is not None
    return open_store(
        f"{database.url}&application_name={name}", pool_min=size, pool_max=size, pool_timeout=2
    )


def kill_connections(name: str) -> int:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [name],
        ).fetchall()
    return len(rows)


def select_one(store: EventStore) -> int:
    with store.sql() as sql:
        row = sql.fetchone("SELECT 1")
    assert row is not None
    return int(row[0])


def warm_up(store: EventStore, size: int) -> None:
    """Every connection of the pool opened and idle."""
    store.pool.wait(10)  # type: ignore[attr-defined]
    assert select_one(store) == 1
    assert store.pool.get_stats()["pool_size"] == size  # type: ignore[attr-defined]


def test_a_broken_connection_is_unavailable_then_the_pool_heals(
    database: Database, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend, "IDLE_CHECK_AFTER", 1e9)  # no check before use
    store = open_named(database, named)
    try:
        warm_up(store, 3)
        assert kill_connections(named) == 3
        outcomes: list[str] = []
        for _ in range(10):
            try:
                select_one(store)
            except StoreUnavailable:
                outcomes.append("unavailable")
            else:
                outcomes.append("ok")
                break
        # The first call got a dead connection: a StoreUnavailable, not a psycopg error. The
        # broken connections are then dropped and replaced, without anyone restarting anything.
        assert outcomes[0] == "unavailable"
        assert outcomes[-1] == "ok"
        assert select_one(store) == 1
    finally:
        store.close()


def test_idle_connections_are_checked_before_use(
    database: Database, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend, "IDLE_CHECK_AFTER", 0.0)  # every connection counts as idle
    store = open_named(database, named)
    try:
        warm_up(store, 3)
        assert kill_connections(named) == 3
        # The database restarted while the connections sat in the pool: nobody sees it.
        assert select_one(store) == 1
    finally:
        store.close()


def test_an_unreachable_database_is_unavailable_not_a_wait_without_end() -> None:
    # Nothing listens on this port: connecting fails at once, and every call gives up after
    # the pool timeout (then sooner, once a failure has been seen).
    store = open_store(f"postgresql://postgres@127.0.0.1:{free_port()}/test", pool_timeout=0.5)
    try:
        for _ in range(3):
            with pytest.raises(StoreUnavailable):
                select_one(store)
    finally:
        store.close()


def test_once_the_database_is_found_down_requests_stop_waiting_for_connections() -> None:
    # A request that waits for a connection holds one of the server's threads: while the
    # database is known to be down, each should only take a connection the pool already has,
    # and once a call goes through again, requests may wait as before.
    health = backend._PoolHealth(timeout=5.0)
    assert health.wait() == 5.0
    health.lost()
    assert health.wait() == backend.SUSPECT_TIMEOUT
    health.timed_out()
    assert health.wait() == backend.DOWN_TIMEOUT
    health.worked()
    assert health.wait() == backend.SUSPECT_TIMEOUT


def test_a_timeout_while_the_database_looks_well_is_load_not_an_outage() -> None:
    health = backend._PoolHealth(timeout=5.0)
    health.timed_out()  # every connection busy: wait as long as before
    assert health.wait() == 5.0
