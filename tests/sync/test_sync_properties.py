"""Invariants of push and pull over generated op histories, on both storage backends.

The command path (``push``) and the read path (``pull``) are driven directly, without HTTP, so
that hypothesis can afford many histories; tests/e2e covers the same path over HTTP.

(a) rebuilding the read tables from the log gives the live tables (DESIGN.md invariant 6);
(b) replaying any prefix of a batch changes nothing and answers ``duplicate`` (invariant 1);
(c) following pull cursors from any starting point yields every change exactly once (inv. 4).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest.mock import patch
from uuid import UUID

import pytest
from histories import BATCHING, HISTORIES, event_count, live_rows, play
from hypothesis import given
from hypothesis import strategies as st
from op_strategies import STEPS, Step

from event_store import EventStore
from projections import tables
from projections.apply import apply_events
from projections.rows import ReadRow, RowKey
from sync_server import pull_cursors, push
from sync_server.pull import Since, pull

KEY = pull_cursors.derive_key("property-test-secret")


@pytest.fixture
def stores(store: EventStore) -> Iterator[EventStore]:
    yield store


# How many accepted ops a push sends to the log at a time (``push.SEND_EVERY``): small, so that
# the histories' batches cross those boundaries (rows settled and saved in several pieces).
SENDING = st.sampled_from([1, 2, 3, push.SEND_EVERY])


@HISTORIES
@given(steps=STEPS, batching=BATCHING, sending=SENDING, data=st.data())
def test_rebuild_equals_live_and_replays_change_nothing(
    stores: EventStore,
    steps: list[Step],
    batching: tuple[list[int], list[bool]],
    sending: int,
    data: Any,
) -> None:
    store = stores
    with patch.object(push, "SEND_EVERY", sending):
        history = play(store, steps, *batching)
    live = live_rows(store, history.owner)

    # (a) The log alone gives back the read tables, row for row.
    rebuilt: dict[RowKey, ReadRow] = {}
    apply_events(rebuilt, store.read_owner(history.owner, 0, 1_000_000))
    assert rebuilt == live

    # (b) Any prefix of any batch, pushed again, is all duplicate and writes nothing.
    batch = data.draw(st.sampled_from(history.kept))
    prefix = batch[: data.draw(st.integers(1, len(batch)))]
    events = event_count(store, history.owner)
    assert history.push(prefix) == ["duplicate"] * len(prefix)
    assert event_count(store, history.owner) == events
    assert live_rows(store, history.owner) == live


@HISTORIES
@given(steps=STEPS, batching=BATCHING, sending=SENDING, data=st.data())
def test_following_cursors_from_anywhere_yields_every_change_once(
    stores: EventStore,
    steps: list[Step],
    batching: tuple[list[int], list[bool]],
    sending: int,
    data: Any,
) -> None:
    store = stores
    with patch.object(push, "SEND_EVERY", sending):
        history = play(store, steps, *batching)
    live = live_rows(store, history.owner)
    start = data.draw(st.sampled_from(history.cursors))
    limit = data.draw(st.integers(1, 6))

    seen: list[tuple[str, UUID, int]] = []
    since = Since(cursor=start)
    while True:
        page = pull(store, KEY, history.owner, since, limit)
        assert len(page.changes) <= limit
        seen += [(c.entity, c.id, c.version) for c in page.changes]
        since = Since(cursor=pull_cursors.decode(KEY, history.owner, page.cursor))
        if not page.has_more:
            break

    changed_after_start = {
        (table, id_): row.version
        for (table, id_), row in live.items()
        if row.sync_pos > start.position
    }
    keys = [(tables.TABLES[entity], id_) for entity, id_, _ in seen]
    assert len(keys) == len(set(keys)), "an entity came twice with no write in between"
    assert dict(zip(keys, (v for _, _, v in seen), strict=True)) == changed_after_start
