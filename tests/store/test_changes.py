"""Change notices (event_store/changes.py): one per committed transaction that wrote events,
after its commit, on both backends; none for a rollback or a transaction that wrote nothing."""

from __future__ import annotations

import asyncio
import io
import uuid
from pathlib import Path

import pytest
from conftest import drop_database, fresh_database

from event_store import EventStore, NewEvent, StreamId, migrate, transfer
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


class Heard:
    """A watch's ``deliver``: keeps every notice, and waits for the ones a test expects."""

    def __init__(self) -> None:
        self.notices: list[Committed | None] = []
        self._arrived = asyncio.Event()

    def __call__(self, notice: Committed | None) -> None:
        self.notices.append(notice)
        self._arrived.set()

    def of(self, owners: set[uuid.UUID]) -> list[Committed | None]:
        """The notices about ``owners``, and the Nones."""
        return [n for n in self.notices if n is None or n.owner in owners]

    async def until(self, count: int, owners: set[uuid.UUID]) -> None:
        while len(self.of(owners)) < count:
            self._arrived.clear()
            await asyncio.wait_for(self._arrived.wait(), WAIT)


def test_one_notice_per_committed_transaction_that_wrote_events(store: EventStore) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    heard = Heard()

    async def main() -> list[int]:
        async with store.watch(heard):
            # The first None says notices are being heard: only then is a write sure to be.
            await heard.until(1, set())
            positions = await asyncio.to_thread(write_in_order, store, owner, other)
            await heard.until(3, {owner, other})
        return positions

    positions = asyncio.run(main())
    assert heard.of({owner, other}) == [
        None,
        Committed(owner, positions[0], positions[1]),
        Committed(other, positions[2], positions[2]),
    ]


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_schema_never_hears_another_schemas_commits(store: EventStore, tmp_path: Path) -> None:
    neighbour_db = fresh_database("postgres", tmp_path)
    neighbour = neighbour_db.open()
    owner = uuid.uuid4()
    heard = Heard()

    async def main() -> Committed:
        async with store.watch(heard):
            await heard.until(1, set())
            # The neighbour's commit first, then ours: notices come in commit order.
            await asyncio.to_thread(neighbour.append, owner, [created()])
            mine = await asyncio.to_thread(store.append, owner, [created()])
            await heard.until(2, {owner})
        return Committed(owner, mine.first_position, mine.last_position)

    try:
        migrate(neighbour, MIGRATIONS)
        ours = asyncio.run(main())
    finally:
        neighbour.close()
        drop_database(neighbour_db)
    assert heard.notices == [None, ours]


def test_notices_travel_as_small_text_and_foreign_payloads_are_ignored() -> None:
    notice = Committed(uuid.uuid4(), 7, 9)
    assert decode(encode(notice)) == notice
    assert len(encode(notice)) < 64
    for foreign in ["", "hello", "a:b:c", f"{uuid.uuid4().hex}:1", "x" * 100]:
        assert decode(foreign) is None


def test_an_import_sends_one_notice_per_owner_once_it_has_committed(
    store: EventStore, backend: str, tmp_path: Path
) -> None:
    first, second, later = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    source_db = fresh_database(backend, tmp_path / "source")
    source = source_db.open()
    try:
        migrate(source, MIGRATIONS)
        a = source.append(first, [created(), created()])
        b = source.append(second, [created()])
        c = source.append(first, [created()])
        exported = io.BytesIO()
        transfer.export(source, exported)
    finally:
        source.close()
        drop_database(source_db)
    heard = Heard()

    async def main() -> None:
        async with store.watch(heard):
            await heard.until(1, set())
            await asyncio.to_thread(transfer.import_log, store, io.BytesIO(exported.getvalue()))
            # A later write's notice comes after every notice of the import.
            await asyncio.to_thread(store.append, later, [created()])
            await heard.until(4, {first, second, later})

    asyncio.run(main())
    assert sorted(heard.of({first, second}), key=str) == sorted(
        [
            None,
            Committed(first, a.first_position, c.last_position),
            Committed(second, b.first_position, b.last_position),
        ],
        key=str,
    )
