"""``projection_state``: each projection's definition, epoch, checkpoint and lease.

* ``definition`` is the version of the projector code the rows were built with, ``epoch`` the
  generation clients' cursors carry: a projection rebuilt under another definition gets a new
  epoch, and every cursor of the old one is answered ``reset``.
* The checkpoint is a catch-up projection's place in the global feed. It is written in the same
  transaction as the rows it accounts for, under the row lock ``lock`` takes, so that an event
  is applied exactly once however many runners there are.
* The lease is for jobs that span many transactions (a rebuild): one holder at a time, renewed
  as it goes, taken over by another once it has expired (its holder died).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from event_store import Checkpoint, EventStore, Sql, utc_now

_COLUMNS = "name, definition, epoch, checkpoint_tx, checkpoint_position, lease_holder, lease_until"


@dataclass(frozen=True)
class State:
    name: str
    definition: int
    epoch: int
    checkpoint: Checkpoint
    lease_holder: str | None
    lease_until: datetime | None


def _state(row: tuple[object, ...]) -> State:
    name, definition, epoch, tx, position, holder, until = row
    return State(
        str(name),
        int(definition),  # type: ignore[call-overload]
        int(epoch),  # type: ignore[call-overload]
        Checkpoint(int(tx), int(position)),  # type: ignore[call-overload]
        None if holder is None else str(holder),
        until,  # type: ignore[arg-type]
    )


def ensure(sql: Sql, name: str, definition: int) -> None:
    """Give a projection its row if it has none yet (epoch 1, from the start of the feed)."""
    sql.execute(
        "INSERT INTO projection_state (name, definition, epoch) VALUES (?, ?, 1) "
        "ON CONFLICT (name) DO NOTHING",
        [name, definition],
    )


def read(sql: Sql, name: str) -> State | None:
    row = sql.fetchone(f"SELECT {_COLUMNS} FROM projection_state WHERE name = ?", [name])
    return None if row is None else _state(row)


def lock(sql: Sql, name: str) -> State | None:
    """The projection's row, locked until ``sql``'s transaction ends; None when another
    transaction holds it (PostgreSQL; on SQLite the write transaction already excludes every
    other writer)."""
    query = f"SELECT {_COLUMNS} FROM projection_state WHERE name = ?"
    if sql.backend == "postgres":
        query += " FOR UPDATE SKIP LOCKED"
    row = sql.fetchone(query, [name])
    return None if row is None else _state(row)


def save_checkpoint(sql: Sql, name: str, checkpoint: Checkpoint) -> None:
    sql.execute(
        "UPDATE projection_state SET checkpoint_tx = ?, checkpoint_position = ? WHERE name = ?",
        [checkpoint.tx, checkpoint.position, name],
    )


def new_epoch(sql: Sql, name: str, definition: int, checkpoint: Checkpoint | None = None) -> int:
    """Start a new epoch under ``definition`` (and, if given, from ``checkpoint``)."""
    query = "UPDATE projection_state SET epoch = epoch + 1, definition = ?"
    params: list[object] = [definition]
    if checkpoint is not None:
        query += ", checkpoint_tx = ?, checkpoint_position = ?"
        params += [checkpoint.tx, checkpoint.position]
    sql.execute(query + " WHERE name = ?", [*params, name])
    row = sql.fetchone("SELECT epoch FROM projection_state WHERE name = ?", [name])
    assert row is not None
    return int(row[0])


# -- leases ----------------------------------------------------------------------------------


class LeaseHeld(Exception):
    """Another process holds the lease."""

    def __init__(self, name: str, holder: str, until: datetime) -> None:
        super().__init__(
            f"{name} is busy: {holder} holds it until {until:%Y-%m-%d %H:%M:%S} UTC "
            "(renewed while it works)"
        )
        self.holder = holder


class LeaseLost(Exception):
    """This process's lease expired and was taken over: its work must stop."""


def holder_id() -> str:
    """Who holds a lease: readable in ``projection_state``, unique per process and call."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Lease:
    """A lease on one projection, held by ``holder`` for ``ttl`` at a time."""

    store: EventStore
    name: str
    holder: str
    ttl: timedelta = timedelta(seconds=60)

    def acquire(self) -> None:
        """Take the lease, or raise ``LeaseHeld`` when a live holder has it."""
        now = utc_now()
        with self.store.sql() as sql:
            taken = sql.execute(
                "UPDATE projection_state SET lease_holder = ?, lease_until = ? WHERE name = ? "
                "AND (lease_holder IS NULL OR lease_holder = ? OR lease_until < ?)",
                [self.holder, now + self.ttl, self.name, self.holder, now],
            )
            if not taken:
                current = read(sql, self.name)
                if current is None:
                    raise LookupError(f"no projection named {self.name!r}")
                assert current.lease_holder is not None and current.lease_until is not None
                raise LeaseHeld(self.name, current.lease_holder, current.lease_until)

    def renew(self, sql: Sql) -> None:
        """Extend the lease inside ``sql``'s transaction; ``LeaseLost`` (and that transaction
        must roll back) when another holder has taken it over."""
        renewed = sql.execute(
            "UPDATE projection_state SET lease_until = ? WHERE name = ? AND lease_holder = ?",
            [utc_now() + self.ttl, self.name, self.holder],
        )
        if not renewed:
            raise LeaseLost(f"the lease on {self.name} was taken over by another process")

    def release(self) -> None:
        with self.store.sql() as sql:
            sql.execute(
                "UPDATE projection_state SET lease_holder = NULL, lease_until = NULL "
                "WHERE name = ? AND lease_holder = ?",
                [self.name, self.holder],
            )

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
