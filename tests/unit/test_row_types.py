"""The documented row types (schemas/rows.py, used by /openapi.json) match what projectors write."""

from __future__ import annotations

from uuid import UUID, uuid4

import msgspec
import pytest

from event_store import EventStore
from projections import inventory, shows, tables, workouts
from schemas.ops import Op, PushRequest
from schemas.rows import DERIVED, row_type
from schemas.values import dec_hook
from sync_server.push import Origin, push

OWNER = UUID("00000000-0000-4000-8000-0000000000c1")


def test_derived_types_name_the_projectors_derived_fields() -> None:
    for entity, module in (("show", shows), ("workout", workouts), ("product", inventory)):
        assert msgspec.structs.fields(DERIVED[entity]) and {
            field.name for field in msgspec.structs.fields(DERIVED[entity])
        } == set(module.DERIVED)
    assert msgspec.structs.fields(DERIVED["cost"]) == ()


def test_every_projected_row_decodes_as_its_documented_type(store: EventStore) -> None:
    show_id, product_id, workout_id = uuid4(), uuid4(), uuid4()
    sets = [{"reps": 5, "weight": "60.5", "unit": "lb"}]
    ops = [
        Op(uuid4(), "show", show_id, "create", data={
            "date": "2026-12-01", "city": "Lyon", "country": "FR", "fee": "900",
            "mgmt_pct": "12.5", "venue": "Le Transbordeur"}),
        Op(uuid4(), "cost", uuid4(), "create", data={
            "show_id": str(show_id), "type": "hotel", "amount": "120.40"}),
        Op(uuid4(), "cost", uuid4(), "create", data={
            "show_id": str(show_id), "type": "van", "amount": "80", "currency": "CHF"}),
        Op(uuid4(), "workout", workout_id, "create", data={
            "date": "2026-11-20", "name": "Push day",
            "exercises": [{"name": "Bench", "sets": sets}]}),
        Op(uuid4(), "product", product_id, "create", data={
            "sku": "MUG-1", "name": "Mug", "quantity": 5, "reorder_point": 3}),
        Op(uuid4(), "product", product_id, "record_sale", data={
            "quantity": 3, "unit_price": "9.90", "sold_at": "2026-11-20T10:00:00Z"}),
    ]  # fmt: skip
    client = uuid4()
    results = push(store, PushRequest(client, ops), Origin(OWNER, client)).results
    assert {result.status for result in results} == {"applied"}
    with store.snapshot() as sql:
        rows = tables.load_all(sql, OWNER)
    assert len(rows) == 5
    for (_, table, _), row in rows.items():
        entity = {"shows": "show", "costs": "cost", "workouts": "workout", "inventory": "product"}[
            table
        ]
        msgspec.json.decode(tables.body_of(row), type=row_type(entity), dec_hook=dec_hook)


def test_an_undocumented_member_would_be_caught() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"surprise": 1}', type=row_type("cost"), dec_hook=dec_hook)
