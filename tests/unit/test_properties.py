"""Properties of the pure core, over sequences of ops hypothesis makes up.

(a) deciding and applying never leaves a negative stock, and every stream's version is exactly
    the number of its events; (b) rebuilding rows from the log, in one go or in two halves with
    a JSON round trip of rows and events in between, gives the live rows; (c) two updates of
    disjoint fields from the same base both apply, in either order, to the same data.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from domain_harness import Engine, op
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_strategies import IDS, PRELUDE, SHOW_FIELDS, STEPS, Step

from event_store.events import RecordedEvent, StreamId
from projections.apply import apply_events
from projections.rows import ReadRow, RowKey, key_of
from schemas.ops import Op
from sync_server.decide import Accepted

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def with_base(the_op: Op, offset: int | None, engine: Engine) -> Op:
    if offset is None:
        return msgspec.structs.replace(the_op, base_version=None)
    key = key_of(StreamId(the_op.entity, the_op.id))
    current = engine.rows[key].version if key in engine.rows else 0
    return msgspec.structs.replace(the_op, base_version=max(0, current + offset))


def run(steps: list[Step]) -> Engine:
    engine = Engine()
    for the_op in PRELUDE:
        assert isinstance(engine.push(the_op), Accepted)
    for (template, offset), hours in steps:
        engine.tick(hours=hours)
        the_op = with_base(template, offset, engine)
        before = {key: row.version for key, row in engine.rows.items()}
        decision = engine.push(the_op)
        if isinstance(decision, Accepted):
            per_stream = Counter(event.stream for event in decision.events)
            for stream, count in per_stream.items():
                key = key_of(stream)
                assert key is not None
                assert engine.rows[key].version == before.get(key, 0) + count
                assert (
                    decision.version_after(stream, before.get(key, 0)) == engine.rows[key].version
                )
        for (table, _), row in engine.rows.items():
            if table == "inventory":
                assert row.data["quantity"] >= 0
    return engine


@FAST
@given(STEPS)
def test_a_stock_never_negative_and_versions_count_events(steps: list[Step]) -> None:
    engine = run(steps)
    events_per_stream = Counter(event.stream for event in engine.log)
    for stream, count in events_per_stream.items():
        key = key_of(stream)
        assert key is not None
        assert engine.rows[key].version == count
    versions = [event.version for event in engine.log if event.stream.type == "product"]
    assert all(v >= 1 for v in versions)


_rows_codec = msgspec.json.Decoder(list[tuple[str, UUID, ReadRow]])
_events_codec = msgspec.json.Decoder(list[RecordedEvent])


def round_trip(rows: dict[RowKey, ReadRow]) -> dict[RowKey, ReadRow]:
    encoded = msgspec.json.encode([(table, id, row) for (table, id), row in rows.items()])
    return {(table, id): row for table, id, row in _rows_codec.decode(encoded)}


@FAST
@given(STEPS, st.data())
def test_b_rebuild_in_one_go_or_in_two_halves_equals_live(
    steps: list[Step], data: st.DataObject
) -> None:
    engine = run(steps)
    log = _events_codec.decode(msgspec.json.encode(engine.log))
    assert log == engine.log
    whole: dict[RowKey, ReadRow] = {}
    apply_events(whole, log)
    assert whole == engine.rows
    cut = data.draw(st.integers(0, len(log)))
    halves: dict[RowKey, ReadRow] = {}
    apply_events(halves, log[:cut])
    halves = round_trip(halves)
    apply_events(halves, log[cut:])
    assert halves == engine.rows


@st.composite
def disjoint_updates(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    names = draw(
        st.lists(st.sampled_from(sorted(SHOW_FIELDS)), min_size=2, max_size=6, unique=True)
    )
    split = draw(st.integers(1, len(names) - 1))
    first = {name: draw(SHOW_FIELDS[name]) for name in names[:split]}
    second = {name: draw(SHOW_FIELDS[name]) for name in names[split:]}
    return first, second


@FAST
@given(disjoint_updates())
def test_c_disjoint_updates_from_one_base_merge_in_either_order(
    updates: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    show_id = IDS["show"][0]
    create = {"date": "2026-12-01", "city": "Madrid", "country": "ES", "fee": "100.00"}
    finals = []
    for first, second in (updates, updates[::-1]):
        engine = Engine()
        assert isinstance(engine.push(op("show", show_id, "create", create)), Accepted)
        assert isinstance(engine.push(op("show", show_id, "update", first, base=1)), Accepted)
        assert isinstance(engine.push(op("show", show_id, "update", second, base=1)), Accepted)
        finals.append(engine.data("show", show_id))
    assert finals[0] == finals[1]
    together = Engine()
    together.push(op("show", show_id, "create", create))
    together.push(op("show", show_id, "update", {**updates[0], **updates[1]}, base=1))
    assert finals[0] == together.data("show", show_id)
    assert Decimal(finals[0]["fee"]) >= 0
