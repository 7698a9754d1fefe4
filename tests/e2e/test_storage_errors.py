"""Storage failures over HTTP: a write kept waiting on a lock beyond ``SYNC_LOCK_TIMEOUT``, or
one that loses a race the owner lock did not cover, answers 503 problem+json with Retry-After
(nothing was written: the same batch may simply be sent again), never 500, and the server goes
on serving."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from api import assert_problem, op, show, sign_up, uid
from conftest import Database, ServerFactory

from event_store import NewEvent, StreamId
from event_store.postgres import LOCK_OWNER, lock_key


@contextmanager
def write_lock_held(database: Database, owner: str) -> Iterator[None]:
    """Another process holds what a write of ``owner`` waits for: on SQLite the database file's
    write lock, on PostgreSQL the owner's lock."""
    if database.backend == "sqlite":
        other = sqlite3.connect(database.data_dir / "sync.db", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    assert database.url is not None
    key = [LOCK_OWNER, lock_key(uuid.UUID(owner))]
    with psycopg.connect(database.url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", key)
        try:
            yield
        finally:
            # Not left to the end of the session: the server ends that after the client left.
            other.execute("SELECT pg_advisory_unlock(%s, %s)", key)


def test_a_write_kept_waiting_on_a_lock_answers_503_and_applies_once_retried(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(SYNC_LOCK_TIMEOUT="0.2")
    with server.client() as http:
        device = sign_up(http)
        batch = [op("show", uid(), "create", show())]
        with write_lock_held(server.database, device.user_id):
            response = device.push_raw(batch)
            assert_problem(response, 503, "unavailable")
            assert int(response.headers["retry-after"]) >= 1
            # Readers are not held, and the refused write left nothing behind.
            assert device.pull()["changes"] == []
        assert [r["status"] for r in device.push(batch)] == ["applied"]
        assert [r["status"] for r in device.push(batch)] == ["duplicate"]


def test_a_write_that_loses_a_race_answers_503_and_writes_nothing(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    with server.client() as http:
        device = sign_up(http)
        show_id = uid()
        device.push([op("show", show_id, "create", show())])
        # What a race the owner lock did not cover leaves: another writer appended to the show
        # behind the read table's back, so the row says version 1 and the log says 2.
        with server.database.open() as store:
            stream = StreamId("show", uuid.UUID(show_id))
            store.append(uuid.UUID(device.user_id), [NewEvent(stream, "show.updated", {})])
        response = device.push_raw([op("show", show_id, "update", {"city": "Lyon"}, base=1)])
        assert_problem(response, 503, "concurrent_write")
        assert int(response.headers["retry-after"]) >= 1
        assert device.state()[("show", show_id)]["data"]["city"] == "Madrid"
        # The server goes on serving.
        assert [r["status"] for r in device.push([op("show", uid(), "create", show())])] == [
            "applied"
        ]
