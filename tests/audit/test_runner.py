"""The catch-up runner and its read model, daily sales, on both backends.

Runners apply each event exactly once, even two of them at once against one database while
sales keep coming; a model whose definition changed is replayed from the start under a new
epoch; read tables whose definition changed are rebuilt, and old cursors get ``reset``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import Database, RunCli
from domain_harness import op, product_data
from histories import History

from event_store import START, EventStore, RecordedEvent, migrate
from projections import projection_state, runner, sales
from projections.project import READ_TABLES
from projections.sales import SalesDaily, Totals
from sync_server import pull_cursors
from sync_server.pull import Since, pull
from sync_server.services import MIGRATIONS

MODEL = SalesDaily()


def table(store: EventStore) -> dict[sales.Day, Totals]:
    with store.snapshot() as sql:
        rows = sql.fetchall("SELECT owner, day, product_id, units, revenue, sales FROM sales_daily")
    return {
        sales.Day(uuid.UUID(str(o)), d, uuid.UUID(str(p))): Totals(int(u), Decimal(r), int(s))
        for o, d, p, u, r, s in rows
    }


def every_event(store: EventStore) -> list[RecordedEvent]:
    """Every committed event, read without the feed's bound at the oldest running transaction
    of the whole server (nothing of this test is in flight when it is called)."""
    with store.snapshot() as sql:
        return store.read_feed(sql, START, 10**6, appends_held=True).events


def expected(store: EventStore) -> dict[sales.Day, Totals]:
    """The report computed straight from the whole log."""
    return sales.totals_of(every_event(store))


def shop(store: EventStore, products: int = 2) -> tuple[History, list[uuid.UUID]]:
    history = History(store)
    ids = [uuid.uuid4() for _ in range(products)]
    ops = [op("product", id_, "create", product_data(sku=f"SKU-{id_.hex[:6]}", quantity=10**6))
           for id_ in ids]  # fmt: skip
    assert history.push(ops) == ["applied"] * products
    return history, ids


def sell(history: History, product_id: uuid.UUID, day: int, quantity: int = 2) -> None:
    the_op = op("product", product_id, "record_sale", {
        "quantity": quantity, "unit_price": "2.25", "sold_at": f"2026-11-{day:02d}T23:30:00-02:00",
    })  # fmt: skip
    assert history.push([the_op]) == ["applied"]


def caught_up(store: EventStore) -> bool:
    with store.snapshot() as sql:
        current = projection_state.read(sql, MODEL.name)
    last = every_event(store)[-1].checkpoint
    return current is not None and current.checkpoint >= last


def until_caught_up(store: EventStore, run: Any) -> None:
    # The global feed only shows transactions older than every one still running anywhere on
    # the server (pg_snapshot_xmin), so a round may stop short of the newest events for a moment.
    deadline = time.monotonic() + 60
    while not caught_up(store):
        assert time.monotonic() < deadline, "the runner never caught up"
        run()


def test_the_report_counts_every_sale_once_by_utc_day(store: EventStore) -> None:
    history, (mug, cap) = shop(store)
    sell(history, mug, 20)  # 23:30 at -02:00 is the 21st in UTC
    sell(history, mug, 20, quantity=3)
    sell(history, cap, 21)
    until_caught_up(store, lambda: runner.catch_up(store))
    owner = history.owner
    assert table(store) == {
        sales.Day(owner, "2026-11-21", mug): Totals(5, Decimal("11.25"), 2),
        sales.Day(owner, "2026-11-22", cap): Totals(2, Decimal("4.50"), 1),
    }
    runner.catch_up(store)  # nothing new: nothing applied twice
    assert table(store) == expected(store)
    with store.snapshot() as sql:
        report = sales.report(sql, owner, "2026-11-01", "2026-11-21")
    assert [(r.day, r.product_id, r.units, r.revenue) for r in report] == [
        ("2026-11-21", mug, 5, "11.25")
    ]


@pytest.fixture
def second(database: Database, store: EventStore) -> Iterator[EventStore]:
    """Another store on the same database: another process's connections."""
    other = database.open()
    yield other
    other.close()


def test_two_runners_in_parallel_apply_each_event_once(
    store: EventStore, second: EventStore
) -> None:
    history, products = shop(store, products=3)
    for n in range(60):
        sell(history, products[n % 3], 1 + n % 28)
    applied = [0, 0]
    stop = threading.Event()
    errors: list[BaseException] = []

    def run(index: int, on: EventStore) -> None:
        try:
            while not stop.is_set():
                applied[index] += runner.catch_up(on, batch=7)
        except BaseException as error:
            errors.append(error)

    runners = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate((store, second))]
    for thread in runners:
        thread.start()
    try:
        for n in range(40):  # sales keep coming while both run
            sell(history, products[n % 3], 1 + n % 28)
        until_caught_up(store, lambda: time.sleep(0.05))
    finally:
        stop.set()
        for thread in runners:
            thread.join()
    assert not errors, errors
    assert applied[0] + applied[1] == len(every_event(store))
    assert table(store) == expected(store)


def test_a_changed_definition_replays_the_model_under_a_new_epoch(store: EventStore) -> None:
    history, (mug, _) = shop(store)
    sell(history, mug, 3)
    until_caught_up(store, lambda: runner.catch_up(store))
    with store.sql() as sql:
        sql.execute("UPDATE sales_daily SET units = 999")
        sql.execute("UPDATE projection_state SET definition = 0 WHERE name = ?", [MODEL.name])
        before = projection_state.read(sql, MODEL.name)
    assert before is not None
    runner.catch_up(store)
    until_caught_up(store, lambda: runner.catch_up(store))
    with store.snapshot() as sql:
        after = projection_state.read(sql, MODEL.name)
    assert after is not None and after.epoch == before.epoch + 1
    assert after.definition == MODEL.definition
    assert table(store) == expected(store)


def test_read_tables_under_a_changed_definition_are_rebuilt_and_clients_reset(
    store: EventStore,
) -> None:
    history, _ = shop(store)
    old = history.cursors[-1]
    assert runner.check_read_tables(store) is None  # nothing to do
    with store.sql() as sql:
        sql.execute("UPDATE projection_state SET definition = 0 WHERE name = ?", [READ_TABLES])
    done = runner.check_read_tables(store)
    assert done is not None and done.reset
    page = pull(store, pull_cursors.derive_key("k"), history.owner, Since(cursor=old), 10)
    assert page.reset is True
    assert runner.check_read_tables(store) is None


def test_the_project_command(run_cli: RunCli, cli_env: EventStore) -> None:
    history, (mug, _) = shop(cli_env)
    sell(history, mug, 5)
    status, out, _ = run_cli("project", "--once")
    assert status == 0 and "projecting sales_daily" in out
    until_caught_up(cli_env, lambda: run_cli("project", "--once"))
    assert table(cli_env) == expected(cli_env)


def test_a_fresh_database_starts_every_model_at_the_start(backend: str, tmp_path: Path) -> None:
    from conftest import drop_database, fresh_database

    database = fresh_database(backend, tmp_path)
    store = database.open()
    try:
        migrate(store, MIGRATIONS)
        with store.snapshot() as sql:
            current = projection_state.read(sql, MODEL.name)
        assert current is not None and current.checkpoint.position == 0
        assert runner.catch_up(store) == 0
    finally:
        store.close()
        drop_database(database)
