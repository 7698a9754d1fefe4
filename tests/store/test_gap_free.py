"""Invariant 4: a reader that keeps asking for what comes after its cursor never skips an event.

Writers hold their transactions open for a random moment after taking positions, so commits
land out of position order — the situation in which a plain ``position > C`` reader loses events.
The last test shows that such a naive reader does lose them under this very load, so the others
would fail if the store's protection were removed.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable

import pytest

from event_store import START, EventStore, NewEvent, StreamId

WRITERS = 6
APPENDS_PER_WRITER = 25
READERS = 3
HORIZON_WAIT = 120
"""Seconds a feed reader waits for someone else's long transaction to end (see below)."""


def _write(
    store: EventStore, owners: list[uuid.UUID], seed: int, written: list[int], txs: list[int]
) -> None:
    rng = random.Random(seed)
    for _ in range(APPENDS_PER_WRITER):
        owner = rng.choice(owners)
        s = StreamId("show", uuid.uuid4())
        events = [NewEvent(s, "show.created", {"n": i}) for i in range(rng.randint(1, 3))]
        with store.transaction(owner) as tx:
            tx.append(events)
            # Hold the transaction open: a later writer may take higher positions and commit
            # first. This is the race a reader must survive.
            time.sleep(rng.uniform(0, 0.004))
        # Positions of one append increase but need not be contiguous (other owners' appends
        # take positions concurrently).
        written.extend(e.position for e in tx.recorded)
        txs.extend(e.tx for e in tx.recorded)


def _feed_horizon_passed(store: EventStore, tx: int) -> bool:
    """Whether the global feed may now return every transaction up to ``tx``.

    On PostgreSQL the feed stops below the oldest transaction still running in the whole
    cluster, another database's included: a long transaction of anyone else sharing the server
    holds every feed reader back until it ends (on SQLite nothing ever does).
    """
    if store.backend != "postgres":
        return True
    with store.snapshot() as sql:
        row = sql.fetchone("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
    return row is not None and int(row[0]) > tx


def _hammer(
    store: EventStore,
    owners: list[uuid.UUID],
    read: Callable[[], list[int]],
    *,
    feed: bool = False,
) -> tuple[list[int], list[list[int]]]:
    written: list[int] = []
    txs: list[int] = []
    done = threading.Event()
    seen: list[list[int]] = [[] for _ in range(READERS)]

    def caught_up() -> bool:
        return not feed or _feed_horizon_passed(store, max(txs, default=0))

    def reader(index: int) -> None:
        deadline = None
        while True:
            # After the last commit, read until a page comes back empty while everything
            # written is readable: a reader that skipped an event stops then without it.
            finished = done.is_set() and caught_up()
            page = read_step[index]()
            seen[index].extend(page)
            if finished and not page:
                return
            if done.is_set() and not page:
                deadline = deadline or time.monotonic() + HORIZON_WAIT
                if time.monotonic() > deadline:
                    return  # the assertions then say what is missing
                time.sleep(0.05)

    read_step = [read() for _ in range(READERS)]  # type: ignore[func-returns-value]
    writers = [
        threading.Thread(target=_write, args=(store, owners, seed, written, txs))
        for seed in range(WRITERS)
    ]
    readers = [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()
    if not caught_up():
        pytest.fail(
            f"another transaction on this PostgreSQL server stayed open for {HORIZON_WAIT} s "
            "and held the global feed back: this run proves nothing (run it again)"
        )
    return written, seen


def global_feed_reader(store: EventStore) -> Callable[[], Callable[[], list[int]]]:
    def make() -> Callable[[], list[int]]:
        checkpoint = START

        def step() -> list[int]:
            nonlocal checkpoint
            page = store.read_all(checkpoint, limit=50)
            checkpoint = page.checkpoint
            return [e.position for e in page.events]

        return step

    return make


def owner_feed_reader(store: EventStore, owner: uuid.UUID) -> Callable[[], Callable[[], list[int]]]:
    def make() -> Callable[[], list[int]]:
        after = 0

        def step() -> list[int]:
            nonlocal after
            events = store.read_owner(owner, after, limit=50)
            if events:
                after = events[-1].position
            return [e.position for e in events]

        return step

    return make


def test_global_feed_readers_see_every_event_once_in_order(store: EventStore) -> None:
    owners = [uuid.uuid4() for _ in range(4)]
    written, seen = _hammer(store, owners, global_feed_reader(store), feed=True)
    assert len(written) >= WRITERS * APPENDS_PER_WRITER
    for positions in seen:
        assert sorted(positions) == sorted(written), "a reader skipped or repeated events"
        assert len(set(positions)) == len(positions)
    # Order: the feed order the checkpoints follow.
    feed = [e.checkpoint for e in store.iter_all()]
    assert feed == sorted(feed)


def test_one_owners_readers_see_every_event_once_in_position_order(store: EventStore) -> None:
    owner = uuid.uuid4()
    written, seen = _hammer(store, [owner], owner_feed_reader(store, owner))
    for positions in seen:
        assert positions == sorted(written), "an owner's reader skipped, repeated or reordered"


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_naive_position_reader_does_skip_events_under_this_load(store: EventStore) -> None:
    """The guard on the guards: under the same load, ``WHERE position > C`` loses events."""

    def naive() -> Callable[[], list[int]]:
        after = 0

        def step() -> list[int]:
            nonlocal after
            with store.snapshot() as sql:
                rows = sql.fetchall(
                    "SELECT position FROM events WHERE position > ? ORDER BY position LIMIT 50",
                    [after],
                )
            if rows:
                after = rows[-1][0]
            return [r[0] for r in rows]

        return step

    owners = [uuid.uuid4() for _ in range(4)]
    for _attempt in range(5):
        written, seen = _hammer(store, owners, lambda: naive())
        if any(set(written) - set(positions) for positions in seen):
            return
    pytest.fail("the naive reader never skipped an event: this load does not test the race")
