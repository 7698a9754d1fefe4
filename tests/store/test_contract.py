"""The event store's contract, the same on both backends."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from conftest import feed_settled

from event_store import (
    START,
    AppendRequest,
    ConcurrencyError,
    EventMetadata,
    EventStore,
    FeedPart,
    InvalidAppend,
    MigrationError,
    MigrationSet,
    NewEvent,
    StreamId,
    UnknownEventType,
    UpcasterRegistry,
    migrate,
    pending,
    utc_now,
)
from sync_server.services import MIGRATIONS


def stream(kind: str = "show") -> StreamId:
    return StreamId(kind, uuid.uuid4())


def event(s: StreamId, kind: str = "created", **data: object) -> NewEvent:
    return NewEvent(s, f"{s.type}.{kind}", dict(data))


def test_versions_are_gap_free_and_positions_increase(store: EventStore) -> None:
    owner, s = uuid.uuid4(), stream()
    first = store.append(owner, [event(s, n=1), event(s, "updated", n=2)], expected={s: 0})
    second = store.append(owner, [event(s, "updated", n=3)], expected={s: 2})
    assert first.version_of(s) == 2
    assert second.version_of(s) == 3
    events = store.read_stream(owner, s)
    assert [e.version for e in events] == [1, 2, 3]
    assert [e.data["n"] for e in events] == [1, 2, 3]
    positions = [e.position for e in events]
    assert positions == sorted(positions) and len(set(positions)) == 3
    assert first.first_position == positions[0] and second.last_position == positions[2]


def test_metadata_and_schema_version_are_kept(store: EventStore) -> None:
    owner, s = uuid.uuid4(), stream()
    metadata = EventMetadata(
        actor="u1", client_id="c1", device="phone", op_id="op1", request_id="r1",
        client_ts="2026-11-20T18:03:11Z", source="sync",
    )  # fmt: skip
    written = store.append(owner, [NewEvent(s, "show.created", {"a": 1}, 1, metadata)])
    [recorded] = store.read_stream(owner, s)
    assert recorded.metadata == metadata
    assert recorded.schema_version == 1
    assert recorded.owner == owner and recorded.stream == s
    assert recorded.recorded_at.tzinfo is not None
    feed_settled(store, written.first_position)
    assert store.read_all().events == [recorded]  # the feed decodes them alike


def test_stale_expected_version_names_stream_and_versions_and_writes_nothing(
    store: EventStore,
) -> None:
    owner, s = uuid.uuid4(), stream()
    store.append(owner, [event(s)], expected={s: 0})
    before = store.count_events()
    with pytest.raises(ConcurrencyError) as caught:
        store.append(owner, [event(s, "updated")], expected={s: 0})
    assert (caught.value.stream, caught.value.expected, caught.value.actual) == (s, 0, 1)
    assert str(s) in str(caught.value)
    assert store.count_events() == before


def test_a_rejected_append_consumes_no_position(store: EventStore) -> None:
    owner, s = uuid.uuid4(), stream()
    first = store.append(owner, [event(s)])
    for _ in range(3):
        with pytest.raises(ConcurrencyError):
            store.append(owner, [event(s, "updated")], expected={s: 5})
    second = store.append(owner, [event(s, "updated")])
    assert second.first_position == first.last_position + 1


def test_a_batch_is_all_or_nothing(store: EventStore) -> None:
    owner, a, b = uuid.uuid4(), stream(), stream()
    store.append(owner, [event(b)])
    with pytest.raises(ConcurrencyError), store.transaction(owner) as tx:
        tx.append_batch(
            [
                AppendRequest([event(a)], {a: 0}, "key-a"),
                AppendRequest([event(b, "updated")], {b: 7}, "key-b"),
            ]
        )
    assert store.read_stream(owner, a) == []
    with store.transaction(owner) as tx:
        assert tx.recall(["key-a", "key-b"]) == {}


def test_an_error_after_appending_rolls_the_transaction_back(store: EventStore) -> None:
    owner, s = uuid.uuid4(), stream()
    with pytest.raises(RuntimeError), store.transaction(owner) as tx:
        tx.append([event(s)], idempotency_key="k")
        raise RuntimeError("crash between append and commit")
    assert store.read_stream(owner, s) == []
    assert store.append(owner, [event(s)], idempotency_key="k").duplicate is False


def test_a_repeated_idempotency_key_returns_the_first_outcome_and_writes_nothing(
    store: EventStore,
) -> None:
    owner, s = uuid.uuid4(), stream()
    first = store.append(owner, [event(s)], expected={s: 0}, idempotency_key="op-1")
    count = store.count_events()
    # The repeat would be a version conflict if it were applied again: it must not be.
    again = store.append(owner, [event(s)], expected={s: 0}, idempotency_key="op-1")
    assert again.duplicate is True
    assert (again.versions, again.first_position) == (first.versions, first.first_position)
    assert store.count_events() == count


def test_idempotency_keys_are_scoped_by_owner(store: EventStore) -> None:
    s = stream()
    store.append(uuid.uuid4(), [event(s)], idempotency_key="same")
    other = store.append(uuid.uuid4(), [event(s)], idempotency_key="same")
    assert other.duplicate is False


def test_a_key_recalled_unused_then_written_is_a_duplicate_later_in_the_transaction(
    store: EventStore,
) -> None:
    owner, s = uuid.uuid4(), stream()
    with store.transaction(owner) as tx:
        assert tx.recall(["k", "refused"]) == {}
        first = tx.append_batch([AppendRequest([event(s)], {s: 0}, "k")])[0]
        again = tx.append_batch([AppendRequest([event(s)], {s: 0}, "k")])[0]
        tx.remember({"refused": b"{}"})
        assert tx.recall(["refused"])["refused"].outcome == b"{}"
    assert again.duplicate and again.versions == first.versions
    assert [e.version for e in store.read_stream(owner, s)] == [1]


def test_a_key_repeated_inside_one_batch_is_applied_once(store: EventStore) -> None:
    owner, s = uuid.uuid4(), stream()
    with store.transaction(owner) as tx:
        first, repeat = tx.append_batch(
            [AppendRequest([event(s)], {s: 0}, "k"), AppendRequest([event(s)], {s: 0}, "k")]
        )
    assert repeat.duplicate and repeat.versions == first.versions
    assert len(store.read_stream(owner, s)) == 1


@pytest.mark.parametrize("pipelined", [False, True])
def test_sent_appends_get_their_positions_in_order_when_settled(
    store: EventStore, pipelined: bool
) -> None:
    owner, a, b = uuid.uuid4(), stream(), stream()
    with store.transaction(owner, pipelined=pipelined) as tx:
        tx.send([AppendRequest([event(a)], {a: 0}, "ka", b'"first"')])
        tx.send([AppendRequest([event(a, "updated"), event(b)], {a: 1, b: 0}, "kb")])
        # A key sent without an outcome is written when settled; repeating it settles first.
        [repeat] = tx.append_batch([AppendRequest([event(b, "updated")], {b: 0}, "kb")])
        recorded = [(e.stream, e.version, e.position) for e in tx.recorded]
        assert tx.recall(["ka"])["ka"].outcome == b'"first"'
    assert repeat.duplicate and repeat.versions == {str(a): 2, str(b): 1}
    assert [(s, v) for s, v, _ in recorded] == [(a, 1), (a, 2), (b, 1)]
    assert [p for _, _, p in recorded] == sorted(p for _, _, p in recorded)
    log = store.read_stream(owner, a) + store.read_stream(owner, b)
    assert sorted((e.stream, e.version, e.position) for e in log) == sorted(recorded)


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_stale_version_caught_by_the_caller_leaves_the_transaction_usable(
    store: EventStore, pipelined: bool
) -> None:
    owner, s = uuid.uuid4(), stream()
    store.append(owner, [event(s)], expected={s: 0})
    with store.transaction(owner, pipelined=pipelined) as tx:
        with pytest.raises(ConcurrencyError):
            tx.send([AppendRequest([event(s, "updated")], {}), AppendRequest([event(s)], {s: 0})])
        # The failed send moved no version: the next append is checked against the log's.
        tx.send([AppendRequest([event(s, "updated")], {s: 1})])
    assert [e.version for e in store.read_stream(owner, s)] == [1, 2]


def test_an_error_in_a_pipelined_transaction_writes_nothing(store: EventStore) -> None:
    owner, s = uuid.uuid4(), stream()
    with pytest.raises(RuntimeError), store.transaction(owner, pipelined=True) as tx:
        tx.send([AppendRequest([event(s)], {s: 0}, "k", b"{}")])
        raise RuntimeError("crash after sending")
    assert store.read_stream(owner, s) == []
    with store.transaction(owner) as tx:
        assert tx.recall(["k"]) == {}


def test_remembered_outcomes_without_events_are_recalled(store: EventStore) -> None:
    owner = uuid.uuid4()
    with store.transaction(owner) as tx:
        tx.remember({"refused-op": b'{"status":"rejected"}'})
    with store.transaction(owner) as tx:
        recalled = tx.recall(["refused-op", "other"])
    assert list(recalled) == ["refused-op"]
    assert recalled["refused-op"].outcome == b'{"status":"rejected"}'


@pytest.mark.parametrize(
    ("events", "expected", "message"),
    [
        ([], {}, "at least one event"),
        (["show.created"], {"neg": -1}, ">= 0"),
        (["nodot"], {}, "past tense"),
    ],
)
def test_bad_appends_are_refused_with_a_typed_error_and_write_nothing(
    store: EventStore, events: list[str], expected: dict[str, int], message: str
) -> None:
    owner, s = uuid.uuid4(), stream()
    with pytest.raises(InvalidAppend, match=message):
        store.append(
            owner,
            [NewEvent(s, t, {}) for t in events],
            expected=dict.fromkeys([s], expected["neg"]) if expected else None,
        )
    assert store.count_events() == 0


def test_streams_are_private_to_their_owner(store: EventStore) -> None:
    alice, bob, s = uuid.uuid4(), uuid.uuid4(), stream()
    store.append(alice, [event(s, secret=1)])
    # Bob may use the same id (ids come from clients): it is his own stream, not Alice's.
    store.append(bob, [event(s, secret=2)], expected={s: 0})
    assert [e.data["secret"] for e in store.read_stream(alice, s)] == [1]
    assert [e.data["secret"] for e in store.read_stream(bob, s)] == [2]
    assert all(e.owner == bob for e in store.read_owner(bob))


def test_read_stream_up_to_a_version_or_a_moment(store: EventStore) -> None:
    owner, s = uuid.uuid4(), stream()
    store.append(owner, [event(s, n=1)])
    store.append(owner, [event(s, "updated", n=2)])
    store.append(owner, [event(s, "updated", n=3)])
    assert [e.version for e in store.read_stream(owner, s, to_version=2)] == [1, 2]
    events = store.read_stream(owner, s)
    moment = events[1].recorded_at
    assert [e.version for e in store.read_stream(owner, s, as_of=moment)] == [1, 2]
    before_all = events[0].recorded_at - timedelta(seconds=1)
    assert store.read_stream(owner, s, as_of=before_all) == []


def test_read_owner_after_a_position_and_recorded_after_a_moment(store: EventStore) -> None:
    owner = uuid.uuid4()
    results = [store.append(owner, [event(stream(), n=i)]) for i in range(5)]
    after = results[1].last_position
    assert [e.data["n"] for e in store.read_owner(owner, after)] == [2, 3, 4]
    assert [e.data["n"] for e in store.read_owner(owner, after, limit=2)] == [2, 3]
    moment = store.read_owner(owner)[2].recorded_at
    assert [e.data["n"] for e in store.read_recorded_after(owner, moment)] == [3, 4]
    assert store.read_recorded_after(owner, utc_now() + timedelta(minutes=1)) == []


def test_the_global_feed_pages_through_every_owner_in_order(store: EventStore) -> None:
    written = []
    for i in range(7):
        owner = uuid.uuid4()
        written.append(store.append(owner, [event(stream(), n=i)]).first_position)
    feed_settled(store, written[-1])
    seen, checkpoint = [], START
    while True:
        page = store.read_all(checkpoint, limit=3)
        seen += [e.position for e in page.events]
        if not page.events:
            break
        checkpoint = page.checkpoint
    assert seen == written
    assert [e.position for e in store.iter_all(batch=2)] == written


def test_a_feed_of_some_types_passes_over_the_others_without_missing_any(
    store: EventStore,
) -> None:
    written = []
    for i in range(9):
        s = stream("product" if i % 3 == 0 else "show")
        written.append((store.append(uuid.uuid4(), [event(s, n=i)]).first_position, s.type))
    feed_settled(store, written[-1][0])
    wanted = {"product.created"}
    seen, covered, checkpoint = [], 0, START
    while True:
        with store.sql() as sql:
            page = store.read_feed(sql, checkpoint, 2, types=wanted)
        assert all(e.type in wanted and e.data for e in page.events)
        seen += [e.position for e in page.events]
        covered += page.covered
        if page.covered < 2:
            break
        assert page.checkpoint > checkpoint
        checkpoint = page.checkpoint
    assert seen == [p for p, kind in written if kind == "product"]
    assert covered == len(written)
    last = store.read_all(START, 100).checkpoint
    with store.sql() as sql:  # the checkpoint ends past the last event, wanted or not
        assert store.read_feed(sql, START, 100, types=wanted).checkpoint == last


def test_the_parts_of_the_feed_split_it_by_owner(store: EventStore) -> None:
    owners = [uuid.UUID(int=(0x1234 << 64) | last) for last in range(0, 256, 23)]  # last bytes
    owners += [uuid.uuid4() for _ in range(6)]
    written = {owner: store.append(owner, [event(stream(), n=1), event(stream(), n=2)])
               for owner in owners}  # fmt: skip
    feed_settled(store, max(result.last_position for result in written.values()))
    everything = [e.position for e in store.iter_all()]
    if store.backend != "postgres":
        with pytest.raises(NotImplementedError):
            store.read_all(START, 10, part=FeedPart(0, 2))
        return
    for count in (1, 2, 3):
        seen: list[int] = []
        for index in range(count):
            part, checkpoint, read = FeedPart(index, count), START, []
            while (page := store.read_all(checkpoint, 3, part=part)).events:
                assert all(part.holds(e.owner) for e in page.events)
                read += page.events
                checkpoint = page.checkpoint
            assert [e.position for e in read] == sorted(e.position for e in read)
            seen += [e.position for e in read]
        assert sorted(seen) == everything  # each event in exactly one part


def test_old_event_shapes_are_upcast_on_read(store: EventStore) -> None:
    owner, s = uuid.uuid4(), stream()
    store.append(owner, [NewEvent(s, "show.created", {"town": "Madrid"}, schema_version=1)])
    registry = UpcasterRegistry()
    registry.declare("show.created", 2)
    registry.register("show.created", 1, lambda d: {"city": d["town"]})
    store.registry = registry
    [recorded] = store.read_stream(owner, s)
    assert (recorded.schema_version, recorded.data) == (2, {"city": "Madrid"})


def test_an_unknown_event_type_is_a_typed_error_at_read_time(store: EventStore) -> None:
    owner, s = uuid.uuid4(), stream()
    store.append(owner, [NewEvent(s, "show.teleported", {})])
    registry = UpcasterRegistry()
    registry.declare("show.created", 1)
    store.registry = registry
    with pytest.raises(UnknownEventType, match=r"show\.teleported"):
        store.read_stream(owner, s)
    store.append(owner, [NewEvent(s, "show.created", {}, schema_version=3)])
    store.registry = UpcasterRegistry()
    feed_settled(store, store.read_stream(owner, s)[-1].position)
    store.registry = registry
    with pytest.raises(UnknownEventType):
        list(store.iter_all())


def test_migrations_are_recorded_and_applied_once(store: EventStore) -> None:
    assert pending(store, MIGRATIONS) == []
    assert migrate(store, MIGRATIONS) == []


def test_an_edited_migration_is_refused(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    original = MigrationSet.load

    def edited(self: MigrationSet, backend: str):  # type: ignore[no-untyped-def]
        migrations = original(self, backend)
        if self.component == "event_store":
            first = migrations[0]
            migrations[0] = type(first)(first.component, 1, first.name, first.sql + "\n-- edit")
        return migrations

    monkeypatch.setattr(MigrationSet, "load", edited)
    with pytest.raises(MigrationError, match="edited"):
        migrate(store, MIGRATIONS)
