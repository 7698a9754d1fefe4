"""Deciding: every status and reason of PROTOCOL.md and each branch of the merge policy."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from domain_harness import (
    Engine,
    cost_data,
    op,
    product_data,
    show_data,
    workout_data,
)

from event_store.events import EventMetadata, StreamId
from schemas.ops import Op
from sync_server.decide import (
    Accepted,
    Conflicted,
    Decision,
    EntityState,
    Needs,
    PendingEvent,
    References,
    Rejected,
    decide,
    references_needed,
)


def accepted(decision: Decision) -> list[PendingEvent]:
    assert isinstance(decision, Accepted), decision
    return decision.events


def rejected_code(decision: Decision) -> str:
    assert isinstance(decision, Rejected), decision
    return decision.error.code


def conflict_of(decision: Decision) -> Any:
    assert isinstance(decision, Conflicted), decision
    return decision.conflict


@pytest.fixture
def engine() -> Engine:
    return Engine()


def new_show(engine: Engine, **fields: Any) -> UUID:
    show_id = uuid4()
    accepted(engine.push(op("show", show_id, "create", show_data(**fields))))
    return show_id


def new_product(engine: Engine, **fields: Any) -> UUID:
    product_id = uuid4()
    accepted(engine.push(op("product", product_id, "create", product_data(**fields))))
    return product_id


# --- unknown entity / action ------------------------------------------------------------------


def test_unknown_entity() -> None:
    assert rejected_code(decide(op("planet", uuid4(), "create"), None)) == "unknown_entity"


@pytest.mark.parametrize(
    ("entity", "action"),
    [
        ("show", "log_set"),
        ("show", "record_sale"),
        ("cost", "adjust_stock"),
        ("product", "explode"),
    ],
)
def test_unknown_action(entity: str, action: str) -> None:
    assert rejected_code(decide(op(entity, uuid4(), action, {}), None)) == "unknown_action"


def test_state_of_another_entity_is_a_caller_bug(engine: Engine) -> None:
    show_id = new_show(engine)
    state = EntityState.from_row("show", engine.row("show", show_id))
    with pytest.raises(ValueError):
        decide(op("show", uuid4(), "update", {"city": "Paris"}, base=1), state)


# --- create -------------------------------------------------------------------------------------


def test_create_emits_the_full_canonical_fields() -> None:
    show_id = uuid4()
    decision = decide(op("show", show_id, "create", show_data(fee=12000)), None)
    [event] = accepted(decision)
    assert event.stream == StreamId("show", show_id)
    assert event.type == "show.created"
    assert event.data["fee"] == "12000.00"
    assert event.data["currency"] == "EUR"
    assert event.data["venue"] is None
    assert isinstance(decision, Accepted)
    assert decision.version_after(event.stream, 0) == 1


def test_pending_event_becomes_a_new_event_at_the_current_schema() -> None:
    pending = PendingEvent(StreamId("show", uuid4()), "show.deleted", {})
    new = pending.new_event(EventMetadata(op_id="x"))
    assert (new.type, new.schema_version, new.metadata.op_id) == ("show.deleted", 1, "x")


def test_create_invalid_payload_is_rejected_with_paths() -> None:
    decision = decide(op("show", uuid4(), "create", show_data(fee="-1", country="es")), None)
    assert rejected_code(decision) == "validation_failed"
    assert isinstance(decision, Rejected)
    assert decision.error.errors is not None
    assert {error.path for error in decision.error.errors} == {"data.fee", "data.country"}


def test_create_of_an_existing_id_conflicts(engine: Engine) -> None:
    show_id = new_show(engine)
    conflict = conflict_of(engine.push(op("show", show_id, "create", show_data(city="Paris"))))
    assert conflict.reason == "already_exists"
    assert conflict.server_version == 1
    assert conflict.server_data["city"] == "Madrid"


def test_create_of_a_deleted_id_conflicts_too(engine: Engine) -> None:
    show_id = new_show(engine)
    accepted(engine.push(op("show", show_id, "delete", base=1)))
    conflict = conflict_of(engine.push(op("show", show_id, "create", show_data())))
    assert (conflict.reason, conflict.server_version) == ("already_exists", 2)


# --- update and delete: existence and base_version ---------------------------------------------


@pytest.mark.parametrize(("action", "data"), [("update", {"city": "Paris"}), ("delete", {})])
def test_update_and_delete_of_a_missing_entity(action: str, data: dict[str, Any]) -> None:
    assert rejected_code(decide(op("show", uuid4(), action, data, base=1), None)) == "not_found"


@pytest.mark.parametrize("action", ["update", "delete"])
@pytest.mark.parametrize("base", [None, -1, 2, 99])
def test_bad_base_versions_are_validation_failures(
    engine: Engine, action: str, base: int | None
) -> None:
    show_id = new_show(engine)
    decision = engine.push(op("show", show_id, action, {"city": "Paris"}, base=base))
    assert rejected_code(decision) == "validation_failed"
    assert isinstance(decision, Rejected)
    assert decision.error.errors is not None
    assert [error.path for error in decision.error.errors] == ["base_version"]


def test_missing_base_version_and_bad_data_are_reported_together() -> None:
    decision = decide(op("show", uuid4(), "update", {"fee": -1}), None)
    assert isinstance(decision, Rejected)
    assert decision.error.errors is not None
    assert [error.path for error in decision.error.errors] == ["base_version", "data.fee"]


@pytest.mark.parametrize("base", [1, 2])
@pytest.mark.parametrize(("action", "data"), [("update", {"city": "Paris"}), ("delete", {})])
def test_update_and_delete_on_a_deleted_entity(
    engine: Engine, base: int, action: str, data: dict[str, Any]
) -> None:
    show_id = new_show(engine)
    accepted(engine.push(op("show", show_id, "delete", base=1)))
    conflict = conflict_of(engine.push(op("show", show_id, action, data, base=base)))
    assert conflict.reason == "entity_deleted"
    assert conflict.server_version == 2
    assert conflict.server_data["city"] == "Madrid"


# --- merge policy -------------------------------------------------------------------------------


def test_update_at_the_current_version_emits_only_changed_fields(engine: Engine) -> None:
    show_id = new_show(engine)
    decision = engine.push(
        op("show", show_id, "update", {"city": "Madrid", "fee": "13000"}, base=1)
    )
    [event] = accepted(decision)
    assert (event.type, event.data) == ("show.updated", {"fee": "13000.00"})
    assert engine.row("show", show_id).version == 2


def test_update_that_changes_nothing_is_applied_without_events(engine: Engine) -> None:
    show_id = new_show(engine)
    decision = engine.push(op("show", show_id, "update", {"fee": "12000", "venue": None}, base=1))
    assert accepted(decision) == []
    assert isinstance(decision, Accepted)
    assert decision.version_after(StreamId("show", show_id), 1) == 1


def test_stale_update_on_other_fields_merges(engine: Engine) -> None:
    show_id = new_show(engine)
    accepted(engine.push(op("show", show_id, "update", {"fee": "13000"}, base=1)))
    accepted(engine.push(op("show", show_id, "update", {"venue": "Wizink"}, base=2)))
    [event] = accepted(engine.push(op("show", show_id, "update", {"city": "Paris"}, base=1)))
    assert event.data == {"city": "Paris"}
    data = engine.data("show", show_id)
    assert (data["city"], data["fee"], data["venue"]) == ("Paris", "13000.00", "Wizink")


def test_stale_update_on_a_changed_field_conflicts_with_the_overlap(engine: Engine) -> None:
    show_id = new_show(engine)
    accepted(
        engine.push(op("show", show_id, "update", {"fee": "13000", "status": "pending"}, base=1))
    )
    accepted(engine.push(op("show", show_id, "update", {"venue": "Wizink"}, base=2)))
    stale = {"status": "confirmed", "fee": "14000", "city": "Paris", "notes": "x"}
    conflict = conflict_of(engine.push(op("show", show_id, "update", stale, base=1)))
    assert conflict.reason == "version_mismatch"
    assert conflict.fields == ["fee", "status"]
    assert conflict.server_version == 3
    assert conflict.server_data == engine.data("show", show_id)
    # Changed after 2 only: venue. A base of 2 merges the fee and status changes.
    assert conflict_of(
        engine.push(op("show", show_id, "update", {"venue": "X"}, base=2))
    ).fields == ["venue"]
    accepted(engine.push(op("show", show_id, "update", stale, base=2)))


def test_stale_update_conflicts_even_when_the_value_is_the_same(engine: Engine) -> None:
    # The policy looks at which fields moved, not at values: the author did not see the move.
    show_id = new_show(engine)
    accepted(engine.push(op("show", show_id, "update", {"fee": "13000"}, base=1)))
    conflict = conflict_of(engine.push(op("show", show_id, "update", {"fee": "13000"}, base=1)))
    assert conflict.fields == ["fee"]


def test_delete_at_the_current_version(engine: Engine) -> None:
    show_id = new_show(engine)
    accepted(engine.push(op("show", show_id, "update", {"fee": "1"}, base=1)))
    [event] = accepted(engine.push(op("show", show_id, "delete", {"ignored": True}, base=2)))
    assert (event.type, event.data) == ("show.deleted", {})


def test_stale_delete_conflicts_with_everything_changed_since(engine: Engine) -> None:
    show_id = new_show(engine)
    accepted(engine.push(op("show", show_id, "update", {"fee": "1"}, base=1)))
    accepted(engine.push(op("show", show_id, "update", {"city": "Paris"}, base=2)))
    conflict = conflict_of(engine.push(op("show", show_id, "delete", base=1)))
    assert (conflict.reason, conflict.fields, conflict.server_version) == (
        "version_mismatch",
        ["city", "fee"],
        3,
    )
    assert conflict_of(engine.push(op("show", show_id, "delete", base=2))).fields == ["city"]


# --- commutative actions ------------------------------------------------------------------------


def test_stock_actions_ignore_base_version(engine: Engine) -> None:
    product_id = new_product(engine, quantity=10)
    accepted(engine.push(op("product", product_id, "update", {"name": "Tee"}, base=1)))
    adjust = {"delta": 5, "reason": "delivery"}
    for base in (None, 0, 1, 99, -3):
        accepted(engine.push(op("product", product_id, "adjust_stock", adjust, base=base)))
    assert engine.data("product", product_id)["quantity"] == 35


def test_stock_never_goes_below_zero(engine: Engine) -> None:
    product_id = new_product(engine, quantity=3)
    sale = {"unit_price": "4.50", "sold_at": "2026-11-01T10:00:00Z"}
    decision = engine.push(op("product", product_id, "record_sale", {**sale, "quantity": 4}))
    assert rejected_code(decision) == "insufficient_stock"
    drop = {"delta": -4, "reason": "broken"}
    assert rejected_code(engine.push(op("product", product_id, "adjust_stock", drop))) == (
        "insufficient_stock"
    )
    accepted(engine.push(op("product", product_id, "record_sale", {**sale, "quantity": 3})))
    assert engine.data("product", product_id)["quantity"] == 0
    assert rejected_code(
        engine.push(op("product", product_id, "adjust_stock", {**drop, "delta": -1}))
    ) == ("insufficient_stock")


@pytest.mark.parametrize(
    ("entity", "action", "data"),
    [
        ("product", "adjust_stock", {"delta": 1, "reason": "found"}),
        (
            "product",
            "record_sale",
            {"quantity": 1, "unit_price": "1", "sold_at": "2026-11-01T10:00:00Z"},
        ),
        ("workout", "log_set", {"exercise": "Squat", "reps": 5, "weight": "100", "unit": "kg"}),
    ],
)
def test_commutative_actions_on_missing_and_deleted(
    engine: Engine, entity: str, action: str, data: dict[str, Any]
) -> None:
    assert rejected_code(engine.push(op(entity, uuid4(), action, data))) == "not_found"
    entity_id = uuid4()
    create = product_data(quantity=5) if entity == "product" else workout_data()
    accepted(engine.push(op(entity, entity_id, "create", create)))
    accepted(engine.push(op(entity, entity_id, "delete", base=1)))
    assert conflict_of(engine.push(op(entity, entity_id, action, data))).reason == "entity_deleted"
    bad = {**data, "unexpected": 1}
    assert rejected_code(engine.push(op(entity, entity_id, action, bad))) == "validation_failed"


def test_log_set_appends_to_the_named_exercise_or_adds_it(engine: Engine) -> None:
    workout_id = uuid4()
    accepted(engine.push(op("workout", workout_id, "create", workout_data())))
    one_set = {"reps": 3, "weight": "110", "unit": "kg"}
    [event] = accepted(
        engine.push(op("workout", workout_id, "log_set", {"exercise": "Squat", **one_set}))
    )
    assert event.type == "workout.set_logged"
    accepted(engine.push(op("workout", workout_id, "log_set", {"exercise": "Deadlift", **one_set})))
    exercises = engine.data("workout", workout_id)["exercises"]
    assert [(e["name"], len(e["sets"])) for e in exercises] == [("Squat", 2), ("Deadlift", 1)]


def test_log_set_keeps_the_workout_within_its_limits(engine: Engine) -> None:
    workout_id = uuid4()
    one_set = {"reps": 5, "weight": "100", "unit": "kg"}
    exercises = [{"name": f"E{i}", "sets": [one_set] * 20} for i in range(50)]
    accepted(engine.push(op("workout", workout_id, "create", workout_data(exercises=exercises))))
    full_set = engine.push(op("workout", workout_id, "log_set", {"exercise": "E7", **one_set}))
    assert rejected_code(full_set) == "validation_failed"
    full_workout = engine.push(op("workout", workout_id, "log_set", {"exercise": "New", **one_set}))
    assert rejected_code(full_workout) == "validation_failed"
    exercises[7] = {"name": "E7", "sets": [one_set] * 19}
    accepted(engine.push(op("workout", workout_id, "update", {"exercises": exercises}, base=1)))
    accepted(engine.push(op("workout", workout_id, "log_set", {"exercise": "E7", **one_set})))
    assert rejected_code(
        engine.push(op("workout", workout_id, "log_set", {"exercise": "E7", **one_set}))
    ) == ("validation_failed")


# --- references: cost -> show -----------------------------------------------------------------


def test_cost_of_a_show_created_earlier_in_the_batch(engine: Engine) -> None:
    show_id = new_show(engine)
    [event] = accepted(engine.push(op("cost", uuid4(), "create", cost_data(show_id))))
    assert event.type == "cost.created"


def test_cost_naming_a_missing_or_deleted_show_is_an_invalid_reference(engine: Engine) -> None:
    decision = engine.push(op("cost", uuid4(), "create", cost_data(uuid4())))
    assert rejected_code(decision) == "invalid_reference"
    assert isinstance(decision, Rejected)
    assert decision.error.errors is not None
    assert decision.error.errors[0].path == "data.show_id"
    show_id = new_show(engine)
    accepted(engine.push(op("show", show_id, "delete", base=1)))
    assert rejected_code(engine.push(op("cost", uuid4(), "create", cost_data(show_id)))) == (
        "invalid_reference"
    )


def test_another_owners_show_is_not_loaded_so_it_is_an_invalid_reference() -> None:
    # The caller loads only the owner's rows: a foreign show reaches decide as absent.
    decision = decide(op("cost", uuid4(), "create", cost_data(uuid4())), None, References())
    assert rejected_code(decision) == "invalid_reference"


def test_cost_update_checks_only_a_new_show(engine: Engine) -> None:
    show_a, show_b = new_show(engine), new_show(engine)
    cost_id = uuid4()
    accepted(engine.push(op("cost", cost_id, "create", cost_data(show_a))))
    accepted(engine.push(op("cost", cost_id, "update", {"amount": "10"}, base=1)))
    assert rejected_code(
        engine.push(op("cost", cost_id, "update", {"show_id": str(uuid4())}, base=2))
    ) == ("invalid_reference")
    [event] = accepted(engine.push(op("cost", cost_id, "update", {"show_id": str(show_b)}, base=2)))
    assert event.data == {"show_id": str(show_b)}


def test_references_needed() -> None:
    show_id, cost_id = uuid4(), uuid4()
    needs = references_needed(op("cost", cost_id, "create", cost_data(show_id)))
    assert needs == Needs(frozenset({("costs", cost_id), ("shows", show_id)}), frozenset())
    needs = references_needed(op("cost", cost_id, "update", {"show_id": "nonsense"}, base=1))
    assert needs.rows == {("costs", cost_id)}
    product_id = uuid4()
    needs = references_needed(op("product", product_id, "update", {"sku": "A"}, base=1))
    assert needs == Needs(frozenset({("inventory", product_id)}), frozenset({"A"}))
    assert references_needed(op("planet", uuid4(), "create")) == Needs()


# --- sku uniqueness -----------------------------------------------------------------------------


def test_sku_is_unique_among_live_products(engine: Engine) -> None:
    first = new_product(engine, sku="MUG")
    decision = engine.push(op("product", uuid4(), "create", product_data(sku="MUG")))
    assert rejected_code(decision) == "validation_failed"
    assert isinstance(decision, Rejected)
    assert decision.error.errors is not None
    assert decision.error.errors[0].path == "data.sku"
    other = new_product(engine, sku="CAP")
    assert rejected_code(engine.push(op("product", other, "update", {"sku": "MUG"}, base=1))) == (
        "validation_failed"
    )
    assert accepted(engine.push(op("product", first, "update", {"sku": "MUG"}, base=1))) == []
    accepted(engine.push(op("product", first, "delete", base=1)))
    accepted(engine.push(op("product", other, "update", {"sku": "MUG"}, base=1)))


def test_product_update_cannot_set_quantity(engine: Engine) -> None:
    product_id = new_product(engine)
    decision = engine.push(op("product", product_id, "update", {"quantity": 99}, base=1))
    assert rejected_code(decision) == "validation_failed"


def test_stock_moves_do_not_block_updates_of_other_fields(engine: Engine) -> None:
    product_id = new_product(engine, quantity=10)
    accepted(engine.push(op("product", product_id, "adjust_stock", {"delta": -2, "reason": "x"})))
    accepted(engine.push(op("product", product_id, "update", {"reorder_point": 3}, base=1)))
    assert engine.row("product", product_id).version == 3


# --- cascade ------------------------------------------------------------------------------------


def test_deleting_a_show_deletes_its_live_costs(engine: Engine) -> None:
    show_id, other_show = new_show(engine), new_show(engine)
    costs = [uuid4() for _ in range(3)]
    for cost_id in costs:
        accepted(engine.push(op("cost", cost_id, "create", cost_data(show_id))))
    accepted(engine.push(op("cost", costs[0], "delete", base=1)))
    accepted(engine.push(op("cost", costs[1], "update", {"show_id": str(other_show)}, base=1)))
    moved_in = uuid4()
    accepted(engine.push(op("cost", moved_in, "create", cost_data(other_show))))
    accepted(engine.push(op("cost", moved_in, "update", {"show_id": str(show_id)}, base=1)))
    events = accepted(engine.push(op("show", show_id, "delete", base=1)))
    assert [(event.type, event.stream.id) for event in events] == [
        ("show.deleted", show_id),
        *sorted([("cost.deleted", costs[2]), ("cost.deleted", moved_in)], key=lambda e: e[1]),
    ]
    assert engine.row("cost", costs[2]).deleted
    assert not engine.row("cost", costs[1]).deleted


def test_decide_without_cascade_references_deletes_the_show_alone(engine: Engine) -> None:
    show_id = new_show(engine)
    state = EntityState.from_row("show", engine.row("show", show_id))
    events = accepted(
        decide(Op(op_id=uuid4(), entity="show", id=show_id, action="delete", base_version=1), state)
    )
    assert [event.type for event in events] == ["show.deleted"]
