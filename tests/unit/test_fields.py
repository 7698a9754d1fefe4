"""Validation of entity fields and action payloads: good and bad values at each boundary."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.results import FieldError
from schemas.validate import MAX_ERRORS, validate_action, validate_fields
from schemas.values import Measure, Money, Percent, WireDecimal

SHOW = {"date": "2026-12-01", "city": "Madrid", "country": "ES", "fee": "12000.00"}


def clean_show(**fields: Any) -> dict[str, Any]:
    result = validate_fields("show", {**SHOW, **fields}, partial=False)
    assert isinstance(result, dict), result
    return result


def errors_of(result: object) -> dict[str, str]:
    assert isinstance(result, list), result
    assert all(isinstance(error, FieldError) for error in result)
    return {error.path: error.message for error in result}


def show_errors(**fields: Any) -> dict[str, str]:
    return errors_of(validate_fields("show", {**SHOW, **fields}, partial=False))


# --- decimals -----------------------------------------------------------------------------------


@given(
    whole=st.text("0123456789", min_size=1, max_size=14),
    fraction=st.text("0123456789", max_size=6),
    negative=st.booleans(),
    kind=st.sampled_from([Money, Percent, Measure]),
)
def test_a_decimal_read_from_text_is_spelt_as_decimal_arithmetic_would(
    whole: str, fraction: str, negative: bool, kind: type[WireDecimal]
) -> None:
    raw = ("-" if negative else "") + whole + (f".{fraction}" if fraction else "")
    try:
        parsed = kind.parse(raw)
    except ValueError:
        value = Decimal(raw)
        assert value < kind.low or value > kind.high or len(fraction.rstrip("0")) > 4
        return
    places = max(kind.min_places, -min(0, Decimal(raw).normalize().as_tuple().exponent))
    assert isinstance(places, int)
    assert parsed.canonical() == format(
        (Decimal(raw) + 0).quantize(Decimal(1).scaleb(-places)), "f"
    )
    assert parsed == Decimal(raw)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("12000.00", "12000.00"),
        ("12000", "12000.00"),
        (12000, "12000.00"),
        ("4.5", "4.50"),
        ("1.125", "1.125"),
        ("1.1234", "1.1234"),
        ("1.12340000", "1.1234"),
        ("0", "0.00"),
        ("-0", "0.00"),
        ("000012.5", "12.50"),
        ("1000000000000", "1000000000000.00"),
        (10**12, "1000000000000.00"),
    ],
)
def test_money_accepts_plain_decimals_and_integers(raw: object, canonical: str) -> None:
    assert clean_show(fee=raw)["fee"] == canonical


@pytest.mark.parametrize(
    "raw",
    [
        12000.5,
        1.0,
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "1e3",
        "1E+3",
        "+1",
        " 1",
        "1.",
        ".5",
        "1,5",
        "١٢",
        "",
        True,
        None,
        [],
        "1.12345",
        "1000000000000.0001",
        10**12 + 1,
        10**40,
        "-1",
        -1,
        "-0.01",
        "1" * 41,
    ],
)
def test_money_refuses_floats_specials_and_absurd_values(raw: object) -> None:
    assert "data.fee" in show_errors(fee=raw)


def test_decimal_messages_say_what_is_wrong() -> None:
    assert "float" in show_errors(fee=1.5)["data.fee"]
    assert show_errors(fee="-1")["data.fee"] == "must be >= 0"
    assert "4 decimal places" in show_errors(fee="0.00001")["data.fee"]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("0", "0"), ("100", "100"), ("15.50", "15.5"), (7, "7"), ("0.0001", "0.0001")],
)
def test_percentages_between_0_and_100(raw: object, canonical: str) -> None:
    for field in ("mgmt_pct", "booking_pct", "wht_pct"):
        assert clean_show(**{field: raw})[field] == canonical


@pytest.mark.parametrize("raw", ["100.0001", "101", 101, "-0.0001", 12.5])
def test_percentages_out_of_range(raw: object) -> None:
    for field in ("mgmt_pct", "booking_pct", "wht_pct"):
        assert f"data.{field}" in show_errors(**{field: raw})


# --- show ---------------------------------------------------------------------------------------


def test_show_create_fills_defaults_in_canonical_form() -> None:
    assert clean_show() == {
        "date": "2026-12-01",
        "city": "Madrid",
        "country": "ES",
        "venue": None,
        "fee": "12000.00",
        "currency": "EUR",
        "status": "draft",
        "mgmt_agency": None,
        "mgmt_pct": "0",
        "booking_agency": None,
        "booking_pct": "0",
        "wht_pct": "0",
        "notes": None,
    }


def test_show_create_reports_every_problem_at_once() -> None:
    result = validate_fields("show", {"city": "", "fee": -1, "colour": "red"}, partial=False)
    assert errors_of(result) == {
        "data.city": "must be at least 1 characters",
        "data.fee": "must be >= 0",
        "data.colour": "unknown field",
        "data.date": "is required",
        "data.country": "is required",
    }


@pytest.mark.parametrize(
    ("field", "ok", "bad"),
    [
        ("city", "x" * 100, "x" * 101),
        ("venue", "x" * 200, "x" * 201),
        ("mgmt_agency", "x" * 200, "x" * 201),
        ("booking_agency", "x" * 200, "x" * 201),
        ("notes", "x" * 5000, "x" * 5001),
    ],
)
def test_show_text_lengths(field: str, ok: str, bad: str) -> None:
    assert clean_show(**{field: ok})[field] == ok
    assert "characters" in show_errors(**{field: bad})[f"data.{field}"]


@pytest.mark.parametrize("city", ["", " ", "\t\n"])
def test_show_city_must_not_be_blank(city: str) -> None:
    assert "data.city" in show_errors(city=city)


@pytest.mark.parametrize("status", ["draft", "pending", "confirmed", "completed", "canceled"])
def test_show_statuses(status: str) -> None:
    assert clean_show(status=status)["status"] == status


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "cancelled"),
        ("status", "Draft"),
        ("country", "es"),
        ("country", "UK"),
        ("country", "XK"),
        ("country", "ESP"),
        ("currency", "eur"),
        ("currency", "ABC"),
        ("currency", "EU"),
        ("date", "2026-13-01"),
        ("date", "01/12/2026"),
        ("date", "2026-12-01T10:00:00Z"),
        ("date", 20261201),
        ("city", 42),
        ("venue", 42),
    ],
)
def test_show_bad_values(field: str, value: object) -> None:
    assert f"data.{field}" in show_errors(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"), [("country", "GB"), ("currency", "JPY"), ("currency", "KWD")]
)
def test_show_codes(field: str, value: str) -> None:
    assert clean_show(**{field: value})[field] == value


def test_show_update_takes_any_non_empty_subset() -> None:
    assert validate_fields("show", {"fee": 13000}, partial=True) == {"fee": "13000.00"}
    assert validate_fields("show", {"venue": None}, partial=True) == {"venue": None}
    assert errors_of(validate_fields("show", {}, partial=True)) == {
        "data": "must contain at least one field to change"
    }


def test_show_update_cannot_null_a_required_field() -> None:
    assert "data.fee" in errors_of(validate_fields("show", {"fee": None}, partial=True))
    assert "data.date" in errors_of(validate_fields("show", {"date": None}, partial=True))


def test_show_update_refuses_derived_and_unknown_fields() -> None:
    errors = errors_of(validate_fields("show", {"net": "1.00", "id": "x"}, partial=True))
    assert errors == {"data.net": "unknown field", "data.id": "unknown field"}


# --- cost ---------------------------------------------------------------------------------------

COST = {"show_id": "0b6c5d7e-0000-4000-8000-000000000000", "type": "sound", "amount": "500"}


def test_cost_create_canonical() -> None:
    assert validate_fields("cost", COST, partial=False) == {
        **COST,
        "amount": "500.00",
        "currency": "EUR",
        "description": None,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("show_id", "not-a-uuid"),
        ("show_id", 7),
        ("type", ""),
        ("type", "x" * 51),
        ("amount", "-0.01"),
        ("amount", 0.5),
        ("currency", "XXY"),
        ("description", "x" * 2001),
    ],
)
def test_cost_bad_values(field: str, value: object) -> None:
    assert f"data.{field}" in errors_of(
        validate_fields("cost", {**COST, field: value}, partial=False)
    )


@pytest.mark.parametrize(("field", "value"), [("type", "x" * 50), ("description", "x" * 2000)])
def test_cost_good_boundaries(field: str, value: str) -> None:
    assert isinstance(validate_fields("cost", {**COST, field: value}, partial=False), dict)


# --- workout ------------------------------------------------------------------------------------


def workout(**fields: Any) -> dict[str, Any]:
    squat = {"name": "Squat", "sets": [{"reps": 5, "weight": "100", "unit": "kg"}]}
    return {"date": "2026-11-20", "name": "Legs", "exercises": [squat], **fields}


def exercise(sets: int = 1, name: str = "Squat", **set_fields: Any) -> dict[str, Any]:
    one = {"reps": 5, "weight": "100.0", "unit": "kg", **set_fields}
    return {"name": name, "sets": [one] * sets}


def test_workout_create_canonical() -> None:
    result = validate_fields("workout", workout(exercises=[exercise()]), partial=False)
    assert result == {
        "date": "2026-11-20",
        "name": "Legs",
        "notes": None,
        "exercises": [{"name": "Squat", "sets": [{"reps": 5, "weight": "100", "unit": "kg"}]}],
    }


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"name": "AB"}, "data.name"),
        ({"name": "x" * 101}, "data.name"),
        ({"exercises": []}, "data.exercises"),
        ({"exercises": [exercise()] * 51}, "data.exercises"),
        ({"exercises": [exercise(sets=0)]}, "data.exercises[0].sets"),
        ({"exercises": [exercise(sets=21)]}, "data.exercises[0].sets"),
        ({"exercises": [exercise(), exercise(reps=0)]}, "data.exercises[1].sets[0].reps"),
        ({"exercises": [exercise(reps=101)]}, "data.exercises[0].sets[0].reps"),
        ({"exercises": [exercise(reps="5")]}, "data.exercises[0].sets[0].reps"),
        ({"exercises": [exercise(weight="-1")]}, "data.exercises[0].sets[0].weight"),
        ({"exercises": [exercise(weight=2.5)]}, "data.exercises[0].sets[0].weight"),
        ({"exercises": [exercise(unit="g")]}, "data.exercises[0].sets[0].unit"),
        ({"exercises": [exercise(rpe=8)]}, "data.exercises[0].sets[0].rpe"),
        (
            {"exercises": [{"sets": [{"reps": 1, "weight": "1", "unit": "kg"}]}]},
            "data.exercises[0].name",
        ),
        ({"exercises": [exercise(name="")]}, "data.exercises[0].name"),
        ({"exercises": [exercise(name="x" * 101)]}, "data.exercises[0].name"),
    ],
)
def test_workout_bad_values(fields: dict[str, Any], path: str) -> None:
    assert path in errors_of(validate_fields("workout", workout(**fields), partial=False))


def test_every_problem_inside_a_workout_is_reported_at_once() -> None:
    bad_set = {"reps": 101, "weight": "-1", "unit": "g"}
    exercises = [
        {"name": "Squat", "sets": [bad_set, {"reps": 5, "weight": "100", "unit": "kg", "rpe": 8}]},
        exercise(),
        {"sets": [{"reps": 1, "weight": "1"}]},
    ]
    errors = validate_fields("workout", workout(name="AB", exercises=exercises), partial=False)
    assert sorted(errors_of(errors)) == sorted(
        [
            "data.name",
            "data.exercises[0].sets[0].reps",
            "data.exercises[0].sets[0].weight",
            "data.exercises[0].sets[0].unit",
            "data.exercises[0].sets[1].rpe",
            "data.exercises[2].sets[0].unit",
            "data.exercises[2].name",
        ]
    )
    # An unknown member first (msgspec then names no place) does not hide the rest.
    exercises = [
        {"zz": 1, "name": "", "sets": [{"zz": 1, "reps": 101, "weight": "1", "unit": "kg"}]}
    ]
    errors = validate_fields("workout", workout(exercises=exercises), partial=False)
    assert sorted(errors_of(errors)) == [
        "data.exercises[0].name",
        "data.exercises[0].sets[0].reps",
        "data.exercises[0].sets[0].zz",
        "data.exercises[0].zz",
    ]
    # Thousands of problems are not all listed: the answer and the stored outcome stay small.
    many = [{"name": "Squat", "sets": [{"reps": 0, "weight": "-1", "unit": "g"}] * 20}] * 50
    errors = validate_fields("workout", workout(exercises=many), partial=False)
    assert isinstance(errors, list) and len(errors) == MAX_ERRORS
    assert errors[-1] == FieldError(
        "data", f"and {3 * 20 * 50 - MAX_ERRORS + 1} more problems not listed"
    )
    # What is wrong with a list as a whole is one error, at the list.
    too_many = validate_fields(
        "workout", workout(exercises=[exercise(sets=21, reps=0)]), partial=False
    )
    assert errors_of(too_many) == {"data.exercises[0].sets": "must have at most 20 items"}


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "Leg"},
        {"name": "x" * 100},
        {"exercises": [exercise(sets=20)] * 50},
        {"exercises": [exercise(reps=1, weight=0), exercise(reps=100, unit="lb")]},
    ],
)
def test_workout_good_boundaries(fields: dict[str, Any]) -> None:
    assert isinstance(validate_fields("workout", workout(**fields), partial=False), dict)


def test_nested_unknown_and_missing_fields_are_named_in_the_path() -> None:
    errors = errors_of(
        validate_fields("workout", workout(exercises=[exercise(rpe=8)]), partial=False)
    )
    assert errors == {"data.exercises[0].sets[0].rpe": "unknown field"}
    missing = [{"name": "Squat", "sets": [{"reps": 5, "unit": "kg"}]}]
    errors = errors_of(validate_fields("workout", workout(exercises=missing), partial=False))
    assert errors == {"data.exercises[0].sets[0].weight": "is required"}


# --- product ------------------------------------------------------------------------------------


def test_product_create_defaults() -> None:
    assert validate_fields("product", {"sku": "A-1", "name": "Mug"}, partial=False) == {
        "sku": "A-1",
        "name": "Mug",
        "unit": "unit",
        "quantity": 0,
        "reorder_point": 0,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sku", ""),
        ("sku", "x" * 65),
        ("name", "x" * 201),
        ("unit", ""),
        ("unit", "x" * 21),
        ("quantity", -1),
        ("quantity", 1.5),
        ("quantity", "3"),
        ("quantity", True),
        ("reorder_point", -1),
    ],
)
def test_product_bad_values(field: str, value: object) -> None:
    data = {"sku": "A-1", "name": "Mug", field: value}
    assert f"data.{field}" in errors_of(validate_fields("product", data, partial=False))


def test_product_quantity_is_create_only() -> None:
    assert validate_fields("product", {"sku": "A", "name": "B", "quantity": 0}, partial=False)
    errors = errors_of(validate_fields("product", {"quantity": 5}, partial=True))
    assert "adjust_stock" in errors["data.quantity"]
    assert validate_fields("product", {"reorder_point": 5}, partial=True) == {"reorder_point": 5}


# --- actions ------------------------------------------------------------------------------------


def test_log_set_payload() -> None:
    payload = {"exercise": "Bench", "reps": 8, "weight": "60.50", "unit": "kg"}
    assert validate_action("workout", "log_set", payload) == {**payload, "weight": "60.5"}
    assert "data.reps" in errors_of(validate_action("workout", "log_set", {**payload, "reps": 0}))
    assert "data.exercise" in errors_of(
        validate_action("workout", "log_set", {**payload, "exercise": ""})
    )


@pytest.mark.parametrize("delta", [-5, 1, 10**12, -(10**12)])
def test_adjust_stock_good_deltas(delta: int) -> None:
    assert validate_action("product", "adjust_stock", {"delta": delta, "reason": "count"}) == {
        "delta": delta,
        "reason": "count",
    }


@pytest.mark.parametrize("delta", [0, 1.0, "3", True, 10**12 + 1, None])
def test_adjust_stock_bad_deltas(delta: object) -> None:
    result = validate_action("product", "adjust_stock", {"delta": delta, "reason": "count"})
    assert "data.delta" in errors_of(result)


def test_adjust_stock_reason_bounds() -> None:
    assert isinstance(
        validate_action("product", "adjust_stock", {"delta": 1, "reason": "x" * 200}), dict
    )
    result = validate_action("product", "adjust_stock", {"delta": 1, "reason": "x" * 201})
    assert "data.reason" in errors_of(result)
    assert "data.reason" in errors_of(validate_action("product", "adjust_stock", {"delta": 1}))


def test_record_sale_normalizes_time_to_utc() -> None:
    payload = {"quantity": 2, "unit_price": "4.5", "sold_at": "2026-11-20T20:04:00+02:00"}
    assert validate_action("product", "record_sale", payload) == {
        "quantity": 2,
        "unit_price": "4.50",
        "sold_at": "2026-11-20T18:04:00Z",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quantity", 0),
        ("quantity", -1),
        ("unit_price", -1),
        ("unit_price", 4.5),
        ("sold_at", "2026-11-20T18:04:00"),
        ("sold_at", "2026-11-20"),
        ("sold_at", "yesterday"),
    ],
)
def test_record_sale_bad_values(field: str, value: object) -> None:
    payload = {"quantity": 2, "unit_price": "4.50", "sold_at": "2026-11-20T18:04:00Z", field: value}
    assert f"data.{field}" in errors_of(validate_action("product", "record_sale", payload))


@pytest.mark.parametrize(
    "sold_at",
    [
        "0001-01-01T00:00:00+01:00",  # 31 December of the year 0 in UTC
        "9999-12-31T23:59:59-01:00",  # 1 January 10000 in UTC
        "0001-01-01T00:59:59.999999+01:00",
    ],
)
def test_record_sale_refuses_a_time_with_no_utc_form(sold_at: str) -> None:
    payload = {"quantity": 2, "unit_price": "4.50", "sold_at": sold_at}
    assert errors_of(validate_action("product", "record_sale", payload)) == {
        "data.sold_at": "must fall between the years 1 and 9999 once converted to UTC"
    }
    # Also when another field is wrong: every problem is reported, none raises.
    payload["quantity"] = 0
    assert set(errors_of(validate_action("product", "record_sale", payload))) == {
        "data.quantity",
        "data.sold_at",
    }


@pytest.mark.parametrize(
    ("sold_at", "utc"),
    [
        ("0001-01-01T01:00:00+01:00", "0001-01-01T00:00:00Z"),
        ("9999-12-31T22:59:59.999999-01:00", "9999-12-31T23:59:59.999999Z"),
        ("2026-11-20t18:04:00.5z", "2026-11-20T18:04:00.500000Z"),
    ],
)
def test_record_sale_takes_the_edges_of_the_calendar(sold_at: str, utc: str) -> None:
    payload = {"quantity": 2, "unit_price": "4.50", "sold_at": sold_at}
    assert validate_action("product", "record_sale", payload)["sold_at"] == utc  # type: ignore[index]
