"""Audit over HTTP against a real server, on both backends (PROTOCOL.md, "Audit and replay"):
the raw events, each entity's history, and its state at any past moment or version, all
rebuilt from the log and agreeing with what pushes and pulls showed at the time."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api import Device, assert_problem, cost, op, product, sale, show, sign_in, sign_up, uid


@pytest.fixture
def device(http: httpx.Client) -> Device:
    """A new user, signed in on one device."""
    return sign_up(http)


def get(device: Device, path: str, **params: Any) -> httpx.Response:
    return device.http.get(path, params=params, headers=device.headers)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def events(device: Device, **params: Any) -> list[dict[str, Any]]:
    return ok(get(device, "/v1/events", limit=1000, **params))["events"]  # type: ignore[no-any-return]


def pulled(device: Device, entity: str, id_: str) -> dict[str, Any]:
    """The entity's data as a full pull shows it now."""
    data: dict[str, Any] = device.state()[(entity, id_)]["data"]
    return data


def test_events_are_the_users_own_in_log_order_with_who_and_where(http: httpx.Client) -> None:
    device = sign_up(http)
    laptop = sign_in(http, device.email)
    show_id = uid()
    first = op("show", show_id, "create", show(), client_ts="2026-11-20T18:03:11Z")
    device.push([first])
    laptop.push([op("show", show_id, "update", {"fee": "13000.00"}, base=1)])
    sign_up(http).push([op("show", uid(), "create", show())])  # someone else's

    logged = events(device)
    assert [(e["type"], e["version"]) for e in logged] == [("show.created", 1), ("show.updated", 2)]
    assert logged[0]["position"] < logged[1]["position"]
    created, updated = logged
    assert created["entity"] == "show" and created["id"] == show_id
    assert created["data"]["fee"] == "12000.00" and updated["data"] == {"fee": "13000.00"}
    assert created["metadata"]["actor"] == device.user_id
    assert created["metadata"]["client_id"] == device.client_id
    assert created["metadata"]["op_id"] == first["op_id"]
    assert created["metadata"]["client_ts"] == "2026-11-20T18:03:11Z"
    assert created["metadata"]["device"] != updated["metadata"]["device"]  # two sessions
    assert updated["metadata"]["client_id"] == laptop.client_id


def test_events_filter_and_page(device: Device) -> None:
    show_id, product_id = uid(), uid()
    device.push([op("show", show_id, "create", show()), op("product", product_id, "create",
                 product())])  # fmt: skip
    device.push([op("product", product_id, "record_sale", sale(1)) for _ in range(3)])
    assert [e["type"] for e in events(device, entity="show")] == ["show.created"]
    assert len(events(device, entity="product", id=product_id)) == 4
    assert events(device, id=uid()) == []

    seen: list[int] = []
    after = 0
    while True:
        page = ok(get(device, "/v1/events", after=after, limit=2))
        seen += [e["position"] for e in page["events"]]
        after = page["next"]
        if not page["has_more"]:
            break
    assert seen == [e["position"] for e in events(device)] and len(seen) == 5


def test_bad_audit_parameters_are_400_and_unknown_targets_404(device: Device) -> None:
    show_id = uid()
    device.push([op("show", show_id, "create", show())])
    bad_events: list[dict[str, str]] = [
        {"after": "-1"}, {"limit": "0"}, {"limit": "x"}, {"entity": "shoe"}, {"id": "not-a-uuid"},
    ]  # fmt: skip
    for params in bad_events:
        assert_problem(get(device, "/v1/events", **params), 400, "invalid_parameter")
    bad_moments: list[dict[str, str]] = [
        {"as_of": "yesterday"}, {"as_of": "2026-11-20T10:00:00"}, {"version": "0"},
        {"version": "two"}, {"as_of": "2026-11-20T10:00:00Z", "version": "1"},
    ]  # fmt: skip
    for params in bad_moments:
        assert_problem(get(device, f"/v1/shows/{show_id}", **params), 400, "invalid_parameter")
    assert_problem(get(device, f"/v1/shows/{show_id}/history", limit="0"), 400)
    assert_problem(get(device, f"/v1/shows/{uid()}", version="1"), 404, "not_found")
    assert_problem(get(device, f"/v1/shows/{show_id}", version="2"), 404, "not_found")
    assert_problem(get(device, "/v1/shows/not-a-uuid/history"), 404, "not_found")
    assert_problem(get(device, f"/v1/shoes/{show_id}"), 404)


def test_another_users_entity_is_404_exactly_like_a_missing_one(http: httpx.Client) -> None:
    owner, other = sign_up(http), sign_up(http)
    show_id = uid()
    owner.push([op("show", show_id, "create", show())])
    for path, params in ((f"/v1/shows/{show_id}", {}), (f"/v1/shows/{show_id}/history", {}),
                         (f"/v1/shows/{show_id}", {"version": "1"})):  # fmt: skip
        missing_id = uid()
        theirs = assert_problem(get(other, path, **params), 404)
        missing = assert_problem(get(other, path.replace(show_id, missing_id), **params), 404)
        del theirs["request_id"], missing["request_id"]
        theirs["detail"] = theirs["detail"].replace(show_id, "ID")
        missing["detail"] = missing["detail"].replace(missing_id, "ID")
        assert theirs == missing
    assert events(other) == []
    assert_problem(http.get("/v1/events"), 401)
    assert_problem(http.get(f"/v1/shows/{show_id}"), 401)


def test_as_of_and_version_give_back_what_pulls_showed_at_the_time(device: Device) -> None:
    show_id, cost_id = uid(), uid()
    snapshots: list[tuple[str, dict[str, Any]]] = []  # (recorded_at of the last event, pulled)

    def push_and_remember(ops: list[dict[str, Any]]) -> None:
        assert all(r["status"] == "applied" for r in device.push(ops))
        snapshots.append((events(device)[-1]["recorded_at"], pulled(device, "show", show_id)))

    push_and_remember([op("show", show_id, "create", show(fee="1000.00", mgmt_pct="10"))])
    push_and_remember([op("cost", cost_id, "create", cost(show_id, amount="100.00"))])
    push_and_remember([op("show", show_id, "update", {"fee": "2000.00"}, base=1)])
    push_and_remember([op("cost", cost_id, "update", {"amount": "250.00"}, base=1)])
    # Derived fields follow the costs' events, which are not versions of the show:
    assert [s["net"] for _, s in snapshots] == ["900.00", "800.00", "1700.00", "1550.00"]

    for moment, seen in snapshots:
        assert ok(get(device, f"/v1/shows/{show_id}", as_of=moment)) == seen
    # version=n: just after the show's version n was recorded (costs up to then included).
    assert ok(get(device, f"/v1/shows/{show_id}", version=1)) == snapshots[0][1]
    assert ok(get(device, f"/v1/shows/{show_id}", version=2)) == snapshots[2][1]
    now = get(device, f"/v1/shows/{show_id}", as_of="2100-01-01T00:00:00Z")
    assert now.json() == snapshots[-1][1] and now.headers["etag"] == '"2"'
    assert ok(get(device, f"/v1/costs/{cost_id}", version=1))["amount"] == "100.00"

    before = assert_problem(get(device, f"/v1/shows/{show_id}", as_of="2000-01-01T00:00:00Z"), 404)
    assert before["code"] == "not_found"

    device.push([op("show", show_id, "delete", base=2)])
    deleted_at = events(device)[-1]["recorded_at"]
    gone = assert_problem(get(device, f"/v1/shows/{show_id}", as_of=deleted_at), 404)
    assert "was deleted" in gone["detail"]
    assert_problem(get(device, f"/v1/shows/{show_id}", version=3), 404)
    assert ok(get(device, f"/v1/shows/{show_id}", version=2)) == snapshots[2][1]


def test_history_lists_every_version_with_field_changes_who_and_where(http: httpx.Client) -> None:
    phone = sign_up(http)
    laptop = sign_in(http, phone.email)
    show_id, cost_id = uid(), uid()
    phone.push([op("show", show_id, "create", show(fee="1000.00"))])
    phone.push([op("cost", cost_id, "create", cost(show_id, amount="100.00"))])
    laptop.push([op("show", show_id, "update", {"fee": "1500.00", "city": "Lyon"}, base=1)])
    phone.push([op("show", show_id, "update", {"status": "confirmed"}, base=2)])

    page = ok(get(phone, f"/v1/shows/{show_id}/history"))
    versions = page["versions"]
    assert page["entity"] == "show" and page["has_more"] is False
    assert [(v["version"], v["type"]) for v in versions] == [
        (1, "show.created"), (2, "show.updated"), (3, "show.updated"),
    ]  # fmt: skip
    created, moved, confirmed = versions
    assert created["changes"]["fee"] == [None, "1000.00"]
    assert created["changes"]["city"] == [None, "Madrid"]
    # The fee change carries its consequence on the derived net (the cost counted in):
    assert moved["changes"] == {
        "fee": ["1000.00", "1500.00"], "city": ["Madrid", "Lyon"], "net": ["900.00", "1400.00"],
    }  # fmt: skip
    assert confirmed["changes"] == {"status": ["draft", "confirmed"]}
    assert moved["client_id"] == laptop.client_id and created["client_id"] == phone.client_id
    assert moved["device"] != created["device"] and created["actor"] == phone.user_id
    assert all(v["recorded_at"] for v in versions)

    # Paging by version.
    first = ok(get(phone, f"/v1/shows/{show_id}/history", limit=2))
    assert [v["version"] for v in first["versions"]] == [1, 2] and first["has_more"] is True
    rest = ok(get(phone, f"/v1/shows/{show_id}/history", after=first["next"]))
    assert [v["version"] for v in rest["versions"]] == [3] and rest["has_more"] is False


def test_a_products_history_explains_its_stock(device: Device) -> None:
    product_id = uid()
    device.push([op("product", product_id, "create", product(quantity=10))])
    device.push([op("product", product_id, "record_sale", sale(3))])
    device.push([op("product", product_id, "adjust_stock", {"delta": -2, "reason": "broken"})])
    versions = ok(get(device, f"/v1/inventory/{product_id}/history"))["versions"]
    sold, adjusted = versions[1], versions[2]
    assert sold["changes"]["quantity"] == [10, 7]
    assert sold["data"]["quantity"] == 3 and sold["data"]["unit_price"] == "4.50"
    assert adjusted["changes"]["quantity"] == [7, 5] and adjusted["data"]["reason"] == "broken"
    assert ok(get(device, f"/v1/inventory/{product_id}", version=2))["quantity"] == 7
