"""The SQLite store when SQLite refuses a write: a full disk is ``StoreUnavailable`` (the
server's 503), never a driver error; a refused ``COMMIT`` rolls back; and either way nothing of
the transaction is kept and the next one works."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from event_store import EventStore, NewEvent, StoreUnavailable, StreamId
from event_store.sqlite import SqliteStore

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def created(**data: object) -> NewEvent:
    return NewEvent(StreamId("show", uuid.uuid4()), "show.created", dict(data))


@contextmanager
def disk_full(store: EventStore) -> Iterator[None]:
    """The database may not grow by a single page: SQLite's own "database or disk is full"."""
    assert isinstance(store, SqliteStore)
    with store.raw_write() as connection:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {pages}")
    try:
        yield
    finally:
        with store.raw_write() as connection:
            connection.execute("PRAGMA max_page_count = 4294967294")


def test_a_full_disk_is_unavailable_and_keeps_nothing(store: EventStore) -> None:
    owner = uuid.uuid4()
    big = created(notes="x" * 200_000)  # needs new pages, whatever the free ones
    with disk_full(store):
        with pytest.raises(StoreUnavailable):
            store.append(owner, [big])
        assert store.read_owner(owner) == []  # readers go on
    assert store.read_owner(owner) == []
    store.append(owner, [big])
    assert [e.stream for e in store.read_owner(owner)] == [big.stream]


def test_a_refused_commit_rolls_back_and_the_next_transaction_works(store: EventStore) -> None:
    owner = uuid.uuid4()
    kept, lost = created(), created()
    with pytest.raises(sqlite3.IntegrityError), store.transaction(owner) as tx:
        tx.append([lost])
        # A constraint checked only at COMMIT: SQLite refuses the COMMIT and leaves the
        # transaction open, on the one writer connection every later write needs.
        tx.sql.execute("PRAGMA defer_foreign_keys = ON")
        tx.sql.execute(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at) "
            "VALUES (?, ?, '', '', '')",
            [uuid.uuid4(), uuid.uuid4()],
        )
    store.append(owner, [kept])
    assert [e.stream for e in store.read_owner(owner)] == [kept.stream]
    with store.snapshot() as sql:
        assert sql.fetchall("SELECT id FROM sessions") == []
