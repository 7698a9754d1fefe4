"""Change notices (event_store/changes.py): one per committed transaction that wrote events,
after its commit, on both backends; none for a rollback or a transaction that wrote nothing."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from conftest import drop_database, fresh_database

from event_store import EventStore, NewEvent, StreamId, migrate
from event_store.changes import Committed, decode, encode
from sync_server.services import MIGRATIONS

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


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_schema_never_hears_another_schemas_commits(store: EventStore, tmp_path: Path) -> None:
    neighbour_db = fresh_database("postgres", tmp_path)
    neighbour = neighbour_db.open()
    try:
        migrate(neighbour, MIGRATIONS)
        owner = uuid.uuid4()

        async def main() -> list[Committed | None]:
            heard: list[Committed | None] = []
            arrived = asyncio.Event()

            def deliver(notice: Committed | None) -> None:
                heard.append(notice)
                arrived.set()

            async with store.watch(deliver):
                await asyncio.wait_for(arrived.wait(), WAIT)
                # The neighbour's commit first, then ours: notices come in commit order.
                await asyncio.to_thread(neighbour.append, owner, [created()])
                mine = await asyncio.to_thread(store.append, owner, [created()])
                while len(heard) < 2:
                    arrived.clear()
                    await asyncio.wait_for(arrived.wait(), WAIT)
                return [*heard, Committed(owner, mine.first_position, mine.last_position)]

        none, only, expected = asyncio.run(main())
        assert none is None and only == expected
    finally:
        neighbour.close()
        drop_database(neighbour_db)


def test_notices_travel_as_small_text_and_foreign_payloads_are_ignored() -> None:
    notice = Committed(uuid.uuid4(), 7, 9)
    assert decode(encode(notice)) == notice
    assert len(encode(notice)) < 64
    for foreign in ["", "hello", "a:b:c", f"{uuid.uuid4().hex}:1", "x" * 100]:
        assert decode(foreign) is None
