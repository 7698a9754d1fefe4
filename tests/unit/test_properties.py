"""Properties of the pure core, over sequences of ops hypothesis makes up.

(a) deciding and applying never leaves a negative stock, and every stream's version is exactly
    the number of its events; (b) rebuilding rows from the log, in one go or in two halves with
    a JSON round trip of rows and events in between, gives the live rows; (c) two updates of
    disjoint fields from the same base both apply, in either order, to the same data.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from domain_harness import T0, Engine, op
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_store.events import RecordedEvent, StreamId
from projections.apply import apply_events
from projections.rows import ReadRow, RowKey, key_of
from schemas.ops import Op
from sync_server.decide import Accepted

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

IDS = {
    entity: [UUID(int=(n << 8) + i) for i in range(3)]
    for n, entity in enumerate(["show", "cost", "workout", "product"], start=1)
}


def money(high: int = 100_000) -> st.SearchStrategy[str]:
    return st.decimals(
        min_value=0, max_value=high, places=2, allow_nan=False, allow_infinity=False
    ).map(lambda d: format(d, "f"))


def percent() -> st.SearchStrategy[str]:
    return st.decimals(
        min_value=0, max_value=100, places=1, allow_nan=False, allow_infinity=False
    ).map(lambda d: format(d, "f"))


SHOW_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "date": st.dates().map(lambda d: d.isoformat()),
    "city": st.sampled_from(["Madrid", "Lyon", "Porto", "Oslo"]),
    "country": st.sampled_from(["ES", "FR", "PT", "NO"]),
    "venue": st.none() | st.sampled_from(["Wizink", "Olympia"]),
    "fee": money(),
    "currency": st.sampled_from(["EUR", "USD"]),
    "status": st.sampled_from(["draft", "pending", "confirmed", "completed", "canceled"]),
    "mgmt_agency": st.none() | st.just("Agency"),
    "mgmt_pct": percent(),
    "booking_pct": percent(),
    "wht_pct": percent(),
    "notes": st.none() | st.text(max_size=20),
}

SHOW_REQUIRED = ("date", "city", "country", "fee")

SETS = st.lists(
    st.fixed_dictionaries(
        {"reps": st.integers(1, 100), "weight": money(300), "unit": st.sampled_from(["kg", "lb"])}
    ),
    min_size=1,
    max_size=3,
)
EXERCISE_NAMES = st.sampled_from(["Squat", "Bench", "Row"])
EXERCISES = st.lists(
    st.fixed_dictionaries({"name": EXERCISE_NAMES, "sets": SETS}), min_size=1, max_size=3
)


def partial(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields).filter(bool)


# base_version relative to the entity's version when the op is pushed (None: no base), mostly
# current so that ops apply, sometimes stale or ahead so that every merge branch is reached.
BASE_OFFSETS = st.sampled_from([0, 0, 0, -1, -2, 1, None])


@st.composite
def an_op(draw: st.DrawFn) -> tuple[Op, int | None]:
    entity = draw(st.sampled_from(list(IDS)))
    id = draw(st.sampled_from(IDS[entity]))
    if entity == "show":
        action = draw(st.sampled_from(["create", "update", "delete"]))
        if action == "create":
            data = draw(
                st.fixed_dictionaries(
                    {k: v for k, v in SHOW_FIELDS.items() if k in SHOW_REQUIRED},
                    optional={k: v for k, v in SHOW_FIELDS.items() if k not in SHOW_REQUIRED},
                )
            )
        else:
            data = draw(partial(SHOW_FIELDS))
    elif entity == "cost":
        action = draw(st.sampled_from(["create", "update", "delete"]))
        fields = {
            "show_id": st.sampled_from(IDS["show"]).map(str),
            "type": st.sampled_from(["sound", "hotel"]),
            "amount": money(5000),
            "currency": st.sampled_from(["EUR", "USD", "GBP"]),
        }
        data = draw(st.fixed_dictionaries(fields) if action == "create" else partial(fields))
    elif entity == "workout":
        action = draw(st.sampled_from(["create", "update", "delete", "log_set", "log_set"]))
        fields = {
            "date": SHOW_FIELDS["date"],
            "name": st.sampled_from(["Legs", "Push day"]),
            "exercises": EXERCISES,
        }
        if action == "log_set":
            data = draw(
                st.fixed_dictionaries(
                    {
                        "exercise": EXERCISE_NAMES | st.just("Curl"),
                        "reps": st.integers(1, 100),
                        "weight": money(300),
                        "unit": st.sampled_from(["kg", "lb"]),
                    }
                )
            )
        else:
            data = draw(st.fixed_dictionaries(fields) if action == "create" else partial(fields))
    else:
        action = draw(
            st.sampled_from(
                ["create", "update", "delete", "adjust_stock", "record_sale", "record_sale"]
            )
        )
        fields = {
            "sku": st.sampled_from(["A", "B", "C"]),
            "name": st.just("Mug"),
            "reorder_point": st.integers(0, 5),
        }
        if action == "create":
            data = draw(st.fixed_dictionaries({**fields, "quantity": st.integers(0, 10)}))
        elif action == "update":
            data = draw(partial(fields))
        elif action == "adjust_stock":
            delta = st.integers(-8, 8).filter(bool)
            data = draw(st.fixed_dictionaries({"delta": delta, "reason": st.just("count")}))
        else:
            sold_at = st.integers(-60 * 24, 10 * 24).map(
                lambda h: (T0 + timedelta(hours=h)).isoformat().replace("+00:00", "Z")
            )
            data = draw(
                st.fixed_dictionaries(
                    {"quantity": st.integers(1, 6), "unit_price": money(50), "sold_at": sold_at}
                )
            )
    return op(entity, id, action, data), draw(BASE_OFFSETS)


Step = tuple[tuple[Op, int | None], int]
STEPS = st.lists(st.tuples(an_op(), st.integers(0, 24 * 20)), min_size=1, max_size=40)

# Every run starts from a few live entities, so that most random ops find something to act on.
PRELUDE = [
    op(
        "show",
        IDS["show"][0],
        "create",
        {"date": "2026-12-01", "city": "Oslo", "country": "NO", "fee": "900"},
    ),
    op(
        "show",
        IDS["show"][1],
        "create",
        {"date": "2026-12-02", "city": "Lyon", "country": "FR", "fee": "50"},
    ),
    op(
        "cost",
        IDS["cost"][0],
        "create",
        {"show_id": str(IDS["show"][0]), "type": "hotel", "amount": "80"},
    ),
    op("product", IDS["product"][0], "create", {"sku": "A", "name": "Mug", "quantity": 5}),
    op("product", IDS["product"][1], "create", {"sku": "B", "name": "Cap", "quantity": 1}),
    op(
        "workout",
        IDS["workout"][0],
        "create",
        {
            "date": "2026-11-02",
            "name": "Legs",
            "exercises": [{"name": "Squat", "sets": [{"reps": 5, "weight": "100", "unit": "kg"}]}],
        },
    ),
]


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
