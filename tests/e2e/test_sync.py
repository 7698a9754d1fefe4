"""Push and pull over HTTP against a real server process, on both backends (PROTOCOL.md, "Push",
"Merge policy", "Pull"). Each test signs up its own user on the module's shared server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from api import (
    Device,
    assert_problem,
    cost,
    op,
    product,
    sale,
    show,
    sign_in,
    sign_up,
    uid,
    workout,
)

from event_store import EventStore


@pytest.fixture
def device(http: httpx.Client) -> Device:
    """A new user, signed in on one device."""
    return sign_up(http)


def event_count(server: Any, user_id: str) -> int:
    store: EventStore = server.database.open()
    try:
        with store.snapshot() as sql:
            row = sql.fetchone("SELECT count(*) FROM events WHERE owner = ?", [user_id])
    finally:
        store.close()
    assert row is not None
    return int(row[0])


def one(device: Device, the_op: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return device.push([the_op], **envelope)[0]


# -- applied, and what a pull then shows ---------------------------------------------------------


def test_a_batch_applies_in_order_and_later_ops_see_earlier_ones(device: Device) -> None:
    show_id, cost_id, workout_id, product_id = uid(), uid(), uid(), uid()
    results = device.push(
        [
            op("show", show_id, "create", show(mgmt_pct="10", wht_pct="15")),
            op("cost", cost_id, "create", cost(show_id, amount="300")),
            op("show", show_id, "update", {"fee": "13000"}, base=1),
            op("workout", workout_id, "create", workout()),
            op("workout", workout_id, "log_set", {"exercise": "Squat", "reps": 3, "weight": "110",
                                                  "unit": "kg"}),
            op("product", product_id, "create", product(quantity=5, reorder_point=2)),
            op("product", product_id, "record_sale", sale(4)),
        ]
    )  # fmt: skip
    assert [(r["status"], r.get("version")) for r in results] == [
        ("applied", 1), ("applied", 1), ("applied", 2), ("applied", 1), ("applied", 2),
        ("applied", 1), ("applied", 2),
    ]  # fmt: skip

    state = device.state()
    show_row = state[("show", show_id)]
    assert show_row["op"] == "upsert" and show_row["version"] == 2
    assert show_row["data"]["fee"] == "13000.00"
    # net = fee - commission (10%) - withholding (15%) - costs
    assert show_row["data"]["costs_total"] == "300.00"
    assert show_row["data"]["cost_count"] == 1
    assert show_row["data"]["commission_total"] == "1300.00"
    assert show_row["data"]["wht_total"] == "1950.00"
    assert show_row["data"]["net"] == "9450.00"
    assert state[("cost", cost_id)]["data"]["show_id"] == show_id
    assert state[("workout", workout_id)]["data"]["total_sets"] == 2
    assert state[("workout", workout_id)]["data"]["volume_kg"] == "830.00"
    stock = state[("product", product_id)]["data"]
    assert stock["quantity"] == 1 and stock["low_stock"] is True and stock["sold_30d"] == 4


def test_an_update_that_changes_nothing_is_applied_without_an_event(
    device: Device, server: Any
) -> None:
    show_id = uid()
    one(device, op("show", show_id, "create", show()))
    before = event_count(server, device.user_id)
    result = one(device, op("show", show_id, "update", {"city": "Madrid"}, base=1))
    assert result == {"op_id": result["op_id"], "status": "applied", "version": 1}
    assert event_count(server, device.user_id) == before


# -- duplicate: exactly once -------------------------------------------------------------------


def test_a_batch_resent_after_a_lost_response_is_all_duplicate_and_writes_nothing(
    device: Device, server: Any
) -> None:
    show_id, product_id = uid(), uid()
    batch = [
        op("show", show_id, "create", show()),
        op("show", show_id, "update", {"fee": "1"}, base=7),  # rejected: ahead
        op("product", product_id, "create", product(quantity=1)),
        op("product", product_id, "record_sale", sale(2)),  # rejected: insufficient stock
        op("show", show_id, "create", show()),  # conflict: already exists
    ]
    first = device.push(batch)  # the response is "lost": the device sends it all again
    written = event_count(server, device.user_id)
    state = device.state()

    again = device.push(batch)
    assert [r["status"] for r in again] == ["duplicate"] * len(batch)
    for original, repeat in zip(first, again, strict=True):
        assert repeat["original"] == original
    assert event_count(server, device.user_id) == written
    assert device.state() == state


def test_the_same_op_twice_in_one_batch_applies_once(device: Device, server: Any) -> None:
    product_id = uid()
    one(device, op("product", product_id, "create", product(quantity=10)))
    the_sale = op("product", product_id, "record_sale", sale(3))
    results = device.push([the_sale, the_sale])
    assert [r["status"] for r in results] == ["applied", "duplicate"]
    assert results[1]["original"] == results[0]
    assert device.state()[("product", product_id)]["data"]["quantity"] == 7


def test_an_op_id_is_scoped_to_its_user(http: httpx.Client) -> None:
    ann, bob = sign_up(http), sign_up(http)
    the_op = op("show", uid(), "create", show())
    assert one(ann, the_op)["status"] == "applied"
    assert one(bob, the_op)["status"] == "applied"


# -- conflicts and the merge policy ------------------------------------------------------------


def test_two_devices_disjoint_fields_merge_overlapping_fields_conflict(http: httpx.Client) -> None:
    phone = sign_up(http)
    laptop = sign_in(http, phone.email)
    show_id = uid()
    one(phone, op("show", show_id, "create", show()))

    # Both edit from version 1 while offline.
    assert one(phone, op("show", show_id, "update", {"fee": "15000"}, base=1))["version"] == 2
    merged = one(laptop, op("show", show_id, "update", {"venue": "Wizink"}, base=1))
    assert merged["status"] == "applied" and merged["version"] == 3
    data = phone.state()[("show", show_id)]["data"]
    assert (data["fee"], data["venue"]) == ("15000.00", "Wizink")

    clash = one(laptop, op("show", show_id, "update", {"fee": "9000", "city": "Bilbao"}, base=1))
    assert clash["status"] == "conflict"
    conflict = clash["conflict"]
    assert conflict["reason"] == "version_mismatch"
    assert conflict["server_version"] == 3
    assert conflict["fields"] == ["fee"]
    assert conflict["server_data"]["fee"] == "15000.00"
    assert conflict["server_data"]["venue"] == "Wizink"

    # Resolved by a new op on the server's version.
    resolved = one(laptop, op("show", show_id, "update", {"fee": "9000"}, base=3))
    assert resolved["status"] == "applied" and resolved["version"] == 4


def test_a_delete_conflicts_with_any_change_after_its_base(device: Device) -> None:
    show_id = uid()
    one(device, op("show", show_id, "create", show()))
    one(device, op("show", show_id, "update", {"notes": "load-in 14:00"}, base=1))
    stale = one(device, op("show", show_id, "delete", base=1))
    assert stale["status"] == "conflict"
    assert stale["conflict"]["reason"] == "version_mismatch"
    assert stale["conflict"]["fields"] == ["notes"]
    current = one(device, op("show", show_id, "delete", base=2))
    assert current == {"op_id": current["op_id"], "status": "applied", "version": 3}


def test_ops_on_a_deleted_entity_conflict_with_entity_deleted(device: Device) -> None:
    show_id, product_id = uid(), uid()
    device.push(
        [
            op("show", show_id, "create", show()),
            op("show", show_id, "delete", base=1),
            op("product", product_id, "create", product()),
            op("product", product_id, "delete", base=1),
        ]
    )
    for late in (
        op("show", show_id, "update", {"fee": "1"}, base=1),
        op("show", show_id, "delete", base=2),
        op("product", product_id, "record_sale", sale(1)),
    ):
        result = one(device, late)
        assert result["status"] == "conflict", result
        assert result["conflict"]["reason"] == "entity_deleted"
        assert result["conflict"]["server_version"] == 2


def test_creating_an_existing_id_conflicts_with_already_exists(device: Device) -> None:
    show_id = uid()
    one(device, op("show", show_id, "create", show(city="Lyon", country="FR")))
    again = one(device, op("show", show_id, "create", show()))
    assert again["status"] == "conflict"
    assert again["conflict"]["reason"] == "already_exists"
    assert again["conflict"]["server_data"]["city"] == "Lyon"


def test_commutative_actions_ignore_base_version(http: httpx.Client) -> None:
    till = sign_up(http)
    tablet = sign_in(http, till.email)
    product_id = uid()
    one(till, op("product", product_id, "create", product(quantity=10)))
    assert one(till, op("product", product_id, "record_sale", sale(2), base=1))["status"] == (
        "applied"
    )
    assert one(tablet, op("product", product_id, "record_sale", sale(3), base=1))["status"] == (
        "applied"
    )
    adjusted = one(
        tablet, op("product", product_id, "adjust_stock", {"delta": -5, "reason": "damaged"})
    )
    assert adjusted == {"op_id": adjusted["op_id"], "status": "applied", "version": 4}
    too_many = one(till, op("product", product_id, "record_sale", sale(1)))
    assert too_many["status"] == "rejected"
    assert too_many["error"]["code"] == "insufficient_stock"
    assert till.state()[("product", product_id)]["data"]["quantity"] == 0


# -- rejected ----------------------------------------------------------------------------------


def rejected_code(device: Device, the_op: dict[str, Any], **envelope: Any) -> str:
    result = one(device, the_op, **envelope)
    assert result["status"] == "rejected", result
    assert result["error"]["message"]
    return str(result["error"]["code"])


def test_every_rejection_code(http: httpx.Client, device: Device) -> None:
    show_id = uid()
    one(device, op("show", show_id, "create", show()))
    other = sign_up(http)
    foreign_show = uid()
    one(other, op("show", foreign_show, "create", show()))

    assert rejected_code(device, op("show", uid(), "create", show(fee="-1"))) == (
        "validation_failed"
    )
    assert rejected_code(device, op("show", show_id, "update", {"fee": "1"})) == (
        "validation_failed"
    )  # no base_version
    assert rejected_code(device, op("show", show_id, "update", {"fee": "1"}, base=2)) == (
        "validation_failed"
    )  # ahead of the entity
    assert rejected_code(device, op("show", uid(), "update", {"fee": "1"}, base=1)) == "not_found"
    assert rejected_code(device, op("gig", uid(), "create", show())) == "unknown_entity"
    assert rejected_code(device, op("show", show_id, "archive", {})) == "unknown_action"
    assert rejected_code(device, op("cost", uid(), "create", cost(uid()))) == "invalid_reference"
    # Another user's show is answered exactly like a missing one.
    foreign = one(device, op("cost", uid(), "create", cost(foreign_show)))
    missing = one(device, op("cost", uid(), "create", cost(uid())))
    assert foreign["error"] == missing["error"]
    assert rejected_code(device, op("show", uid(), "create", show()), schema_version=99) == (
        "unsupported_schema"
    )
    product_id = uid()
    one(device, op("product", product_id, "create", product(quantity=1)))
    assert rejected_code(device, op("product", product_id, "record_sale", sale(2))) == (
        "insufficient_stock"
    )


def test_validation_reports_every_field_with_its_path(device: Device) -> None:
    result = one(
        device,
        op("show", uid(), "create", {"date": "1 Dec", "country": "Spain", "fee": 1.5, "x": 1}),
    )
    paths = {e["path"]: e["message"] for e in result["error"]["errors"]}
    assert set(paths) == {"data.date", "data.country", "data.fee", "data.x", "data.city"}
    assert "float" in paths["data.fee"]
    assert paths["data.city"] == "is required"


def test_references_are_checked_against_the_batch_and_the_store(device: Device) -> None:
    show_id = uid()
    results = device.push(
        [
            op("cost", uid(), "create", cost(show_id)),  # the show does not exist yet
            op("show", show_id, "create", show()),
            op("cost", uid(), "create", cost(show_id)),
            op("show", show_id, "delete", base=1),
            op("cost", uid(), "create", cost(show_id)),  # the show is deleted now
        ]
    )
    assert [r["status"] for r in results] == [
        "rejected", "applied", "applied", "applied", "rejected",
    ]  # fmt: skip
    assert results[4]["error"]["code"] == "invalid_reference"


def test_deleting_a_show_deletes_its_costs(device: Device) -> None:
    show_id, cost_a, cost_b = uid(), uid(), uid()
    device.push(
        [
            op("show", show_id, "create", show()),
            op("cost", cost_a, "create", cost(show_id)),
            op("cost", cost_b, "create", cost(show_id)),
        ]
    )
    device.sync_changes()
    one(device, op("show", show_id, "delete", base=1))
    changes = {(c["entity"], c["id"]): c for c in device.sync_changes()}
    assert {key: c["op"] for key, c in changes.items()} == {
        ("show", show_id): "delete",
        ("cost", cost_a): "delete",
        ("cost", cost_b): "delete",
    }
    # A tombstone carries the row's id, version and times, deleted_at among them, not the
    # fields the entity held.
    tombstone = changes[("show", show_id)]["data"]
    assert set(tombstone) == {"id", "version", "created_at", "updated_at", "deleted_at"}
    assert tombstone["id"] == show_id and tombstone["version"] == 2
    assert tombstone["deleted_at"] == tombstone["updated_at"]


# -- atomic batches ----------------------------------------------------------------------------


def test_an_atomic_batch_with_one_bad_op_keeps_nothing(device: Device, server: Any) -> None:
    show_id = uid()
    batch = [
        op("show", show_id, "create", show()),
        op("cost", uid(), "create", cost(show_id)),
        op("cost", uid(), "create", cost(show_id, amount="-5")),
    ]
    results = device.push(batch, atomic=True)
    assert [r["status"] for r in results] == ["rejected", "rejected", "rejected"]
    assert [r["error"]["code"] for r in results] == [
        "batch_aborted", "batch_aborted", "validation_failed",
    ]  # fmt: skip
    assert event_count(server, device.user_id) == 0
    assert device.state() == {}

    # Nothing was remembered either: the fixed batch, same op ids, applies.
    batch[2] = {**batch[2], "data": cost(show_id)}
    assert [r["status"] for r in device.push(batch, atomic=True)] == ["applied"] * 3
    again = device.push(batch, atomic=True)
    assert [r["status"] for r in again] == ["duplicate"] * 3


def test_an_atomic_batch_reports_no_state_it_did_not_keep(device: Device, server: Any) -> None:
    show_id = uid()
    device.push([op("show", show_id, "create", show(fee="10.00"))])
    stored = device.state()[("show", show_id)]

    # Two edits of the fee from the same base; a delete, then an edit. The second op clashes
    # with the first, whose work is not kept: a conflict naming it as the server's state would
    # have the client rebase on a version the server never had.
    for clashing in (
        [op("show", show_id, "update", {"fee": "5"}, base=1),
         op("show", show_id, "update", {"fee": "7"}, base=1)],
        [op("show", show_id, "delete", base=1),
         op("show", show_id, "update", {"fee": "7"}, base=1)],
    ):  # fmt: skip
        results = device.push([*clashing, clashing[1], clashing[0]], atomic=True)
        assert [r["status"] for r in results] == ["rejected", "rejected", "duplicate", "duplicate"]
        assert [r["error"]["code"] for r in results[:2]] == ["batch_aborted", "batch_aborted"]
        assert "op 0 of the same batch" in results[1]["error"]["message"]
        assert "op 1 (rejected, batch_aborted)" in results[0]["error"]["message"]
        # A repeat within the batch answers what its first copy does now.
        assert [r["original"] for r in results[2:]] == [results[1], results[0]]
        assert device.state()[("show", show_id)] == stored
    assert event_count(server, device.user_id) == 1

    # A conflict with what the server keeps still says so, with that state, even when an
    # earlier op of the batch changed the row too (here another field); rebasing on it works.
    device.push([op("show", show_id, "update", {"fee": "8"}, base=1)])
    batch = [
        op("show", show_id, "update", {"venue": "Razzmatazz"}, base=2),
        op("show", show_id, "update", {"fee": "9"}, base=1),
    ]
    results = device.push(batch, atomic=True)
    assert [r["status"] for r in results] == ["rejected", "conflict"]
    assert "op 1 (conflict)" in results[0]["error"]["message"]
    conflict = results[1]["conflict"]
    assert (conflict["server_version"], conflict["server_data"]["fee"]) == (2, "8.00")
    assert conflict["server_data"]["venue"] == stored["data"]["venue"]
    batch[1] = op("show", show_id, "update", {"fee": "9"}, base=conflict["server_version"])
    assert [r["status"] for r in device.push(batch, atomic=True)] == ["applied", "applied"]


def test_an_atomic_batch_may_hold_the_same_op_twice(device: Device, server: Any) -> None:
    product_id = uid()
    the_sale = op("product", product_id, "record_sale", sale(3))
    batch = [op("product", product_id, "create", product(quantity=10)), the_sale, the_sale]
    results = device.push(batch, atomic=True)
    assert [r["status"] for r in results] == ["applied", "applied", "duplicate"]
    assert device.state()[("product", product_id)]["data"]["quantity"] == 7
    assert event_count(server, device.user_id) == 2


def test_the_cursor_of_a_resent_push_shows_what_its_first_sending_wrote(
    http: httpx.Client,
) -> None:
    device = sign_up(http)
    other = sign_in(http, device.email)
    mine, theirs, new = uid(), uid(), uid()
    lost = [op("show", mine, "create", show())]
    device.push(lost)  # the answer is lost; meanwhile another device of the user pushes
    other.push([op("show", theirs, "create", show())])
    more = [*lost, op("show", new, "create", show())]
    for batch, expected in ((lost, [mine, theirs]), (more, [mine, theirs, new])):
        response = device.push_raw(batch)
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["status"] == "duplicate"
        page = device.pull(since=response.json()["cursor"])
        assert [c["id"] for c in page["changes"]] == expected


def test_the_cursor_of_a_push_that_wrote_nothing_resumes_after_everything(
    device: Device,
) -> None:
    device.push([op("show", uid(), "create", show())])
    for batch in (
        [op("show", uid(), "update", {"fee": "1"}, base=1)],  # rejected: nothing written
        [op("show", uid(), "create", show()), op("show", uid(), "delete", base=1)],
    ):
        response = device.push_raw(batch, atomic=True)
        assert response.status_code == 200, response.text
        page = device.pull(since=response.json()["cursor"])
        assert page["changes"] == [] and page["has_more"] is False


def test_workouts_and_products_leave_tombstones_and_refuse_their_actions_after(
    device: Device,
) -> None:
    workout_id, product_id = uid(), uid()
    device.push(
        [
            op("workout", workout_id, "create", workout()),
            op("product", product_id, "create", product()),
        ]
    )
    device.sync_changes()
    device.push(
        [op("workout", workout_id, "delete", base=1), op("product", product_id, "delete", base=1)]
    )
    changes = {(c["entity"], c["id"]): c for c in device.sync_changes()}
    assert {key: (c["op"], c["version"]) for key, c in changes.items()} == {
        ("workout", workout_id): ("delete", 2),
        ("product", product_id): ("delete", 2),
    }
    assert all("deleted_at" in c["data"] for c in changes.values())
    for late in (
        op("workout", workout_id, "log_set", {"exercise": "Squat", "reps": 1, "weight": "1",
                                              "unit": "kg"}),
        op("product", product_id, "adjust_stock", {"delta": 1, "reason": "found"}),
    ):  # fmt: skip
        result = one(device, late)
        assert result["status"] == "conflict", result
        assert result["conflict"]["reason"] == "entity_deleted"


def test_a_body_too_large_is_413_without_a_content_length(
    device: Device, http: httpx.Client, server: Any
) -> None:
    big = json.dumps(
        {"client_id": device.client_id, "ops": [op("show", uid(), "create", show(notes="x" * 1000))
                                                for _ in range(6000)]}
    ).encode()  # fmt: skip

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    response = http.post(
        "/v1/sync/push",
        content=chunks(),
        headers={**device.headers, "content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "body_too_large")
    assert event_count(server, device.user_id) == 0


# -- the envelope: refused whole, nothing written ------------------------------------------------


def test_bad_envelopes_are_refused_whole_and_write_nothing(
    device: Device, server: Any, http: httpx.Client
) -> None:
    good = op("show", uid(), "create", show())
    headers = device.headers
    url = "/v1/sync/push"
    cases: list[tuple[httpx.Response, int, str]] = [
        (http.post(url, content=b"{", headers={**headers, "content-type": "application/json"}),
         400, "malformed_json"),
        (http.post(url, content=b"\xff\xfe", headers={**headers,
                                                      "content-type": "application/json"}),
         400, "malformed_json"),
        (http.post(url, content=b"client_id=1", headers={
            **headers, "content-type": "application/x-www-form-urlencoded"}),
         415, "unsupported_media_type"),
        (device.push_raw([good], client_id="not-a-uuid"), 422, "validation_failed"),
        # An op with no readable op_id cannot be answered on its own: the request fails whole.
        (device.push_raw([good, {**good, "op_id": 7}]), 422, "validation_failed"),
        (device.push_raw([good, {k: v for k, v in good.items() if k != "op_id"}]), 422,
         "validation_failed"),
        (device.push_raw([good, "op"]), 422, "validation_failed"),
        (device.push_raw([good], atomc=True), 422, "validation_failed"),
        (device.push_raw([good], schema_version="1"), 422, "validation_failed"),
        (http.post(url, json={"client_id": device.client_id, "ops": {}}, headers=headers),
         422, "validation_failed"),
        (http.post(url, json=[good], headers=headers), 422, "validation_failed"),
        (device.push_raw([good] * 1001), 413, "too_many_ops"),
        (device.push_raw([{**good, "data": {"notes": "x" * 5_000_000}}]), 413, "body_too_large"),
    ]  # fmt: skip
    for response, status, code in cases:
        body = assert_problem(response, status, code)
        assert body["request_id"] == response.headers["x-request-id"]
    assert cases[4][0].json()["errors"][0]["path"] == "ops[1].op_id"
    assert cases[5][0].json()["errors"][0]["path"] == "ops[1]"
    assert event_count(server, device.user_id) == 0


def test_an_op_of_the_wrong_shape_is_rejected_alone_and_the_rest_applies(
    device: Device, server: Any
) -> None:
    show_id = uid()
    good = op("show", show_id, "create", show())
    base = op("show", uid(), "update", {"fee": "1"}, base=1)
    bad = [
        ({**base, "base_version": "3"}, "base_version"),
        ({**base, "base_version": 3.0}, "base_version"),
        ({**base, "data": None}, "data"),
        ({**base, "id": "12"}, "id"),
        ({**base, "action": None}, "action"),
        ({**base, "entity": 5}, "entity"),
        ({**base, "client_ts": 1700000000}, "client_ts"),
        ({k: v for k, v in base.items() if k != "action"}, "action"),
        ({**base, "colour": "red"}, "colour"),
    ]
    batch = [good] + [{**one_bad, "op_id": uid()} for one_bad, _ in bad]
    results = device.push(batch)
    assert results[0]["status"] == "applied"
    for result, (_, path) in zip(results[1:], bad, strict=True):
        assert result["status"] == "rejected", result
        assert result["error"]["code"] == "validation_failed"
        assert [e["path"] for e in result["error"]["errors"]] == [path], result
    written = event_count(server, device.user_id)
    assert written == 1
    # Answered once and for all: sent again, every op is a duplicate and nothing is written.
    again = device.push(batch)
    assert [r["status"] for r in again] == ["duplicate"] * len(batch)
    assert [r["original"] for r in again] == results
    assert event_count(server, device.user_id) == written
    # Atomic, one unreadable op keeps the whole batch out.
    other = op("show", uid(), "create", show())
    atomic = device.push([other, {**base, "op_id": uid(), "base_version": "3"}], atomic=True)
    assert [r["status"] for r in atomic] == ["rejected", "rejected"]
    assert atomic[0]["error"]["code"] == "batch_aborted"
    assert event_count(server, device.user_id) == written


def test_an_unknown_schema_version_is_unsupported_whatever_else_is_wrong(device: Device) -> None:
    good = op("show", uid(), "create", show())
    for version in (0, 2, 99):
        results = device.push(
            [
                {**good, "op_id": uid()},
                {**good, "op_id": uid(), "client_ts": "2026-11-20 noon"},
                {**good, "op_id": uid(), "entity": "e" * 100},
                {**good, "op_id": uid(), "base_version": "3", "shape": "of version 2"},
            ],
            schema_version=version,
        )
        assert [(r["status"], r["error"]["code"]) for r in results] == [
            ("rejected", "unsupported_schema")
        ] * 4
    assert device.pull()["changes"] == []


def test_push_and_pull_need_a_token(http: httpx.Client) -> None:
    assert_problem(http.post("/v1/sync/push", json={}), 401)
    assert_problem(http.get("/v1/sync/pull"), 401)


# -- pull ----------------------------------------------------------------------------------------


def test_pull_pages_follow_commit_order_with_each_entity_once_per_page(device: Device) -> None:
    ids = [uid() for _ in range(7)]
    device.push([op("show", i, "create", show()) for i in ids])
    one(device, op("show", ids[0], "update", {"fee": "1"}, base=1))  # ids[0] moves to the end

    pages = list(device.pages(limit=3))
    assert [len(p["changes"]) for p in pages] == [3, 3, 1]
    assert [p["has_more"] for p in pages] == [True, True, False]
    order = [c["id"] for p in pages for c in p["changes"]]
    assert order == [*ids[1:], ids[0]]
    assert pages[-1]["changes"][0]["version"] == 2
    assert device.pull(since=device.cursor) == {
        "changes": [], "cursor": device.cursor, "has_more": False, "reset": False,
    }  # fmt: skip


def test_a_derived_change_brings_the_show_again(device: Device) -> None:
    show_id = uid()
    one(device, op("show", show_id, "create", show()))
    device.sync_changes()
    one(device, op("cost", uid(), "create", cost(show_id, amount="100")))
    changes = {c["entity"]: c for c in device.sync_changes()}
    assert set(changes) == {"cost", "show"}
    assert changes["show"]["version"] == 1  # the show's own version did not move
    assert changes["show"]["data"]["costs_total"] == "100.00"


def test_the_push_cursor_shows_at_least_the_push_s_own_writes(device: Device) -> None:
    one(device, op("show", uid(), "create", show()))
    show_id = uid()
    response = device.push_raw([op("show", show_id, "create", show())])
    cursor = response.json()["cursor"]
    changes = device.pull(since=cursor)["changes"]
    assert [c["id"] for c in changes] == [show_id]


def test_pages_of_one_split_the_rows_one_event_changed_and_miss_none(device: Device) -> None:
    # A cost's creation changes the cost's row and its show's (costs_total): two rows at one
    # sync position, which pages of one change must split without losing either.
    show_id = uid()
    one(device, op("show", show_id, "create", show()))
    after_show = device.pull()["cursor"]
    costs = [uid() for _ in range(3)]
    for cost_id in costs:
        one(device, op("cost", cost_id, "create", cost(show_id, amount="10")))
    seen: list[tuple[str, str]] = []
    since, more = after_show, True
    while more:
        page = device.pull(since=since, limit=1)
        seen += [(c["entity"], c["id"]) for c in page["changes"]]
        since, more = page["cursor"], page["has_more"]
    # Each row once, in its latest state: the show at the last cost's position, beside it.
    assert sorted(seen) == sorted([*(("cost", c) for c in costs), ("show", show_id)])
    assert seen[-2:] in ([("cost", costs[-1]), ("show", show_id)],
                         [("show", show_id), ("cost", costs[-1])])  # fmt: skip
    last_show = [c for c in device.pull(since=after_show)["changes"] if c["entity"] == "show"]
    assert last_show[0]["data"]["costs_total"] == "30.00"


def test_pull_since_a_time(device: Device) -> None:
    old = uid()
    one(device, op("show", old, "create", show()))
    moment = device.state()[("show", old)]["data"]["updated_at"]
    new = uid()
    one(device, op("show", new, "create", show()))
    assert [c["id"] for c in device.pull(since=moment)["changes"]] == [new]
    # The same moment in another zone's spelling is the same moment.
    local = datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(
        timezone(timedelta(hours=-5, minutes=-30))
    )
    assert [c["id"] for c in device.pull(since=local.isoformat())["changes"]] == [new]
    assert len(device.pull(since="2000-01-01T00:00:00Z")["changes"]) == 2
    assert device.pull(since="2999-01-01T00:00:00+02:00")["changes"] == []


def test_pull_by_entity_and_cursors_that_cover_fewer_entities(device: Device) -> None:
    show_id, product_id = uid(), uid()
    device.push(
        [op("show", show_id, "create", show()), op("product", product_id, "create", product())]
    )
    only_shows = device.pull(entities="show")
    assert [c["entity"] for c in only_shows["changes"]] == ["show"]
    # A shows-only cursor would skip the product if used for everything.
    assert_problem(device.pull_raw(since=only_shows["cursor"]), 400, "invalid_parameter")
    everything = device.pull()
    assert device.pull(since=everything["cursor"], entities="show,product")["changes"] == []
    assert_problem(device.pull_raw(entities="show,gig"), 400, "invalid_parameter")


def test_entities_given_twice_or_as_separators_only(device: Device) -> None:
    show_id, cost_id, product_id = uid(), uid(), uid()
    device.push(
        [
            op("show", show_id, "create", show()),
            op("cost", cost_id, "create", cost(show_id)),
            op("product", product_id, "create", product()),
        ]
    )
    # Repeated, the parameter adds up: both entities, and a cursor that covers both.
    both = device.pull_raw(params=[("entities", "show"), ("entities", "cost")])
    assert both.status_code == 200, both.text
    assert sorted(c["entity"] for c in both.json()["changes"]) == ["cost", "show"]
    assert device.pull(since=both.json()["cursor"], entities="show,cost")["changes"] == []
    # Naming no entity at all is no filter, as an empty value is (never a 500).
    for value in (",", " , ", ""):
        page = device.pull(entities=value)
        assert sorted(c["entity"] for c in page["changes"]) == ["cost", "product", "show"]


def test_bad_pull_parameters_are_400(http: httpx.Client, device: Device) -> None:
    other = sign_up(http)
    cursor = device.pull()["cursor"]
    tampered = cursor.replace("c1.0.", "c1.9.")
    for params in (
        {"since": "yesterday"},
        {"since": "2026-11-22"},  # a date is not a moment
        {"since": "2026-11-22T10:00:00"},  # no zone
        {"since": tampered},
        {"since": "c1.x.y"},
        {"limit": "0"},
        {"limit": "5001"},
        {"limit": "ten"},
        {"limit": "-1"},
    ):
        assert_problem(device.pull_raw(**params), 400, "invalid_parameter")
    # Another user's cursor is refused, not read as this user's position.
    assert_problem(other.pull_raw(since=cursor), 400, "invalid_parameter")
    # A misspelt parameter is named, not ignored (a pull without its ``since`` would send the
    # whole history again); so is one given twice, but for ``entities``, whose values add up.
    for pairs, named in (
        ([("sincee", cursor)], "sincee"),
        ([("since", cursor), ("since", cursor)], "since"),
        ([("limit", "1"), ("limit", "2")], "limit"),
    ):
        problem = assert_problem(device.pull_raw(params=pairs), 400, "invalid_parameter")
        assert [e["path"] for e in problem["errors"]] == [named]


def test_a_cursor_from_before_a_projection_change_gets_reset(device: Device, server: Any) -> None:
    one(device, op("show", uid(), "create", show()))
    cursor = device.pull()["cursor"]
    store: EventStore = server.database.open()
    try:
        with store.sql() as sql:
            sql.execute("UPDATE projection_state SET epoch = epoch + 1 WHERE name = 'read_tables'")
        page = device.pull(since=cursor)
        assert page["reset"] is True and page["changes"] == [] and page["has_more"] is True
        restarted = device.pull(since=page["cursor"])
        assert restarted["reset"] is False and len(restarted["changes"]) == 1
    finally:
        with store.sql() as sql:
            sql.execute("UPDATE projection_state SET epoch = epoch - 1 WHERE name = 'read_tables'")
        store.close()


def test_users_never_see_each_others_changes(http: httpx.Client) -> None:
    ann, bob = sign_up(http), sign_up(http)
    shared_id = uid()
    one(ann, op("show", shared_id, "create", show(city="Oslo", country="NO")))
    # The same client-made id means nothing across users: bob's op is on bob's own stream.
    assert one(bob, op("show", shared_id, "update", {"fee": "1"}, base=1))["error"]["code"] == (
        "not_found"
    )
    assert one(bob, op("show", shared_id, "create", show()))["status"] == "applied"
    assert bob.state()[("show", shared_id)]["data"]["city"] == "Madrid"
    assert ann.state()[("show", shared_id)]["data"]["city"] == "Oslo"


def test_an_atomic_batch_holding_a_resent_refused_op_keeps_nothing(device: Device) -> None:
    product_id = uid()
    one(device, op("product", product_id, "create", product(quantity=1)))
    too_many = op("product", product_id, "record_sale", sale(5))
    assert one(device, too_many)["status"] == "rejected"
    show_id = uid()
    results = device.push([too_many, op("show", show_id, "create", show())], atomic=True)
    assert results[0]["status"] == "duplicate"
    assert results[0]["original"]["status"] == "rejected"
    assert results[1]["status"] == "rejected"
    assert results[1]["error"]["code"] == "batch_aborted"
    assert ("show", show_id) not in device.state()


def test_an_op_s_own_bad_members_refuse_it_alone(device: Device) -> None:
    good = op("show", uid(), "create", show())
    results = device.push(
        [
            op("show", uid(), "create", show(), client_ts="a\u0000b"),
            op("show", uid(), "create", show(), client_ts="yesterday"),
            op("x" * 200, uid(), "create", show()),
            op("show", uid(), "y" * 200, show()),
            good,
        ]
    )
    assert [r["status"] for r in results] == ["rejected"] * 4 + ["applied"]
    assert [r["error"]["errors"][0]["path"] for r in results[:4]] == [
        "client_ts", "client_ts", "entity", "action",
    ]  # fmt: skip
    assert all(len(r["error"]["message"]) < 200 for r in results[:4])


def test_a_nul_in_an_entity_or_action_name_rejects_its_op_alone(device: Device) -> None:
    # PostgreSQL cannot hold a NUL in text: an op naming such an entity must never reach a
    # lookup of the log (it was a 500 there) but be answered like any unknown name.
    good = op("show", uid(), "create", show())
    results = device.push(
        [op("sh\u0000ow", uid(), "create", show()), op("show", uid(), "up\u0000date", {}), good]
    )
    assert [r["status"] for r in results] == ["rejected", "rejected", "applied"]
    assert [r["error"]["code"] for r in results[:2]] == ["unknown_entity", "unknown_action"]
    assert len(device.state()) == 1


def test_control_characters_in_text_come_back_as_they_were_sent(device: Device) -> None:
    # On PostgreSQL a row's JSON goes to the database in texts joined by the record separator
    # (U+001E): the same character inside a field must come back whole, in the push's answer,
    # in the pull, and in the state that later ops are decided on.
    show_id = uid()
    notes = 'tab\there, separator \u001e, unit \u001f, bell \u0007, quote " and \\'
    one(device, op("show", show_id, "create", show(notes=notes)))
    assert device.state()[("show", show_id)]["data"]["notes"] == notes
    changed = notes + " \u001e again"
    assert one(device, op("show", show_id, "update", {"notes": changed}, base=1))["version"] == 2
    assert device.state()[("show", show_id)]["data"]["notes"] == changed


def test_stock_never_goes_above_the_largest_count(device: Device) -> None:
    product_id = uid()
    one(device, op("product", product_id, "create", product(quantity=10**12)))
    result = one(device, op("product", product_id, "adjust_stock", {"delta": 1, "reason": "x"}))
    assert result["status"] == "rejected" and result["error"]["code"] == "validation_failed"
    assert device.state()[("product", product_id)]["data"]["quantity"] == 10**12
