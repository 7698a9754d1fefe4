"""Projectors: derived fields exactly, tombstones, field versions, related rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from domain_harness import T0, recorded

from event_store.events import StreamId
from projections.apply import (
    ProjectionError,
    RowCache,
    apply_event,
    keys_needed,
    load_missing,
)
from projections.rows import ReadRow, RowKey, money
from schemas.validate import validate_fields


class Log:
    """Events built by hand, with consecutive positions and per-stream versions."""

    def __init__(self) -> None:
        self.rows: dict[RowKey, ReadRow] = {}
        self.position = 0
        self.versions: dict[StreamId, int] = {}

    def emit(
        self, entity: str, id: UUID, type: str, data: dict[str, Any], at: datetime = T0
    ) -> list[RowKey]:
        stream = StreamId(entity, id)
        self.position += 1
        self.versions[stream] = self.versions.get(stream, 0) + 1
        event = recorded(
            stream, type, data, version=self.versions[stream], position=self.position, at=at
        )
        return apply_event(self.rows, event)

    def create(self, entity: str, data: dict[str, Any], at: datetime = T0) -> UUID:
        clean = validate_fields(entity, data, partial=False)
        assert isinstance(clean, dict), clean
        id = uuid4()
        self.emit(entity, id, f"{entity}.created", clean, at)
        return id

    def row(self, table: str, id: UUID) -> ReadRow:
        return self.rows[(table, id)]


SHOW = {"date": "2026-12-01", "city": "Madrid", "country": "ES", "fee": "12000.00"}


def cost(show_id: UUID, amount: str, currency: str = "EUR") -> dict[str, Any]:
    return {"show_id": str(show_id), "type": "hotel", "amount": amount, "currency": currency}


def show_derived(row: ReadRow) -> dict[str, Any]:
    keys = ("costs_total", "cost_count", "foreign_costs", "commission_total", "wht_total", "net")
    return {key: row.data[key] for key in keys}


# --- shows and costs ----------------------------------------------------------------------------


def test_show_derived_fields_with_costs_in_several_currencies() -> None:
    log = Log()
    show_id = log.create("show", {**SHOW, "mgmt_pct": "15", "booking_pct": "5.5", "wht_pct": "10"})
    log.create("cost", cost(show_id, "500"))
    log.create("cost", cost(show_id, "250.50"))
    log.create("cost", cost(show_id, "100", "USD"))
    log.create("cost", cost(show_id, "20.005", "USD"))
    log.create("cost", cost(show_id, "7", "GBP"))
    assert show_derived(log.row("shows", show_id)) == {
        "costs_total": "750.50",
        "cost_count": 5,
        "foreign_costs": {"GBP": "7.00", "USD": "120.01"},
        "commission_total": "2460.00",
        "wht_total": "1200.00",
        "net": "7589.50",
    }


def test_show_without_costs() -> None:
    log = Log()
    show_id = log.create("show", SHOW)
    assert show_derived(log.row("shows", show_id)) == {
        "costs_total": "0.00",
        "cost_count": 0,
        "foreign_costs": {},
        "commission_total": "0.00",
        "wht_total": "0.00",
        "net": "12000.00",
    }


def test_derived_money_rounds_half_up_and_net_adds_up_to_the_cent() -> None:
    log = Log()
    show_id = log.create("show", {**SHOW, "fee": "0.05", "wht_pct": "50", "mgmt_pct": "10"})
    derived = show_derived(log.row("shows", show_id))
    assert (derived["wht_total"], derived["commission_total"], derived["net"]) == (
        "0.03",
        "0.01",
        "0.01",
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0.005", "0.01"),
        ("-0.005", "-0.01"),
        ("-0.004", "0.00"),  # never a negative zero
        ("12", "12.00"),
        ("1E+12", "1000000000000.00"),  # plain notation, however large or small
        ("1E-9", "0.00"),
        ("999999999999.995", "1000000000000.00"),
    ],
)
def test_money_is_plain_text_rounded_half_up_to_cents(value: str, text: str) -> None:
    assert money(Decimal(value)) == text


def test_changing_the_show_currency_changes_which_costs_count() -> None:
    log = Log()
    show_id = log.create("show", SHOW)
    log.create("cost", cost(show_id, "10"))
    log.create("cost", cost(show_id, "30", "USD"))
    log.emit("show", show_id, "show.updated", {"currency": "USD"})
    derived = show_derived(log.row("shows", show_id))
    assert (derived["costs_total"], derived["foreign_costs"], derived["net"]) == (
        "30.00",
        {"EUR": "10.00"},
        "11970.00",
    )


def test_a_cost_event_moves_the_show_row_but_not_its_version() -> None:
    log = Log()
    show_id = log.create("show", SHOW)
    later = T0 + timedelta(hours=1)
    cost_id = uuid4()
    changed = log.emit("cost", cost_id, "cost.created", validated_cost(show_id, "100"), later)
    assert changed == [("costs", cost_id), ("shows", show_id)]
    show = log.row("shows", show_id)
    assert (show.version, show.sync_pos, show.updated_at, show.created_at) == (1, 2, later, T0)
    assert show.data["net"] == "11900.00"


def validated_cost(show_id: UUID, amount: str, currency: str = "EUR") -> dict[str, Any]:
    clean = validate_fields("cost", cost(show_id, amount, currency), partial=False)
    assert isinstance(clean, dict)
    return clean


def test_a_cost_change_that_does_not_touch_totals_leaves_the_show_alone() -> None:
    log = Log()
    show_id = log.create("show", SHOW)
    cost_id = log.create("cost", cost(show_id, "100"))
    before = log.row("shows", show_id)
    changed = log.emit("cost", cost_id, "cost.updated", {"description": "late checkout"})
    assert changed == [("costs", cost_id)]
    assert log.row("shows", show_id) == before


def test_a_cost_moving_between_shows() -> None:
    log = Log()
    show_a, show_b = log.create("show", SHOW), log.create("show", SHOW)
    cost_id = log.create("cost", cost(show_a, "100"))
    changed = log.emit("cost", cost_id, "cost.updated", {"show_id": str(show_b), "amount": "40.00"})
    assert changed == [("costs", cost_id), ("shows", show_a), ("shows", show_b)]
    a, b = log.row("shows", show_a), log.row("shows", show_b)
    assert (a.data["cost_count"], a.data["costs_total"]) == (0, "0.00")
    assert (b.data["cost_count"], b.data["costs_total"]) == (1, "40.00")
    assert (a.version, b.version, a.sync_pos, b.sync_pos) == (1, 1, 4, 4)
    assert log.row("costs", cost_id).data["show_id"] == str(show_b)


def test_deleting_a_cost_removes_it_from_its_show() -> None:
    log = Log()
    show_id = log.create("show", SHOW)
    cost_id = log.create("cost", cost(show_id, "100"))
    log.emit("cost", cost_id, "cost.deleted", {})
    assert show_derived(log.row("shows", show_id))["cost_count"] == 0
    tombstone = log.row("costs", cost_id)
    assert (tombstone.version, tombstone.deleted_at, tombstone.data["amount"]) == (2, T0, "100.00")


def test_tombstones_keep_their_last_data_and_ignore_later_cost_events() -> None:
    log = Log()
    show_id = log.create("show", SHOW)
    cost_id = log.create("cost", cost(show_id, "100"))
    deleted_at = T0 + timedelta(days=1)
    log.emit("show", show_id, "show.deleted", {}, deleted_at)
    show = log.row("shows", show_id)
    assert (show.version, show.deleted_at, show.updated_at, show.sync_pos) == (
        2,
        deleted_at,
        deleted_at,
        3,
    )
    assert show.data["net"] == "11900.00"
    # The cascade's cost.deleted does not rewrite the show's tombstone.
    assert log.emit("cost", cost_id, "cost.deleted", {}, deleted_at) == [("costs", cost_id)]
    assert log.row("shows", show_id) == show


def test_field_versions_follow_the_fields_that_change() -> None:
    log = Log()
    show_id = log.create("show", SHOW)
    versions = log.row("shows", show_id).hidden["field_versions"]
    assert set(versions.values()) == {1}
    assert "fee" in versions and "notes" in versions and "net" not in versions
    log.emit("show", show_id, "show.updated", {"fee": "1.00", "venue": "X"})
    versions = log.row("shows", show_id).hidden["field_versions"]
    assert (versions["fee"], versions["venue"], versions["city"]) == (2, 2, 1)


# --- workouts -----------------------------------------------------------------------------------


def workout(*sets: tuple[int, str, str]) -> dict[str, Any]:
    exercise = {"name": "Squat", "sets": [{"reps": r, "weight": w, "unit": u} for r, w, u in sets]}
    return {"date": "2026-11-20", "name": "Legs", "exercises": [exercise]}


def test_workout_totals_and_pounds_to_kilograms() -> None:
    log = Log()
    workout_id = log.create(
        "workout", workout((10, "100", "lb"), (5, "60.5", "kg"), (1, "0", "kg"))
    )
    data = log.row("workouts", workout_id).data
    # 10 * 100 lb = 453.59237 kg; 5 * 60.5 kg = 302.5 kg.
    assert (data["total_sets"], data["total_reps"], data["volume_kg"]) == (3, 16, "756.09")


def test_set_logged_adds_to_the_exercise_and_moves_its_field_version() -> None:
    log = Log()
    workout_id = log.create("workout", workout((1, "1", "kg")))
    log.emit(
        "workout",
        workout_id,
        "workout.set_logged",
        {"exercise": "Squat", "reps": 2, "weight": "1", "unit": "lb"},
    )
    log.emit(
        "workout",
        workout_id,
        "workout.set_logged",
        {"exercise": "Row", "reps": 3, "weight": "2", "unit": "kg"},
    )
    row = log.row("workouts", workout_id)
    assert [len(e["sets"]) for e in row.data["exercises"]] == [2, 1]
    assert (row.data["total_sets"], row.data["total_reps"], row.data["volume_kg"]) == (3, 6, "7.91")
    assert row.hidden["field_versions"]["exercises"] == 3
    assert row.hidden["field_versions"]["name"] == 1


def test_workout_update_recomputes() -> None:
    log = Log()
    workout_id = log.create("workout", workout((1, "1", "kg")))
    clean = validate_fields("workout", workout((2, "50", "kg")), partial=True)
    assert isinstance(clean, dict)
    log.emit("workout", workout_id, "workout.updated", {"exercises": clean["exercises"]})
    assert log.row("workouts", workout_id).data["volume_kg"] == "100.00"


# --- inventory ----------------------------------------------------------------------------------

PRODUCT = {"sku": "MUG", "name": "Mug", "quantity": 100, "reorder_point": 10}


def sale(quantity: int, sold_at: datetime) -> dict[str, Any]:
    return {
        "quantity": quantity,
        "unit_price": "4.50",
        "sold_at": sold_at.isoformat().replace("+00:00", "Z"),
    }


def inventory(log: Log, product_id: UUID) -> dict[str, Any]:
    data = log.row("inventory", product_id).data
    return {
        key: data[key]
        for key in ("quantity", "low_stock", "sold_30d", "avg_daily_sales", "days_left")
    }


def test_a_new_product_has_no_sales() -> None:
    log = Log()
    product_id = log.create("product", PRODUCT)
    assert inventory(log, product_id) == {
        "quantity": 100,
        "low_stock": False,
        "sold_30d": 0,
        "avg_daily_sales": "0.00",
        "days_left": None,
    }


def test_the_30_day_window_is_computed_from_recorded_at() -> None:
    log = Log()
    product_id = log.create("product", PRODUCT)
    now = T0 + timedelta(days=40)
    log.emit("product", product_id, "product.sale_recorded", sale(5, now - timedelta(days=31)), now)
    log.emit("product", product_id, "product.sale_recorded", sale(7, now - timedelta(days=29)), now)
    log.emit("product", product_id, "product.sale_recorded", sale(2, now), now)
    log.emit("product", product_id, "product.sale_recorded", sale(3, now + timedelta(hours=1)), now)
    # 83 left, 9 sold in the window: 0.30 a day, 83 * 30 // 9 = 276 days.
    assert inventory(log, product_id) == {
        "quantity": 83,
        "low_stock": False,
        "sold_30d": 9,
        "avg_daily_sales": "0.30",
        "days_left": 276,
    }
    # Two hours later, applying any product event brings the future-dated sale in...
    later = now + timedelta(hours=2)
    log.emit("product", product_id, "product.stock_adjusted", {"delta": -3, "reason": "x"}, later)
    assert inventory(log, product_id)["sold_30d"] == 12
    # ...and 30 days after the 7-unit sale it falls out, for good.
    much_later = now + timedelta(days=1, hours=1)
    log.emit("product", product_id, "product.updated", {"name": "Big mug"}, much_later)
    assert inventory(log, product_id)["sold_30d"] == 5
    assert len(log.row("inventory", product_id).hidden["sales"]) == 2


def test_low_stock_is_inclusive_and_stock_moves() -> None:
    log = Log()
    product_id = log.create("product", PRODUCT)
    log.emit("product", product_id, "product.stock_adjusted", {"delta": -90, "reason": "count"})
    assert inventory(log, product_id)["low_stock"] is True
    log.emit("product", product_id, "product.stock_adjusted", {"delta": 1, "reason": "found"})
    assert inventory(log, product_id)["low_stock"] is False
    log.emit("product", product_id, "product.sale_recorded", sale(1, T0))
    data = inventory(log, product_id)
    assert (data["quantity"], data["low_stock"], data["days_left"]) == (10, True, 300)
    row = log.row("inventory", product_id)
    assert row.version == 4
    assert row.hidden["field_versions"]["quantity"] == 4
    assert row.hidden["field_versions"]["reorder_point"] == 1


# --- mechanics ----------------------------------------------------------------------------------


def test_keys_needed_is_a_two_step_for_cost_updates() -> None:
    log = Log()
    show_a, show_b = log.create("show", SHOW), log.create("show", SHOW)
    cost_id = log.create("cost", cost(show_a, "1"))
    event = recorded(
        StreamId("cost", cost_id), "cost.updated", {"show_id": str(show_b)}, version=2, position=9
    )
    assert keys_needed(event, {}) == {("costs", cost_id), ("shows", show_b)}
    assert keys_needed(event, log.rows) == {
        ("costs", cost_id),
        ("shows", show_a),
        ("shows", show_b),
    }

    loaded: list[set[RowKey]] = []

    def load(keys: set[RowKey]) -> dict[RowKey, ReadRow]:
        loaded.append(keys)
        return {key: log.rows[key] for key in keys if key in log.rows}

    rows: dict[RowKey, ReadRow] = {}
    load_missing(event, rows, load)
    assert loaded == [{("costs", cost_id), ("shows", show_b)}, {("shows", show_a)}]
    assert set(rows) == {("costs", cost_id), ("shows", show_a), ("shows", show_b)}


def test_load_missing_does_not_loop_on_rows_that_do_not_exist() -> None:
    event = recorded(StreamId("cost", uuid4()), "cost.deleted", {}, version=2, position=1)
    calls = []
    load_missing(event, {}, lambda keys: calls.append(keys) or {})
    assert len(calls) == 1


def test_a_row_cache_asks_for_each_key_once_whether_it_exists_or_not() -> None:
    log = Log()
    show = log.create("show", SHOW)
    present, absent, other = ("shows", show), ("shows", uuid4()), ("costs", uuid4())
    asked: list[set[RowKey]] = []

    def load(keys: set[RowKey]) -> dict[RowKey, ReadRow]:
        asked.append(set(keys))
        return {key: log.rows[key] for key in keys if key in log.rows}

    cache = RowCache(load)
    assert cache({present, absent}) == {present: log.rows[present]}
    assert cache({present, absent, other}) == {present: log.rows[present]}
    assert asked == [{present, absent}, {other}]
    sold = ("inventory", uuid4())
    cache.add({sold: log.rows[present]})  # a row read by another query
    assert cache({sold}) == {sold: log.rows[present]}
    assert len(asked) == 2


def test_events_outside_the_read_model_and_broken_logs() -> None:
    rows: dict[RowKey, ReadRow] = {}
    assert (
        apply_event(
            rows, recorded(StreamId("user", uuid4()), "user.registered", {}, version=1, position=1)
        )
        == []
    )
    with pytest.raises(ProjectionError):
        apply_event(
            rows, recorded(StreamId("show", uuid4()), "show.exploded", {}, version=1, position=2)
        )
    with pytest.raises(ProjectionError):
        apply_event(
            rows,
            recorded(
                StreamId("show", uuid4()), "show.updated", {"city": "X"}, version=2, position=3
            ),
        )


def test_rows_survive_a_json_round_trip() -> None:
    log = Log()
    show_id = log.create("show", SHOW)
    log.create("cost", cost(show_id, "1", "USD"))
    product_id = log.create("product", PRODUCT)
    log.emit("product", product_id, "product.sale_recorded", sale(1, T0))
    for row in log.rows.values():
        assert msgspec.json.decode(msgspec.json.encode(row), type=ReadRow) == row
