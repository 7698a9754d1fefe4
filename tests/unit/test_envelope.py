"""The push envelope, results, pull pages and event type registry: shapes on the wire."""

from __future__ import annotations

import json
from uuid import UUID

import msgspec
import pytest

from event_store.errors import UnknownEventType
from schemas.events import SCHEMA_VERSIONS, build_registry
from schemas.ops import (
    CURRENT_OP_SCHEMA,
    LooseRequest,
    Op,
    PushRequest,
    prepare_op,
    read_ops,
    upcast_op,
)
from schemas.pull import Change, PullPage
from schemas.results import Conflict, FieldError, OpError, OpResult, PushResponse

OP_ID = "6f1c0a2e-9d43-4c59-9a38-0d3c8f6e2b11"
ENTITY_ID = "2b0e7d3c-5a41-4f0e-8a6c-1e9d2f3b4c5d"
CLIENT = "0b6c5d7e-0000-4000-8000-000000000000"


def push_body(**overrides: object) -> bytes:
    op = {"op_id": OP_ID, "entity": "show", "id": ENTITY_ID, "action": "create", "data": {"x": 1}}
    return json.dumps({"client_id": CLIENT, "ops": [op], **overrides}).encode()


def decode(body: bytes) -> PushRequest:
    return msgspec.json.decode(body, type=PushRequest)


def test_push_request_defaults() -> None:
    request = decode(push_body())
    assert request.schema_version == 1
    assert request.atomic is False
    assert request.ops[0].base_version is None
    assert request.ops[0].client_ts is None
    assert request.ops[0].data == {"x": 1}


def test_unknown_entity_action_and_data_are_left_to_per_op_answers() -> None:
    op = {
        "op_id": OP_ID,
        "entity": "planet",
        "id": ENTITY_ID,
        "action": "explode",
        "data": {"a": []},
    }
    request = decode(json.dumps({"client_id": CLIENT, "ops": [op]}).encode())
    assert request.ops[0].entity == "planet"
    assert request.ops[0].action == "explode"


def read(body: bytes) -> tuple[PushRequest, dict[int, OpError]]:
    """What the push endpoint does: one strict pass, else the envelope loose and op by op."""
    try:
        return decode(body), {}
    except msgspec.ValidationError:
        loose = msgspec.convert(json.loads(body), LooseRequest, strict=True)
        return read_ops(loose)


def create(**members: object) -> dict[str, object]:
    return {"op_id": OP_ID, "entity": "show", "id": ENTITY_ID, "action": "create", **members}


@pytest.mark.parametrize(
    "body",
    [
        push_body(client_id="device-1"),
        push_body(ops=[create(op_id="1")]),
        push_body(ops=[create(op_id=None)]),
        push_body(ops=[{k: v for k, v in create().items() if k != "op_id"}]),
        push_body(ops=[create(), "op"]),
        push_body(ops={}),
        push_body(atomic="yes"),
        push_body(atomc=True),
        push_body(schema_version=1.5),
    ],
)
def test_envelope_errors_and_unnamed_ops_refuse_the_whole_request(body: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        read(body)


@pytest.mark.parametrize(
    ("op", "path"),
    [
        (create(id=7), "id"),
        (create(id="12"), "id"),
        (create(data=[]), "data"),
        (create(entity=1), "entity"),
        ({k: v for k, v in create().items() if k != "action"}, "action"),
        (create(action="update", base_version="3"), "base_version"),
        (create(colour="red"), "colour"),
    ],
)
def test_an_op_of_the_wrong_shape_is_answered_alone(op: dict[str, object], path: str) -> None:
    other_id = "7d1c0a2e-9d43-4c59-9a38-0d3c8f6e2b11"
    other = create(op_id=other_id)
    request, unreadable = read(push_body(ops=[other, op, other]))
    assert [str(o.op_id) for o in request.ops] == [other_id, OP_ID, other_id]
    assert list(unreadable) == [1]
    assert unreadable[1].code == "validation_failed"
    assert [e.path for e in unreadable[1].errors or []] == [path]
    # An op this server's schema cannot read may be sound in the client's newer one.
    _, unreadable = read(push_body(ops=[op], schema_version=CURRENT_OP_SCHEMA + 1))
    assert unreadable[0].code == "unsupported_schema"


def test_an_unknown_schema_is_answered_before_the_op_is_checked() -> None:
    op = Op(op_id=UUID(OP_ID), entity="x" * 65, id=UUID(ENTITY_ID), action="create",
            client_ts="noon")  # fmt: skip
    problem = prepare_op(op, CURRENT_OP_SCHEMA + 1)
    assert isinstance(problem, OpError) and problem.code == "unsupported_schema"


@pytest.mark.parametrize(
    ("member", "value", "path"),
    [
        ("entity", "x" * 65, "entity"),
        ("action", "y" * 65, "action"),
        ("client_ts", "2026-11-20T18:03:11", "client_ts"),  # no zone
        ("client_ts", "2026-11-20", "client_ts"),
        ("client_ts", "a\u0000b", "client_ts"),
        ("client_ts", "2026-11-20T18:03:11Z" + " " * 60, "client_ts"),
        ("client_ts", "2026-11-20T18:03:11\u0000Z", "client_ts"),
        ("client_ts", "0001-01-01T00:00:00+01:00", "client_ts"),  # no UTC form
        ("client_ts", "9999-12-31T23:59:59-01:00", "client_ts"),
    ],
)
def test_an_op_s_own_bad_members_refuse_that_op_only(member: str, value: str, path: str) -> None:
    op = {"op_id": OP_ID, "entity": "show", "id": ENTITY_ID, "action": "create", member: value}
    request = decode(json.dumps({"client_id": CLIENT, "ops": [op]}).encode())
    problem = prepare_op(request.ops[0], CURRENT_OP_SCHEMA)
    assert isinstance(problem, OpError)
    assert problem.code == "validation_failed"
    assert [e.path for e in problem.errors or []] == [path]


def test_a_sound_op_is_prepared_unchanged() -> None:
    op = Op(op_id=UUID(OP_ID), entity="show", id=UUID(ENTITY_ID), action="create",
            client_ts="2026-11-20T18:03:11+02:00")  # fmt: skip
    assert prepare_op(op, CURRENT_OP_SCHEMA) is op


def test_upcast_current_schema_is_identity() -> None:
    op = Op(op_id=UUID(OP_ID), entity="show", id=UUID(ENTITY_ID), action="create")
    assert upcast_op(op, CURRENT_OP_SCHEMA) is op


@pytest.mark.parametrize("version", [0, -1, CURRENT_OP_SCHEMA + 1, 99])
def test_upcast_unknown_schema_is_unsupported(version: int) -> None:
    op = Op(op_id=UUID(OP_ID), entity="show", id=UUID(ENTITY_ID), action="create")
    result = upcast_op(op, version)
    assert isinstance(result, OpError)
    assert result.code == "unsupported_schema"


def encoded(value: object) -> object:
    return json.loads(msgspec.json.encode(value))


def test_results_omit_absent_members() -> None:
    applied = OpResult(op_id=UUID(OP_ID), status="applied", version=4)
    assert encoded(applied) == {"op_id": OP_ID, "status": "applied", "version": 4}
    duplicate = OpResult(op_id=UUID(OP_ID), status="duplicate", original=applied)
    assert encoded(duplicate)["original"] == {"op_id": OP_ID, "status": "applied", "version": 4}
    rejected = OpResult(
        op_id=UUID(OP_ID),
        status="rejected",
        error=OpError("validation_failed", "bad", [FieldError("data.fee", "must be >= 0")]),
    )
    assert encoded(rejected)["error"] == {
        "code": "validation_failed",
        "message": "bad",
        "errors": [{"path": "data.fee", "message": "must be >= 0"}],
    }
    assert "errors" not in encoded(OpError("not_found", "gone"))


def test_conflict_always_carries_its_members() -> None:
    conflict = OpResult(
        op_id=UUID(OP_ID),
        status="conflict",
        conflict=Conflict("entity_deleted", 3, {}, []),
    )
    assert encoded(conflict)["conflict"] == {
        "reason": "entity_deleted",
        "server_version": 3,
        "server_data": {},
        "fields": [],
    }


def test_push_response_round_trips() -> None:
    response = PushResponse([OpResult(op_id=UUID(OP_ID), status="applied", version=1)], "12.12")
    assert msgspec.json.decode(msgspec.json.encode(response), type=PushResponse) == response


def test_pull_page_shape() -> None:
    page = PullPage(
        changes=[
            Change("show", UUID(ENTITY_ID), "upsert", 2, {"city": "Madrid"}),
            Change("cost", UUID(OP_ID), "delete", 3),
        ],
        cursor="5.9",
        has_more=False,
    )
    assert encoded(page) == {
        "changes": [
            {
                "entity": "show",
                "id": ENTITY_ID,
                "op": "upsert",
                "version": 2,
                "data": {"city": "Madrid"},
            },
            {"entity": "cost", "id": OP_ID, "op": "delete", "version": 3},
        ],
        "cursor": "5.9",
        "has_more": False,
        "reset": False,
    }


def test_registry_declares_every_event_type_at_version_1() -> None:
    registry = build_registry()
    assert registry.strict
    assert len(SCHEMA_VERSIONS) == 15
    for type_ in SCHEMA_VERSIONS:
        assert registry.current_version(type_) == 1
        assert registry.upcast(type_, 1, {"a": 1}) == (1, {"a": 1})
    for type_ in ("show.created", "product.sale_recorded", "workout.set_logged", "cost.deleted"):
        assert type_ in SCHEMA_VERSIONS
    with pytest.raises(UnknownEventType):
        registry.upcast("show.exploded", 1, {})
    with pytest.raises(UnknownEventType):
        registry.upcast("show.created", 2, {})


def test_an_op_of_an_older_schema_is_upcast_step_by_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # As it will be when version 2 comes: its 1 -> 2 step renames a member of a show's data.
    import schemas.ops

    def rename_venue(op: Op) -> Op:
        data = dict(op.data)
        if "place" in data:
            data["venue"] = data.pop("place")
        return msgspec.structs.replace(op, data=data)

    monkeypatch.setattr(schemas.ops, "CURRENT_OP_SCHEMA", 2)
    monkeypatch.setattr(schemas.ops, "_STEPS", {1: rename_venue})
    old = Op(op_id=UUID(OP_ID), entity="show", id=UUID(ENTITY_ID), action="create",
             data={"place": "Sala Apolo"})  # fmt: skip
    upcast = prepare_op(old, 1)
    assert isinstance(upcast, Op) and upcast.data == {"venue": "Sala Apolo"}
    assert prepare_op(upcast, 2) is upcast  # already current: unchanged
    too_new = prepare_op(old, 3)
    assert isinstance(too_new, OpError) and too_new.code == "unsupported_schema"
    monkeypatch.setattr(schemas.ops, "_STEPS", {})  # a version whose step is missing
    missing = prepare_op(old, 1)
    assert isinstance(missing, OpError) and missing.code == "unsupported_schema"
