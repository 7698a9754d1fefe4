"""The daily sales report over HTTP, kept up by the catch-up runner inside ``serve``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from api import Device, assert_problem, op, product, sale, sign_up, uid


@pytest.fixture
def device(server: Any) -> Iterator[Device]:
    with server.client() as client:
        yield sign_up(client)


def report(device: Device, **params: Any) -> dict[str, Any]:
    response = device.http.get("/v1/reports/sales", params=params, headers=device.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_sales_show_up_in_the_report_by_day(device: Device) -> None:
    mug, cap = uid(), uid()
    device.push([op("product", mug, "create", product(sku="MUG")),
                 op("product", cap, "create", product(sku="CAP"))])  # fmt: skip
    sales = [(mug, 2, "3.50", "2026-11-20T10:00:00Z"), (mug, 1, "3.50", "2026-11-20T18:00:00Z"),
             (cap, 4, "1.25", "2026-11-21T09:00:00Z")]  # fmt: skip
    device.push([
        op("product", id_, "record_sale", sale(quantity, unit_price=price, sold_at=at))
        for id_, quantity, price, at in sales
    ])  # fmt: skip
    window = {"from": "2026-11-01", "to": "2026-11-30"}
    deadline = time.monotonic() + 30  # the runner trails the log by a round
    while len((body := report(device, **window))["days"]) < 2:
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
    assert body["from"] == "2026-11-01" and body["to"] == "2026-11-30"
    assert [(d["date"], d["sku"], d["units"], d["revenue"], d["sales"]) for d in body["days"]] == [
        ("2026-11-20", "MUG", 3, "10.50", 2),
        ("2026-11-21", "CAP", 4, "5.00", 1),
    ]
    only_cap = report(device, product_id=cap, **window)["days"]
    assert [d["product_id"] for d in only_cap] == [cap]
    assert report(device, **{"from": "2026-11-21", "to": "2026-11-21"})["days"][0]["sku"] == "CAP"


def test_bad_report_parameters_are_400(device: Device, server: Any) -> None:
    for params in ({"from": "yesterday"}, {"to": "2026-13-01"}, {"from": "20261101"},
                   {"from": "2026-11-02", "to": "2026-11-01"}, {"from": "2020-01-01",
                   "to": "2026-01-01"}, {"product_id": "x"}):  # fmt: skip
        response = device.http.get("/v1/reports/sales", params=params, headers=device.headers)
        assert_problem(response, 400, "invalid_parameter")
    with server.client() as anonymous:
        assert_problem(anonymous.get("/v1/reports/sales"), 401)


def test_a_report_at_the_edges_of_the_calendar_is_empty_not_an_error(device: Device) -> None:
    # The default start, 29 days before ``to``, would fall before the first day there is.
    assert report(device, to="0001-01-01") == {"from": "0001-01-01", "to": "0001-01-01", "days": []}
    assert report(device, **{"from": "9999-12-01", "to": "9999-12-31"})["days"] == []
    for params in ({"to": "0000-12-31"}, {"from": "10000-01-01"}, {"to": "2026-W47-1"},
                   {"from": "\uff12\uff10\uff12\uff16-11-01"}):  # fmt: skip
        response = device.http.get("/v1/reports/sales", params=params, headers=device.headers)
        problem = assert_problem(response, 400, "invalid_parameter")
        assert problem["errors"][0]["message"] == "must be a date in the form YYYY-MM-DD"
