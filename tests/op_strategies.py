"""Hypothesis strategies for ops on the four entities, shared by the property tests.

``an_op`` draws an op on a small pool of ids (so that ops collide on entities often) with a
``base_version`` offset relative to the entity's version at push time; ``PRELUDE`` gives every
run a few live entities to act on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from domain_harness import T0, op
from hypothesis import strategies as st

from schemas.ops import Op

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
    # Any text a client can send but NUL, which validation refuses (PostgreSQL cannot store
    # it). codec="utf-8": no lone surrogates, which no JSON body can carry (the decoder refuses
    # them, 400), and which no event could be encoded with.
    "notes": st.none()
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),
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
