"""Absurd numbers and moments over HTTP (DESIGN.md, invariant 8): values past what Python or the
database can hold (thousands of digits, beyond 64 bits, instants outside years 1 to 9999 once in
UTC) are refused with a clear problem or rejected op, on both backends, and write nothing.

The hypothesis test at the end throws such values at every numeric and time parameter at once;
the tests before it pin down the answer to each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api import Device, assert_problem, op, product, sale, show, sign_up, uid
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

THOUSANDS_OF_DIGITS = "9" * 5000  # past Python's 4300-digit limit on int(str)
PAST_INT64 = str(2**64)
NO_UTC_FORM = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.fixture
def device(http: httpx.Client) -> Device:
    return sign_up(http)


def get(device: Device, path: str, **params: Any) -> httpx.Response:
    return device.http.get(path, params=params, headers=device.headers)


def created(device: Device, entity: str, data: dict[str, Any]) -> str:
    id_ = uid()
    assert device.push([op(entity, id_, "create", data)])[0]["status"] == "applied"
    return id_


def event_count(device: Device) -> int:
    response = get(device, "/v1/events", limit=1000)
    assert response.status_code == 200, response.text
    return len(response.json()["events"])


# -- moments in op payloads ----------------------------------------------------------------------


@pytest.mark.parametrize("sold_at", NO_UTC_FORM)
def test_a_sale_time_with_no_utc_form_is_a_field_error_and_writes_nothing(
    device: Device, sold_at: str
) -> None:
    product_id = created(device, "product", product(quantity=10))
    results = device.push([op("product", product_id, "record_sale", sale(1, sold_at=sold_at))])
    assert results[0]["status"] == "rejected"
    assert results[0]["error"]["code"] == "validation_failed"
    assert results[0]["error"]["errors"] == [
        {"path": "data.sold_at", "message": "must fall between the years 1 and 9999 once "
         "converted to UTC"}
    ]  # fmt: skip
    rest = device.http.post(
        f"/v1/inventory/{product_id}/sales", json=sale(1, sold_at=sold_at), headers=device.headers
    )
    assert [e["path"] for e in assert_problem(rest, 422, "validation_failed")["errors"]] == [
        "sold_at"
    ]
    assert event_count(device) == 1  # the create alone
    assert device.state()[("product", product_id)]["data"]["quantity"] == 10


def test_a_client_time_with_a_nul_or_no_utc_form_rejects_its_op_alone(device: Device) -> None:
    # A NUL inside a time Python's parser takes: PostgreSQL cannot store it in the metadata.
    bad = ["2026-11-20T18:03:11\u0000Z", *NO_UTC_FORM]
    good = op("show", uid(), "create", show(), client_ts="0001-01-01T00:00:00-01:00")
    results = device.push(
        [op("show", uid(), "create", show(), client_ts=ts) for ts in bad] + [good]
    )
    assert [r["status"] for r in results] == ["rejected"] * len(bad) + ["applied"]
    assert {e["path"] for r in results[:-1] for e in r["error"]["errors"]} == {"client_ts"}
    assert event_count(device) == 1


# -- numbers in query parameters and headers -----------------------------------------------------

NUMERIC_PARAMETERS = [
    ("/v1/sync/pull", "limit"),
    ("/v1/sync/pull", "wait"),
    ("/v1/shows", "limit"),
    ("/v1/inventory", "limit"),
    ("/v1/events", "after"),
    ("/v1/events", "limit"),
    ("/v1/shows/{id}/history", "after"),
    ("/v1/shows/{id}/history", "limit"),
    ("/v1/shows/{id}", "version"),
]


@pytest.mark.parametrize(("path", "parameter"), NUMERIC_PARAMETERS)
@pytest.mark.parametrize("value", [THOUSANDS_OF_DIGITS, PAST_INT64, "0" * 5000 + "1" * 30])
def test_a_number_past_any_bound_is_400_naming_its_parameter(
    device: Device, path: str, parameter: str, value: str
) -> None:
    show_id = created(device, "show", show())
    problem = assert_problem(
        get(device, path.format(id=show_id), **{parameter: value}), 400, "invalid_parameter"
    )
    assert problem["errors"][0]["path"] == parameter
    assert "must be an integer from" in problem["errors"][0]["message"]


def test_leading_zeros_do_not_count_against_a_number(device: Device) -> None:
    response = get(device, "/v1/shows", limit="0" * 5000 + "2")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("tag", [THOUSANDS_OF_DIGITS, PAST_INT64, str(2**31)])
def test_an_if_match_past_any_version_is_400_and_writes_nothing(device: Device, tag: str) -> None:
    show_id = created(device, "show", show())
    headers = {**device.headers, "If-Match": f'"{tag}"'}
    changed = device.http.patch(f"/v1/shows/{show_id}", json={"city": "Oslo"}, headers=headers)
    assert_problem(changed, 400, "invalid_header")
    assert_problem(device.http.delete(f"/v1/shows/{show_id}", headers=headers), 400)
    assert event_count(device) == 1


# -- moments in query parameters -----------------------------------------------------------------


@pytest.mark.parametrize("moment", NO_UTC_FORM)
def test_a_moment_with_no_utc_form_is_400_for_since_and_as_of(device: Device, moment: str) -> None:
    show_id = created(device, "show", show())
    for path, parameter in (("/v1/sync/pull", "since"), (f"/v1/shows/{show_id}", "as_of")):
        problem = assert_problem(get(device, path, **{parameter: moment}), 400, "invalid_parameter")
        assert problem["errors"][0]["path"] == parameter
        assert "years 1 and 9999" in problem["errors"][0]["message"]


def test_moments_before_the_year_1000_compare_as_times_on_both_backends(device: Device) -> None:
    # SQLite compares times as text: a year spelt "999" rather than "0999" sorted after 2026.
    show_id = created(device, "show", show())
    long_ago = "0999-01-01T00:00:00Z"
    assert len(device.pull(since=long_ago)["changes"]) == 1
    assert_problem(get(device, f"/v1/shows/{show_id}", as_of=long_ago), 404, "not_found")
    assert get(device, f"/v1/shows/{show_id}", as_of="9999-12-31T23:59:59Z").status_code == 200


# -- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1000, 5000])
def test_a_body_nested_too_deeply_is_400_malformed_json(device: Device, depth: int) -> None:
    deep = "[" * depth + "]" * depth
    push = f'{{"client_id": "{uid()}", "ops": [{{"op_id": "{uid()}", "entity": "show", "id": ' \
        f'"{uid()}", "action": "create", "data": {{"notes": {deep}}}}}]}}'  # fmt: skip
    headers = {**device.headers, "Content-Type": "application/json"}
    for path, body in (("/v1/sync/push", push), ("/v1/shows", f'{{"notes": {deep}}}'),
                       ("/v1/auth/login", f'{{"email": {deep}}}')):  # fmt: skip
        response = device.http.post(path, content=body, headers=headers)
        assert "nested too deeply" in assert_problem(response, 400, "malformed_json")["detail"]
    assert event_count(device) == 0


# -- all of them at once -------------------------------------------------------------------------

ABSURD = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=2**31 - 2, max_value=2**64 + 2).map(str),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
    st.builds(
        "{:04d}-{:02d}-{:02d}T{:02d}:00:00{}".format,
        st.sampled_from([0, 1, 999, 1000, 9999, 10000]),
        st.sampled_from([1, 12]),
        st.sampled_from([1, 31]),
        st.sampled_from([0, 23]),
        st.sampled_from(["Z", "+23:59", "-23:59", "+01:00", "-01:00", ""]),
    ),
    st.sampled_from(["0000-01-01", "0001-01-01", "9999-12-31", "10000-01-01", "2026-W47-1"]),
)
PARAMETERS = [
    ("/v1/sync/pull", ("since", "limit", "wait")),
    ("/v1/shows", ("limit", "from", "to")),
    ("/v1/workouts", ("limit", "from", "to")),
    ("/v1/events", ("after", "limit")),
    ("/v1/shows/{id}/history", ("after", "limit")),
    ("/v1/shows/{id}", ("as_of",)),
    ("/v1/shows/{id}", ("version",)),
    ("/v1/reports/sales", ("from", "to")),
    ("/v1/stats", ("from", "to")),
]


@pytest.fixture(scope="module")
def fuzzed(server: Any) -> Iterator[tuple[Device, str]]:
    """One user for every example (sign-ups are rate limited), and a show of theirs."""
    with server.client() as client:
        device = sign_up(client)
        yield device, created(device, "show", show())


@given(
    target=st.sampled_from(PARAMETERS),
    values=st.lists(ABSURD, min_size=1, max_size=3),
    if_match=st.one_of(st.none(), ABSURD),
)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_absurd_values_anywhere_never_get_a_server_error(
    fuzzed: tuple[Device, str],
    target: tuple[str, tuple[str, ...]],
    values: list[str],
    if_match: str | None,
) -> None:
    device, show_id = fuzzed
    path, names = target
    response = get(device, path.format(id=show_id), **dict(zip(names, values, strict=False)))
    assert response.status_code in (200, 400, 404), response.text
    if response.status_code != 200:
        assert_problem(response, response.status_code)
    if if_match is not None:
        headers = {**device.headers, "If-Match": f'"{if_match}"'}
        patched = device.http.patch(f"/v1/shows/{show_id}", json={"notes": "x"}, headers=headers)
        assert patched.status_code in (200, 400, 409, 422), patched.text
