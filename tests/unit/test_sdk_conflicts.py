"""Settling conflicts (``client_sdk.conflicts``) and the optimistic view (``client_sdk.overlay``):
pure functions, checked case by case."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from client_sdk.conflicts import ConflictInfo, Policy, settle
from client_sdk.overlay import LocalState, view
from client_sdk.store import QueuedOp
from schemas.results import Conflict

SERVER = {
    "date": "2026-12-01", "city": "Madrid", "country": "ES", "venue": None, "fee": "130.00",
    "currency": "EUR", "status": "confirmed", "mgmt_agency": None, "mgmt_pct": "0",
    "booking_agency": None, "booking_pct": "0", "wht_pct": "0", "notes": None, "net": "130.00",
}  # fmt: skip


def op(
    action: str,
    data: dict[str, Any],
    seen: dict[str, Any] | None = None,
    entity: str = "show",
    acked: int | None = None,
) -> QueuedOp:
    return QueuedOp(1, uuid.uuid4(), entity, uuid.uuid4(), action, 3, data, seen, "t", True, acked)


def conflict(reason: str = "version_mismatch", fields: tuple[str, ...] = ("fee",)) -> Conflict:
    return Conflict(reason, 5, SERVER, list(fields))  # type: ignore[arg-type]


# -- the three-way check -------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["server_wins", "client_wins", "merge"])
def test_a_field_back_at_the_value_the_user_saw_is_no_conflict(policy: Policy) -> None:
    mine = op("update", {"fee": "200.00"}, seen={"fee": "130.00"})
    settled = settle(mine, conflict(), policy)
    assert settled.loss is None and settled.resend is not None
    assert (settled.resend.action, settled.resend.data) == ("update", {"fee": "200.00"})
    assert settled.resend.base_version == 5
    assert settled.resend.seen == {"fee": "130.00"}


def test_server_wins_drops_the_op_and_reports_every_value() -> None:
    mine = op("update", {"fee": "90.00", "city": "Bilbao"}, {"fee": "100.00", "city": "Madrid"})
    settled = settle(mine, conflict(), "server_wins")
    assert settled.resend is None
    assert settled.loss is not None
    assert (settled.loss.code, settled.loss.lost_fields) == ("version_mismatch", ("fee", "city"))


def test_client_wins_resends_everything_on_the_servers_version() -> None:
    mine = op("update", {"fee": "90.00", "city": "Bilbao"}, {"fee": "100.00", "city": "Madrid"})
    settled = settle(mine, conflict(), "client_wins")
    assert settled.loss is None and settled.resend is not None
    assert settled.resend.data == {"fee": "90.00", "city": "Bilbao"}
    assert settled.resend.base_version == 5


def test_merge_keeps_the_fields_only_the_client_changed() -> None:
    mine = op("update", {"fee": "90.00", "city": "Bilbao"}, {"fee": "100.00", "city": "Madrid"})
    settled = settle(mine, conflict(), "merge")
    assert settled.resend is not None and settled.resend.data == {"city": "Bilbao"}
    assert settled.loss is not None and settled.loss.lost_fields == ("fee",)


def test_merge_lets_a_deletion_win_over_edits() -> None:
    mine = op("delete", {}, {"fee": "100.00", "city": "Madrid"})
    settled = settle(mine, conflict(fields=("fee",)), "merge")
    assert settled.resend is not None and settled.resend.action == "delete"
    assert settled.resend.base_version == 5 and settled.loss is None


def test_a_callback_gets_both_sides_and_its_fields_are_resent() -> None:
    calls: list[ConflictInfo] = []

    def resolve(info: ConflictInfo) -> dict[str, Any]:
        calls.append(info)
        return {"fee": "115.00"}

    mine = op("update", {"fee": "100.00"}, {"fee": "120.00"})
    settled = settle(mine, conflict(), resolve)
    (info,) = calls
    assert (info.mine, info.seen, info.theirs, info.fields) == (
        {"fee": "100.00"},
        {"fee": "120.00"},
        SERVER,
        ("fee",),
    )
    assert settled.resend is not None and settled.resend.data == {"fee": "115.00"}


def test_a_callbacks_answer_keeps_the_fields_in_no_conflict() -> None:
    mine = op("update", {"fee": "100.00", "notes": "cash"}, {"fee": "120.00", "notes": None})
    settled = settle(mine, conflict(), lambda info: {"fee": Decimal("115")})
    assert settled.loss is None and settled.resend is not None
    assert settled.resend.data == {"notes": "cash", "fee": "115.00"}
    assert settle(mine, conflict(), lambda info: {}).resend.data == {"notes": "cash"}  # type: ignore[union-attr]


def test_a_callback_returning_invalid_fields_is_reported_not_sent() -> None:
    mine = op("update", {"fee": "100.00"}, {"fee": "120.00"})
    settled = settle(mine, conflict(), lambda info: {"fee": -1})
    assert settled.resend is None
    assert settled.loss is not None and settled.loss.code == "invalid_resolution"
    assert settled.loss.errors[0]["path"] == "data.fee"


def test_a_callback_answering_nonsense_is_a_programming_error() -> None:
    mine = op("update", {"fee": "100.00"}, {"fee": "120.00"})
    with pytest.raises(ValueError, match="conflict policy"):
        settle(mine, conflict(), lambda info: "whatever")  # type: ignore[arg-type, return-value]


# -- conflicts no policy changes -----------------------------------------------------------------


def test_an_edit_of_a_deleted_entity_is_reported_and_a_deletion_is_done() -> None:
    edit = settle(op("update", {"city": "Oslo"}, {}), conflict("entity_deleted", ()), "client_wins")
    assert edit.resend is None and edit.loss is not None and edit.loss.lost_fields == ("city",)
    gone = settle(op("delete", {}, {}), conflict("entity_deleted", ()), "server_wins")
    assert gone.resend is None and gone.loss is None


def test_the_same_create_twice_is_no_conflict() -> None:
    mine = op("create", {k: v for k, v in SERVER.items() if k != "net"})
    settled = settle(mine, conflict("already_exists", ()), "server_wins")
    assert settled.resend is None and settled.loss is None


@pytest.mark.parametrize(
    ("policy", "resent", "lost"),
    [
        ("server_wins", None, ("city",)),
        ("merge", None, ("city",)),
        ("client_wins", {"city": "Bilbao"}, None),
    ],
)
def test_two_creates_of_one_id(
    policy: Policy, resent: dict[str, Any] | None, lost: tuple[str, ...] | None
) -> None:
    fields = {k: v for k, v in SERVER.items() if k != "net"}
    settled = settle(
        op("create", {**fields, "city": "Bilbao"}), conflict("already_exists", ()), policy
    )
    assert (settled.resend.data if settled.resend else None) == resent
    assert (settled.loss.lost_fields if settled.loss else None) == lost


def test_client_wins_on_a_create_cannot_change_create_only_fields() -> None:
    theirs = {"sku": "A", "name": "Pens", "unit": "unit", "quantity": 10, "reorder_point": 0}
    mine = op("create", {**theirs, "quantity": 50, "name": "Pads"}, entity="product")
    settled = settle(mine, Conflict("already_exists", 1, theirs, []), "client_wins")
    assert settled.resend is not None and settled.resend.data == {"name": "Pads"}
    assert settled.loss is not None and settled.loss.lost_fields == ("quantity",)


# -- the view ------------------------------------------------------------------------------------


def test_the_view_applies_queued_ops_in_order() -> None:
    workout = {"name": "Legs", "exercises": [{"name": "squat", "sets": [{"reps": 5}]}]}
    ops = [
        op("log_set", {"exercise": "squat", "reps": 3, "weight": "50", "unit": "kg"}),
        op("log_set", {"exercise": "lunge", "reps": 8, "weight": "10", "unit": "kg"}),
        op("update", {"name": "Legs+"}),
    ]
    state = view(2, False, workout, ops)
    assert state == LocalState(
        2,
        False,
        {
            "name": "Legs+",
            "exercises": [
                {"name": "squat", "sets": [{"reps": 5}, {"reps": 3, "weight": "50", "unit": "kg"}]},
                {"name": "lunge", "sets": [{"reps": 8, "weight": "10", "unit": "kg"}]},
            ],
        },
        pending=True,
    )
    assert workout["exercises"][0]["sets"] == [{"reps": 5}]  # the pulled row is not touched


def test_stock_moves_and_deletion_in_the_view() -> None:
    product = {"quantity": 10, "low_stock": False}
    moved = view(1, False, product, [
        op("adjust_stock", {"delta": 5, "reason": "x"}, entity="product"),
        op("record_sale", {"quantity": 12, "unit_price": "1", "sold_at": "t"}, entity="product"),
    ])  # fmt: skip
    assert moved is not None and moved.data == {"quantity": 3, "low_stock": False}  # stale
    gone = view(1, False, product, [op("delete", {}, entity="product")])
    assert gone is not None and gone.deleted


def test_ops_the_pulled_row_already_holds_are_not_applied_twice() -> None:
    applied = op("adjust_stock", {"delta": 5, "reason": "x"}, entity="product", acked=4)
    assert view(4, False, {"quantity": 15}, [applied]) == LocalState(
        4, False, {"quantity": 15}, pending=False
    )
    shown = view(3, False, {"quantity": 10}, [applied])
    assert shown == LocalState(4, False, {"quantity": 15}, pending=True)


def test_ops_bound_to_be_refused_leave_the_view_as_it_is() -> None:
    assert view(None, False, None, [op("update", {"fee": "1"})]) is None
    tombstone = view(3, True, {}, [op("update", {"fee": "1"})])
    assert tombstone is not None and tombstone.deleted and tombstone.data == {}
    existing = view(3, False, {"fee": "5"}, [op("create", {"fee": "1"})])
    assert existing is not None and existing.data == {"fee": "5"}
