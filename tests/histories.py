"""One user's push history on a store, driven through ``push`` directly (no HTTP), with
hypothesis strategies for how a history is cut into batches. Shared by the property tests of
push, pull, rebuild and verify.
"""

from __future__ import annotations

import uuid
from uuid import UUID

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from op_strategies import PRELUDE, Step

from event_store import EventStore, StreamId
from projections import tables
from projections.rows import ReadRow, RowKey, key_of
from schemas.ops import Op, PushRequest
from sync_server import pull_cursors
from sync_server.push import Origin, push

HISTORIES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
"""Hypothesis settings for tests that push whole histories into a real store."""


def live_rows(store: EventStore, owner: UUID) -> dict[RowKey, ReadRow]:
    with store.snapshot() as sql:
        return {(table, id_): row for (_, table, id_), row in tables.load_all(sql, owner).items()}


def event_count(store: EventStore, owner: UUID) -> int:
    return len(store.read_owner(owner, 0, 1_000_000))


class History:
    """One user's history: batches pushed in order, and the cursor each push answered."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.owner = uuid.uuid4()
        self.origin = Origin(self.owner, uuid.uuid4(), request_id="property")
        self.kept: list[list[Op]] = []
        """Batches that were kept: all but the atomic ones that failed (those keep nothing)."""
        self.cursors: list[pull_cursors.Cursor] = [pull_cursors.Cursor(0, 1)]

    def push(self, ops: list[Op], atomic: bool = False) -> list[str]:
        pushed = push(
            self.store, PushRequest(self.origin.client_id, ops, atomic=atomic), self.origin
        )
        statuses = [result.status for result in pushed.results]
        if not atomic or set(statuses) <= {"applied", "duplicate"}:
            self.kept.append(ops)
        self.cursors.append(pushed.cursor)
        return statuses

    def with_bases(self, steps: list[tuple[tuple[Op, int | None], int]]) -> list[Op]:
        """The batch's ops with ``base_version`` set from the versions the store has now."""
        rows = live_rows(self.store, self.owner)
        ops = []
        for (template, offset), _ in steps:
            if offset is None:
                ops.append(msgspec.structs.replace(template, base_version=None))
                continue
            key = key_of(StreamId(template.entity, template.id))
            current = rows[key].version if key in rows else 0
            base = max(0, current + offset)
            ops.append(msgspec.structs.replace(template, base_version=base))
        return ops


def play(store: EventStore, steps: list[Step], cuts: list[int], atomic: list[bool]) -> History:
    history = History(store)
    assert history.push(list(PRELUDE)) == ["applied"] * len(PRELUDE)
    start = 0
    for index, cut in enumerate([*cuts, len(steps)]):
        batch = steps[start:cut]
        start = max(start, cut)
        if batch:
            history.push(history.with_bases(batch), atomic=atomic[index % len(atomic)])
    return history


BATCHING = st.tuples(
    st.lists(st.integers(0, 40), max_size=6).map(sorted),
    st.lists(st.booleans(), min_size=1, max_size=4),
)
