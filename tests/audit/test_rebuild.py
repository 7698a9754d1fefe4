"""Rebuild and verify of the read tables (PROTOCOL.md, "Audit and replay"), on both backends.

(a) after any history of pushes, verify finds nothing and a rebuild changes no row, no sync
    position and no epoch (DESIGN.md invariant 6); (b) verify names every hand-edited field,
    missing and extra row, and a rebuild puts them back with a new epoch, so old cursors reset;
(c) a rebuild while pushes commit loses none of them; (d) the CLI's output and exit status.
"""

from __future__ import annotations

import gc
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from conftest import RunCli, feed_settled
from domain_harness import op, show_data
from histories import BATCHING, HISTORIES, History, live_rows, play
from hypothesis import given
from op_strategies import IDS, PRELUDE, STEPS, Step

from event_store import EventStore
from event_store.events import part_of
from projections import projection_state, rebuild, tables
from projections.apply import ProjectionError
from projections.project import READ_TABLES, epoch
from sync_server import pull_cursors
from sync_server.pull import Since, pull


@pytest.fixture
def stores(store: EventStore) -> Iterator[EventStore]:
    yield store


def everything(store: EventStore) -> dict[Any, Any]:
    with store.snapshot() as sql:
        return tables.load_all(sql)


def current_epoch(store: EventStore) -> int:
    with store.snapshot() as sql:
        return epoch(sql)


@HISTORIES
@given(steps=STEPS, batching=BATCHING)
def test_after_any_history_verify_finds_nothing_and_rebuild_changes_nothing(
    stores: EventStore, steps: list[Step], batching: tuple[list[int], list[bool]]
) -> None:
    store = stores
    play(store, steps, *batching)
    before, epoch_before = everything(store), current_epoch(store)
    assert rebuild.verify(store) == []
    done = rebuild.rebuild(store)
    assert (done.changed, done.reset) == (0, False)
    assert everything(store) == before  # same rows, same versions, same sync positions
    assert current_epoch(store) == epoch_before


@HISTORIES
@given(steps=STEPS, batching=BATCHING)
def test_small_pages_and_a_small_cache_give_the_same_tables(
    stores: EventStore, steps: list[Step], batching: tuple[list[int], list[bool]]
) -> None:
    # Pages of 4 events and a cache dropped past 3 rows: rows are read back from the copies
    # between pages, the path a large log takes.
    store = stores
    play(store, steps, *batching)
    before = everything(store)
    page, rebuild.PAGE = rebuild.PAGE, 4
    try:
        assert rebuild.verify(store, cache_rows=3) == []
        assert rebuild.rebuild(store, cache_rows=3).changed == 0
    finally:
        rebuild.PAGE = page
    assert everything(store) == before


def test_once_the_cache_is_dropped_pages_of_new_entities_read_nothing_back(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stream's first event finds no row: knowing that, the replay asks the copies nothing.
    history = History(store)
    shows = [op("show", uuid.uuid4(), "create", show_data()) for _ in range(12)]
    assert history.push(shows) == ["applied"] * 12
    reads: list[str] = []
    for name in ("load_many", "load_rows"):
        real = getattr(tables, name)

        def counting(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            reads.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(tables, name, counting)
    monkeypatch.setattr(rebuild, "PAGE", 4)
    assert rebuild.verify(store, cache_rows=1) == []  # dropped after every page
    assert reads == []


def a_history(store: EventStore) -> History:
    history = History(store)
    assert history.push(list(PRELUDE)) == ["applied"] * len(PRELUDE)
    return history


def test_verify_names_every_hand_edited_field_and_rebuild_restores_it(store: EventStore) -> None:
    history = a_history(store)
    owner = history.owner
    before = live_rows(store, owner)
    show_key = next(key for key in before if key[0] == "shows")
    cost_key = next(key for key in before if key[0] == "costs")
    stray = uuid.uuid4()
    with store.sql() as sql:
        sql.execute(
            'UPDATE shows SET body = replace(body, \'"city":"Oslo"\', \'"city":"Bergen"\'), '
            "sync_pos = sync_pos + 100 WHERE owner = ? AND id = ?",
            [owner, show_key[1]],
        )
        sql.execute("DELETE FROM costs WHERE owner = ? AND id = ?", [owner, cost_key[1]])
        sql.execute(
            "INSERT INTO workouts (owner, id, version, sync_pos, created_at, updated_at, body, "
            "hidden) SELECT owner, ?, version, sync_pos, created_at, updated_at, body, hidden "
            "FROM workouts WHERE owner = ?",
            [stray, owner],
        )

    found = {(d.table, d.owner, d.id, d.field): (d.live, d.replayed) for d in rebuild.verify(store)}
    show_sync = before[show_key].sync_pos
    assert found == {
        ("shows", owner, show_key[1], "data.city"): ("Bergen", "Oslo"),
        ("shows", owner, show_key[1], "sync_pos"): (show_sync + 100, show_sync),
        ("costs", owner, cost_key[1], "(row)"): ("absent", "present"),
        ("workouts", owner, stray, "(row)"): ("present", "absent"),
    }

    old_cursor = history.cursors[-1]
    done = rebuild.rebuild(store)
    assert (done.changed, done.reset) == (3, True)
    assert live_rows(store, owner) == before
    assert rebuild.verify(store) == []
    # The client's copy holds the edited rows: its cursor now gets a reset.
    key = pull_cursors.derive_key("test")
    page = pull(store, key, owner, Since(cursor=old_cursor), 100)
    assert page.reset is True


def test_a_rebuild_fills_emptied_tables_back(store: EventStore) -> None:
    history = a_history(store)
    history.push([op("show", uuid.uuid4(), "create", show_data()) for _ in range(3)])
    before = everything(store)
    with store.sql() as sql:
        for table in ("shows", "costs", "workouts", "inventory"):
            sql.execute(f"DELETE FROM {table}")
    done = rebuild.rebuild(store)
    assert (done.changed, done.reset) == (len(before), True)
    assert everything(store) == before


def test_rebuilding_one_table_leaves_the_others_as_they_are(store: EventStore) -> None:
    owner = a_history(store).owner
    with store.sql() as sql:
        sql.execute("UPDATE shows SET status = 'edited' WHERE owner = ?", [owner])
        sql.execute("UPDATE inventory SET sku = 'edited' WHERE owner = ?", [owner])
    done = rebuild.rebuild(store, ["shows"])
    assert done.tables == ["shows"] and done.changed == 2
    assert {(d.table, d.field) for d in rebuild.verify(store)} == {("inventory", "sku")}
    with pytest.raises(rebuild.RebuildError, match="unknown read table 'shoes'"):
        rebuild.rebuild(store, ["shoes"])


@pytest.mark.parametrize("name", list(rebuild.NEEDS))
def test_one_table_rebuilt_alone_over_many_pages_changes_nothing(
    store: EventStore, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of two events: the rows of later pages update rows earlier pages made, which a
    # rebuild saves into copies of only the tables it builds.
    history = a_history(store)
    show, cost, workout, product = (IDS[e][0] for e in ("show", "cost", "workout", "product"))
    later = [
        op("cost", cost, "update", {"amount": "95"}, base=1),
        op("show", show, "update", {"city": "Bergen"}, base=1),
        op("workout", workout, "log_set",
           {"exercise": "Squat", "reps": 3, "weight": "110", "unit": "kg"}),
        op("product", product, "record_sale",
           {"quantity": 2, "unit_price": "4.50", "sold_at": "2026-11-20T18:04:00Z"}),
        op("product", product, "adjust_stock", {"delta": 4, "reason": "found"}),
    ]  # fmt: skip
    assert history.push(later) == ["applied"] * len(later)
    before = everything(store)
    monkeypatch.setattr(rebuild, "PAGE", 2)
    done = rebuild.rebuild(store, [name])
    assert (done.tables, done.changed, done.reset) == ([name], 0, False)
    assert everything(store) == before
    assert rebuild.verify(store) == []


def test_a_changed_definition_rebuilds_every_table_under_a_new_epoch(store: EventStore) -> None:
    a_history(store)
    with store.sql() as sql:
        sql.execute("UPDATE projection_state SET definition = 0 WHERE name = ?", [READ_TABLES])
    before, epoch_before = everything(store), current_epoch(store)
    done = rebuild.rebuild(store, ["costs"])
    assert done.tables == list(tables.TABLES.values())
    assert done.reset and current_epoch(store) == epoch_before + 1
    assert everything(store) == before
    with store.snapshot() as sql:
        projection = projection_state.read(sql, READ_TABLES)
    assert projection is not None and projection.definition >= 1


def test_one_rebuild_at_a_time(store: EventStore) -> None:
    with (
        projection_state.Lease(store, READ_TABLES, "someone else"),
        pytest.raises(projection_state.LeaseHeld),
    ):
        rebuild.verify(store)
    assert rebuild.verify(store) == []  # released


def test_a_rebuild_turns_the_garbage_collector_back_on(store: EventStore) -> None:
    # The fill pauses automatic collection (gc.disable) while it runs.
    a_history(store)
    assert gc.isenabled()
    rebuild.rebuild(store)
    assert rebuild.verify(store) == []
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_rebuild_leaves_a_collector_turned_off_by_someone_else_off(store: EventStore) -> None:
    a_history(store)
    gc.disable()
    try:
        assert rebuild.verify(store) == []
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_rebuild_leaves_objects_frozen_by_someone_else_frozen(store: EventStore) -> None:
    a_history(store)
    gc.freeze()
    try:
        assert rebuild.verify(store) == []
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_rebuild_that_loses_its_lease_stops_and_changes_nothing_live(store: EventStore) -> None:
    history = a_history(store)
    for _ in range(3):
        history.push([op("show", uuid.uuid4(), "create", show_data())])
    with store.sql() as sql:  # a drifted row the rebuild would put back
        sql.execute("UPDATE shows SET status = 'edited' WHERE owner = ?", [history.owner])
    before = everything(store)
    with store.snapshot() as sql:
        last = sql.fetchone("SELECT max(position) FROM events")
    assert last is not None
    feed_settled(store, int(last[0]))  # else the fill may see nothing, the locked catch-up all

    seen: list[tuple[int, int]] = []

    def take_over(done: int, total: int) -> None:
        seen.append((done, total))
        with store.sql() as sql:
            sql.execute(
                "UPDATE projection_state SET lease_holder = 'someone else' WHERE name = ?",
                [READ_TABLES],
            )

    page, rebuild.PAGE = rebuild.PAGE, 2
    try:
        with pytest.raises(projection_state.LeaseLost):
            rebuild.rebuild(store, progress=take_over)
    finally:
        rebuild.PAGE = page
    done, total = seen[-1]
    assert done < total - 2 * 2  # it stopped writing within two pages, not at the end
    assert everything(store) == before
    with store.snapshot() as sql:
        assert rebuild.drop_leftovers(sql) == []  # the copies were dropped


def test_pushes_between_the_fill_and_the_swap_are_caught_up(store: EventStore) -> None:
    history = a_history(store)
    during: list[uuid.UUID] = []

    def push_meanwhile(done: int, total: int) -> None:
        # Called after the fill's last page, before the locked catch-up and swap.
        the_op = op("show", uuid.uuid4(), "create", show_data())
        assert history.push([the_op]) == ["applied"]
        during.append(the_op.id)

    done = rebuild.rebuild(store, progress=push_meanwhile)
    assert during and (done.changed, done.reset) == (0, False)
    assert all(("shows", show_id) in live_rows(store, history.owner) for show_id in during)
    assert rebuild.verify(store) == []


def test_pulls_during_a_rebuild_see_the_tables_wholly_before_or_wholly_after(
    store: EventStore,
) -> None:
    history = History(store)
    shows = [op("show", uuid.uuid4(), "create", show_data(city="Oslo")) for _ in range(30)]
    assert history.push(shows) == ["applied"] * 30
    with store.sql() as sql:  # every live row drifted from the log
        sql.execute("UPDATE shows SET body = replace(body, '\"Oslo\"', '\"Bergen\"')")
    key = pull_cursors.derive_key("test")
    seen: list[set[str]] = []
    done = threading.Event()

    def puller() -> None:
        while True:
            finished = done.is_set()
            page = pull(store, key, history.owner, Since(), 100)
            seen.append({msgspec.json.decode(c.data)["city"] for c in page.changes if c.data})
            if finished:
                return

    thread = threading.Thread(target=puller)
    thread.start()
    try:
        assert rebuild.rebuild(store).changed == 30
    finally:
        done.set()
        thread.join()
    assert seen[0] <= {"Bergen", "Oslo"} and seen[-1] == {"Oslo"}
    assert all(cities in ({"Bergen"}, {"Oslo"}) for cities in seen), "a pull saw a mix"


def test_a_rebuild_while_pushes_commit_loses_none_of_them(store: EventStore) -> None:
    owners = [a_history(store) for _ in range(3)]
    stop = threading.Event()
    pushed: list[tuple[History, uuid.UUID]] = []
    errors: list[BaseException] = []

    def pusher(history: History) -> None:
        try:
            while not stop.is_set():
                the_op = op("show", uuid.uuid4(), "create", show_data())
                assert history.push([the_op]) == ["applied"]
                pushed.append((history, the_op.id))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=pusher, args=(h,)) for h in owners]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            done = rebuild.rebuild(store)
            assert (done.changed, done.reset) == (0, False)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert len(pushed) > 0
    for history, show_id in pushed:
        assert ("shows", show_id) in live_rows(store, history.owner)
    assert rebuild.verify(store) == []


# -- the fill in several processes (PostgreSQL) ----------------------------------------------


def histories_in_both_parts(store: EventStore) -> list[History]:
    """Owners with a history each, at least one in each half of the feed split two ways."""
    histories: list[History] = []
    while len({part_of(h.owner, 2) for h in histories}) < 2 or len(histories) < 4:
        history = a_history(store)
        history.push([op("show", uuid.uuid4(), "create", show_data()) for _ in range(3)])
        histories.append(history)
    return histories


def test_a_fill_in_processes_builds_the_same_tables(store: EventStore) -> None:
    if store.backend != "postgres":
        pytest.skip("the feed is split by owner only on PostgreSQL")
    histories = histories_in_both_parts(store)
    before = everything(store)
    with store.sql() as sql:  # a drifted row in each part
        for history in histories:
            sql.execute("UPDATE shows SET status = 'edited' WHERE owner = ?", [history.owner])
    drifted = {(d.owner, d.id) for d in rebuild.verify(store, workers=2) if d.field == "status"}
    assert {owner for owner, _ in drifted} == {history.owner for history in histories}
    done = rebuild.rebuild(store, workers=2)
    assert done.changed == len(drifted) and done.reset
    assert done.events == store.count_events()
    assert everything(store) == before
    assert rebuild.rebuild(store, workers=2).changed == 0
    with store.snapshot() as sql:
        assert rebuild.drop_leftovers(sql) == []


def test_pushes_during_a_fill_in_processes_are_caught_up(store: EventStore) -> None:
    if store.backend != "postgres":
        pytest.skip("the feed is split by owner only on PostgreSQL")
    histories = histories_in_both_parts(store)
    during: list[tuple[History, uuid.UUID]] = []

    def push_meanwhile(done: int, total: int) -> None:
        # Called as the processes report: some pushes land before a process's last page,
        # some after it, and the catch-up must project exactly those no process did.
        for history in histories:
            the_op = op("show", uuid.uuid4(), "create", show_data())
            assert history.push([the_op]) == ["applied"]
            during.append((history, the_op.id))

    page, rebuild.PAGE = rebuild.PAGE, 2  # many pages: pushes land between them
    try:
        done = rebuild.rebuild(store, progress=push_meanwhile, workers=2)
    finally:
        rebuild.PAGE = page
    assert during and (done.changed, done.reset) == (0, False)
    for history, show_id in during:
        assert ("shows", show_id) in live_rows(store, history.owner)
    assert rebuild.verify(store) == []


def test_processes_fill_only_large_postgresql_logs_whose_upcasters_they_can_be_given(
    store: EventStore,
) -> None:
    large = rebuild.PARALLEL_FROM
    if store.backend != "postgres":
        assert rebuild.workers_for(store, large) == 1
        return
    assert rebuild.workers_for(store, large - 1) == 1
    assert rebuild.workers_for(store, large) == min(rebuild.MAX_WORKERS, os.cpu_count() or 1)
    store.registry.declare("show.created", 2)
    store.registry.register("show.created", 1, lambda data: data)  # cannot be pickled
    assert rebuild.workers_for(store, large) == 1


def test_a_failing_fill_process_fails_the_rebuild_and_changes_nothing(store: EventStore) -> None:
    if store.backend != "postgres":
        pytest.skip("the feed is split by owner only on PostgreSQL")
    histories = histories_in_both_parts(store)
    with store.sql() as sql:  # a drifted row the rebuild would put back
        sql.execute("UPDATE shows SET status = 'edited' WHERE owner = ?", [histories[0].owner])
    before = everything(store)
    with store.sql() as sql:  # an event no projector knows: its process raises
        sql.execute(
            "INSERT INTO events (owner, stream_type, stream_id, version, type, schema_version, "
            "data, metadata, recorded_at) VALUES (?, 'show', ?, 1, 'show.teleported', 1, '{}', "
            "'{}', now())",
            [histories[-1].owner, uuid.uuid4()],
        )
    with pytest.raises(ProjectionError, match="teleported"):
        rebuild.rebuild(store, workers=2)
    assert everything(store) == before
    with store.snapshot() as sql:
        assert rebuild.drop_leftovers(sql) == []


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_verify_and_rebuild(cli_env: EventStore, run_cli: RunCli) -> None:
    store = cli_env
    owner = a_history(store).owner
    status, out, _ = run_cli("verify")
    assert status == 0 and "verify: OK" in out

    with store.sql() as sql:
        sql.execute("UPDATE costs SET body = replace(body, '\"80.00\"', '\"81.00\"')")
    status, out, _ = run_cli("verify")
    assert status == 1 and "verify: FAILED" in out
    cost_id = next(key[1] for key in live_rows(store, owner) if key[0] == "costs")
    assert f'costs\t{owner}\t{cost_id}\tdata.amount\t"81.00"\t"80.00"' in out

    status, out, _ = run_cli("rebuild", "costs")
    assert status == 0 and "1 rows changed" in out and "clients will reset" in out
    assert run_cli("verify")[0] == 0

    status, _, err = run_cli("rebuild", "nope")
    assert status == 2 and "unknown read table 'nope'" in err
