"""The PostgreSQL store never waits without end: every pooled connection carries the lock and
idle-transaction timeouts and TCP keepalives it was given, a transaction the server ended for
sitting idle is ``StoreUnavailable`` (the server's 503), after which the pool goes on, and no
schema ever waits for the locks of another sharing its database."""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
from conftest import POSTGRES_URL, Database, drop_database, fresh_database

from event_store import (
    EventStore,
    NewEvent,
    StoreUnavailable,
    StreamId,
    Timeouts,
    migrate,
    open_store,
)
from sync_server.services import MIGRATIONS

pytestmark = pytest.mark.parametrize("backend", ["postgres"])

WAIT = 30.0  # generous: only bounds a broken run


def opened(database: Database, timeouts: Timeouts, size: int = 3) -> EventStore:
    return open_store(database.url, pool_min=size, pool_max=size, timeouts=timeouts)


def test_every_pooled_connection_carries_the_timeouts(database: Database) -> None:
    timeouts = Timeouts(
        lock=1.5, idle_in_transaction=42, keepalives_idle=11, keepalives_interval=6,
        keepalives_count=4,
    )  # fmt: skip
    with opened(database, timeouts) as store, ExitStack() as stack:
        # All three at once: three different connections.
        sqls = [stack.enter_context(store.sql()) for _ in range(3)]
        pids = set()
        for sql in sqls:
            pid, lock, idle = sql.fetchone(  # type: ignore[misc]
                "SELECT pg_backend_pid(), current_setting('lock_timeout'), "
                "current_setting('idle_in_transaction_session_timeout')"
            )
            pids.add(pid)
            assert (lock, idle) == ("1500ms", "42s")
            options = sql.connection.info.get_parameters()  # type: ignore[attr-defined]
            assert options["keepalives"] == "1"
            assert (
                options["keepalives_idle"],
                options["keepalives_interval"],
                options["keepalives_count"],
            ) == ("11", "6", "4")
        assert len(pids) == 3


def wait_until_ended(pid: int) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        deadline = time.monotonic() + WAIT
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the idle transaction was never ended"
            time.sleep(0.05)


def test_a_transaction_left_idle_is_ended_and_the_call_is_unavailable(
    database: Database,
) -> None:
    with opened(database, Timeouts(idle_in_transaction=0.1), size=1) as store:
        with pytest.raises(StoreUnavailable), store.sql() as sql:
            row = sql.fetchone("SELECT pg_backend_pid()")
            assert row is not None
            wait_until_ended(row[0])  # a caller stuck mid-transaction, its locks released
            sql.fetchone("SELECT 1")
        with store.sql() as sql:
            assert sql.fetchone("SELECT 1") == (1,)


def test_a_schema_never_waits_for_appends_held_in_another(
    database: Database, tmp_path: Path
) -> None:
    # Advisory locks belong to the database: a rebuild or an import holding one schema's log
    # still must not hold the appends of another schema in the same database.
    neighbour_db = fresh_database("postgres", tmp_path)
    try:
        with (
            opened(database, Timeouts(lock=0.2), size=1) as store,
            opened(neighbour_db, Timeouts(lock=0.2), size=1) as neighbour,
        ):
            migrate(store, MIGRATIONS)
            migrate(neighbour, MIGRATIONS)
            with neighbour.sql() as held:
                neighbour.hold_appends(held)
                store.append(
                    uuid.uuid4(), [NewEvent(StreamId("show", uuid.uuid4()), "show.created", {})]
                )
    finally:
        drop_database(neighbour_db)
