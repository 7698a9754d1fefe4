"""Change notices (event_store/changes.py): one per committed transaction that wrote events,
after its commit, on both backends; none for a rollback or a transaction that wrote nothing."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from event_store import EventStore, NewEvent, StreamId
from event_store.changes import Committed, decode, encode

WAIT = 30.0  # generous: notices arrive far sooner, this only bounds a broken run


def created() -> NewEvent:
    return NewEvent(StreamId("show", uuid.uuid4()), "show.created", {})


class Rollback(Exception):
    pass


def write_in_order(store: EventStore, owner: uuid.UUID, other: uuid.UUID) -> list[int]:
    """Four transactions: two events of ``owner``; a rolled-back one; one with no event;
    one event of ``other``. Returns the positions of the events that were kept."""
    with store.transaction(owner) as tx:
        first = tx.append([created(), created()])
    with pytest.raises(Rollback), store.transaction(owner) as tx:
        tx.append([created()])
        raise Rollback
    with store.transaction(owner):
        pass
    second = store.append(other, [created()])
    return [first.first_position, first.last_position, second.first_position]


async def collect(store: EventStore, owner: uuid.UUID, other: uuid.UUID) -> list[object]:
    heard: list[Committed | None] = []
    arrived = asyncio.Event()

    def deliver(notice: Committed | None) -> None:
        heard.append(notice)
        arrived.set()

    async with store.watch(deliver):
        # The first None says notices are being heard: only then is a write sure to be.
        while not heard:
            await asyncio.wait_for(arrived.wait(), WAIT)
            arrived.clear()
        positions = await asyncio.to_thread(write_in_order, store, owner, other)
        mine = {owner, other}
        while len([n for n in heard if n is not None and n.owner in mine]) < 2:
            await asyncio.wait_for(arrived.wait(), WAIT)
            arrived.clear()
    kept = [n for n in heard if n is None or n.owner in mine]
    return [positions, kept]


def test_one_notice_per_committed_transaction_that_wrote_events(store: EventStore) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    positions, heard = asyncio.run(collect(store, owner, other))
    assert heard == [
        None,
        Committed(owner, positions[0], positions[1]),
        Committed(other, positions[2], positions[2]),
    ]


def test_notices_travel_as_small_text_and_foreign_payloads_are_ignored() -> None:
    notice = Committed(uuid.uuid4(), 7, 9)
    assert decode(encode(notice)) == notice
    assert len(encode(notice)) < 64
    for foreign in ["", "hello", "a:b:c", f"{uuid.uuid4().hex}:1", "x" * 100]:
        assert decode(foreign) is None
