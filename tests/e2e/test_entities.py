"""The entity REST API over HTTP, against real server processes on both backends (PROTOCOL.md,
"Entity REST"). Each test registers its own user on the module's shared server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from api import assert_problem, product, sale, show, sign_up, workout

from event_store import EventStore

# -- helpers -------------------------------------------------------------------------------------


class Api:
    """One signed-in user."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        device = sign_up(client)
        self.user_id = device.user_id
        self.headers = device.headers

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(
            path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs
        )

    def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return self.client.post(path, json=body, headers={**self.headers, **headers})

    def patch(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return self.client.patch(path, json=body, headers={**self.headers, **headers})

    def delete(self, path: str, **headers: str) -> httpx.Response:
        return self.client.delete(path, headers={**self.headers, **headers})

    def create(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post(f"/v1/{collection}", body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def list_all(
        self, collection: str, between: Callable[[], None] = lambda: None, **params: Any
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query = dict(params)
        while True:
            between()
            response = self.get(f"/v1/{collection}", params=query)
            assert response.status_code == 200, response.text
            page = response.json()
            items += page["items"]
            if not page["has_more"]:
                assert page["next_cursor"] is None
                return items
            query["cursor"] = page["next_cursor"]


def events_of(server: Any, owner: str) -> list[tuple[Any, ...]]:
    store: EventStore = server.database.open()
    try:
        with store.snapshot() as sql:
            return sql.fetchall(
                "SELECT type, metadata FROM events WHERE owner = ? ORDER BY position",
                [uuid.UUID(owner)],
            )
    finally:
        store.close()


@pytest.fixture
def client(server: Any) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


@pytest.fixture
def api(client: httpx.Client) -> Api:
    return Api(client)


# -- create, get, ETag ---------------------------------------------------------------------------


def test_create_answers_201_with_location_etag_and_the_row_a_pull_shows(api: Api) -> None:
    id_ = str(uuid.uuid4())
    response = api.post("/v1/shows", show(id=id_, fee="1000", mgmt_pct="10", wht_pct="15"))
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/shows/{id_}"
    assert response.headers["etag"] == '"1"'
    row = response.json()
    assert row["id"] == id_ and row["version"] == 1
    assert row["fee"] == "1000.00" and row["net"] == "750.00" and row["status"] == "draft"
    pulled = api.get("/v1/sync/pull").json()["changes"]
    assert pulled == [{"entity": "show", "id": id_, "op": "upsert", "version": 1, "data": row}]
    fetched = api.get(f"/v1/shows/{id_}")
    assert fetched.status_code == 200 and fetched.json() == row
    assert fetched.headers["etag"] == '"1"'


def test_the_server_picks_an_id_when_none_is_sent(api: Api) -> None:
    row = api.create("workouts", workout())
    uuid.UUID(row["id"])
    assert row["total_sets"] == 1 and row["volume_kg"] == "500.00"


def test_if_none_match_answers_304_until_the_entity_changes(api: Api) -> None:
    row = api.create("shows", show())
    path = f"/v1/shows/{row['id']}"
    not_modified = api.get(path, headers={"If-None-Match": '"1"'})
    assert not_modified.status_code == 304 and not_modified.headers["etag"] == '"1"'
    assert not_modified.content == b""
    api.patch(path, {"city": "Bilbao"})
    changed = api.get(path, headers={"If-None-Match": '"1"'})
    assert changed.status_code == 200 and changed.json()["city"] == "Bilbao"


def test_create_of_an_existing_id_is_409_with_the_current_row(api: Api) -> None:
    row = api.create("shows", show())
    again = api.post("/v1/shows", show(id=row["id"], city="Paris", country="FR"))
    body = assert_problem(again, 409, "already_exists")
    assert body["current"] == row and body["version"] == 1
    assert again.headers["etag"] == '"1"'


@pytest.mark.parametrize(
    ("collection", "body", "path"),
    [
        ("shows", show(fee=-1), "fee"),
        ("shows", show(country="XX"), "country"),
        ("shows", {"city": "Madrid"}, "date"),
        ("shows", show(surprise=True), "surprise"),
        ("shows", show(id="not-a-uuid"), "id"),
        # Spellings uuid.UUID takes and a push refuses: a client would find its id spelt
        # otherwise in every answer.
        ("shows", show(id="{" + str(uuid.uuid4()) + "}"), "id"),
        ("shows", show(id=f"urn:uuid:{uuid.uuid4()}"), "id"),
        ("workouts", workout(exercises=[]), "exercises"),
        ("inventory", product(quantity=-5), "quantity"),
        ("costs", {"show_id": str(uuid.uuid4()), "type": "hotel", "amount": "1"}, "show_id"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field_and_write_nothing(
    api: Api, collection: str, body: dict[str, Any], path: str
) -> None:
    problem = assert_problem(api.post(f"/v1/{collection}", body), 422)
    assert path in [error["path"] for error in problem["errors"]], problem
    assert api.get(f"/v1/{collection}").json()["items"] == []
    assert api.get("/v1/sync/pull").json()["changes"] == []


def test_bodies_that_are_not_json_objects_are_refused(api: Api) -> None:
    headers = {**api.headers, "Content-Type": "application/json"}
    assert_problem(
        api.client.post("/v1/shows", content=b"{", headers=headers), 400, "malformed_json"
    )
    assert_problem(api.client.post("/v1/shows", content=b"[1]", headers=headers), 422)
    text = {**api.headers, "Content-Type": "text/plain"}
    assert_problem(api.client.post("/v1/shows", content=b"{}", headers=text), 415)


def test_unknown_ids_and_malformed_ids_are_404(api: Api) -> None:
    for path in (f"/v1/shows/{uuid.uuid4()}", "/v1/shows/not-a-uuid"):
        assert_problem(api.get(path), 404, "not_found")
        assert_problem(api.patch(path, {"city": "Oslo"}), 404, "not_found")
        assert_problem(api.delete(path), 404, "not_found")
    assert_problem(
        api.post(f"/v1/inventory/{uuid.uuid4()}/adjust", {"delta": 1, "reason": "x"}), 404
    )


def test_a_method_a_path_does_not_take_is_405_naming_the_ones_it_does(api: Api) -> None:
    row = api.create("shows", show())
    for method, path in (("PUT", f"/v1/shows/{row['id']}"), ("DELETE", "/v1/shows")):
        response = api.client.request(method, path, headers=api.headers)
        assert_problem(response, 405, "method_not_allowed")
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert {"GET"} <= allowed and method not in allowed


def test_no_token_is_401(client: httpx.Client) -> None:
    for method, path in [("GET", "/v1/shows"), ("POST", "/v1/shows"), ("GET", "/v1/stats")]:
        assert_problem(client.request(method, path), 401)


def test_other_users_entities_are_404_and_never_listed(client: httpx.Client) -> None:
    alice, bob = Api(client), Api(client)
    row = alice.create("shows", show())
    path = f"/v1/shows/{row['id']}"
    assert_problem(bob.get(path), 404)
    assert_problem(bob.patch(path, {"city": "Oslo"}), 404)
    assert_problem(bob.delete(path), 404)
    assert bob.list_all("shows") == []
    assert alice.get(path).json()["city"] == "Madrid"


# -- PATCH and If-Match --------------------------------------------------------------------------


def test_two_writers_with_if_match_merge_disjoint_fields_and_conflict_on_the_same_one(
    client: httpx.Client,
) -> None:
    api = Api(client)
    row = api.create("shows", show())
    path = f"/v1/shows/{row['id']}"
    # Both writers read version 1.
    first = api.patch(path, {"fee": "13000"}, **{"If-Match": '"1"'})
    assert first.status_code == 200 and first.headers["etag"] == '"2"'
    # The second edits another field from version 1: merged (field-level), not refused.
    second = api.patch(path, {"city": "Bilbao"}, **{"If-Match": '"1"'})
    assert second.status_code == 200, second.text
    merged = second.json()
    assert merged["fee"] == "13000.00" and merged["city"] == "Bilbao" and merged["version"] == 3
    # A third writer, still on version 1, edits the fee the first one changed: conflict.
    third = api.patch(path, {"fee": "9000"}, **{"If-Match": '"1"'})
    problem = assert_problem(third, 409, "version_conflict")
    assert problem["fields"] == ["fee"]
    assert problem["version"] == 3 and problem["current"] == merged
    assert third.headers["etag"] == '"3"'
    # It resolves by resending on the version the conflict named.
    resolved = api.patch(path, {"fee": "9000"}, **{"If-Match": third.headers["etag"]})
    assert resolved.status_code == 200 and resolved.json()["fee"] == "9000.00"


def test_without_if_match_a_write_is_unconditional(api: Api) -> None:
    row = api.create("shows", show())
    path = f"/v1/shows/{row['id']}"
    api.patch(path, {"fee": "1"})
    response = api.patch(path, {"fee": "2"})
    assert response.status_code == 200 and response.json()["fee"] == "2.00"
    assert api.patch(path, {"fee": "3"}, **{"If-Match": "*"}).json()["fee"] == "3.00"


def test_concurrent_unconditional_writers_all_apply(client: httpx.Client, server: Any) -> None:
    api = Api(client)
    row = api.create("shows", show())
    path = f"/v1/shows/{row['id']}"
    statuses: list[int] = []

    def writer(n: int) -> None:
        with server.client() as own:
            for i in range(5):
                response = own.patch(path, json={"fee": f"{n}{i}"}, headers=api.headers)
                statuses.append(response.status_code)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 20
    assert api.get(path).json()["version"] == 21


def test_if_match_ahead_of_the_entity_is_422_and_writes_nothing(api: Api) -> None:
    # The merge policy: "b > v ... rejected / validation_failed".
    row = api.create("shows", show())
    path = f"/v1/shows/{row['id']}"
    for method, body in (("PATCH", {"city": "Oslo"}), ("DELETE", None)):
        response = api.client.request(
            method, path, json=body, headers={**api.headers, "If-Match": '"7"'}
        )
        problem = assert_problem(response, 422, "validation_failed")
        assert [e["path"] for e in problem["errors"]] == ["If-Match"]
    assert api.get(path).json()["version"] == 1


@pytest.mark.parametrize("tag", ["3", 'W/"1"', '"1", "2"', '"x"'])
def test_malformed_if_match_is_400(api: Api, tag: str) -> None:
    row = api.create("shows", show())
    assert_problem(api.patch(f"/v1/shows/{row['id']}", {"city": "Oslo"}, **{"If-Match": tag}), 400)


def test_patch_refuses_create_only_fields_and_empty_bodies(api: Api) -> None:
    row = api.create("inventory", product())
    path = f"/v1/inventory/{row['id']}"
    problem = assert_problem(api.patch(path, {"quantity": 3}), 422, "validation_failed")
    assert problem["errors"][0]["path"] == "quantity"
    assert_problem(api.patch(path, {}), 422, "validation_failed")
    assert api.get(path).json()["version"] == 1


def test_a_patch_that_changes_nothing_keeps_the_version(api: Api) -> None:
    row = api.create("shows", show())
    same = api.patch(f"/v1/shows/{row['id']}", {"city": "Madrid"})
    assert same.status_code == 200 and same.json() == row


# -- DELETE --------------------------------------------------------------------------------------


def test_delete_with_and_without_if_match(api: Api) -> None:
    first, second = api.create("shows", show()), api.create("shows", show())
    api.patch(f"/v1/shows/{first['id']}", {"notes": "moved"})
    stale = api.delete(f"/v1/shows/{first['id']}", **{"If-Match": '"1"'})
    problem = assert_problem(stale, 409, "version_conflict")
    assert problem["fields"] == ["notes"] and problem["version"] == 2
    assert api.delete(f"/v1/shows/{first['id']}", **{"If-Match": '"2"'}).status_code == 204
    assert api.delete(f"/v1/shows/{second['id']}").status_code == 204
    for row in (first, second):
        path = f"/v1/shows/{row['id']}"
        assert_problem(api.get(path), 404, "not_found")
        assert_problem(api.delete(path), 404, "not_found")
        assert_problem(api.patch(path, {"city": "Oslo"}), 404, "not_found")
    assert api.list_all("shows") == []
    tombstones = [c for c in api.get("/v1/sync/pull").json()["changes"] if c["op"] == "delete"]
    assert len(tombstones) == 2


def test_deleting_a_show_cascades_to_its_costs(api: Api) -> None:
    parent = api.create("shows", show())
    cost = api.create("costs", {"show_id": parent["id"], "type": "hotel", "amount": "150"})
    assert api.get(f"/v1/shows/{parent['id']}").json()["costs_total"] == "150.00"
    assert api.delete(f"/v1/shows/{parent['id']}").status_code == 204
    assert_problem(api.get(f"/v1/costs/{cost['id']}"), 404)


# -- inventory and workout actions ---------------------------------------------------------------


def test_adjust_and_sales_move_the_stock_and_refuse_to_go_below_zero(api: Api) -> None:
    row = api.create("inventory", product(quantity=3, reorder_point=2))
    path = f"/v1/inventory/{row['id']}"
    sale = {"quantity": 2, "unit_price": "4.50", "sold_at": "2026-11-20T18:04:00Z"}
    sold = api.post(f"{path}/sales", sale)
    assert sold.status_code == 200, sold.text
    assert sold.json()["quantity"] == 1 and sold.json()["low_stock"] is True
    assert sold.headers["etag"] == '"2"'
    problem = assert_problem(api.post(f"{path}/sales", sale), 409, "insufficient_stock")
    assert problem["current"]["quantity"] == 1 and problem["version"] == 2
    assert_problem(api.post(f"{path}/adjust", {"delta": -2, "reason": "broken"}), 409)
    adjusted = api.post(f"{path}/adjust", {"delta": 9, "reason": "delivery"})
    assert adjusted.status_code == 200 and adjusted.json()["quantity"] == 10
    assert_problem(api.post(f"{path}/adjust", {"delta": 0, "reason": "x"}), 422)
    assert_problem(api.post(f"{path}/sales", {"quantity": 1}), 422)
    assert api.delete(path).status_code == 204
    assert_problem(api.post(f"{path}/adjust", {"delta": 1, "reason": "late"}), 404)


def test_log_set_appends_to_a_workout(api: Api) -> None:
    row = api.create("workouts", workout())
    logged = api.post(
        f"/v1/workouts/{row['id']}/sets",
        {"exercise": "Squat", "reps": 3, "weight": "120", "unit": "kg"},
    )
    assert logged.status_code == 200, logged.text
    assert logged.json()["total_sets"] == 2 and logged.json()["volume_kg"] == "860.00"


# -- the log records REST writes like pushes -----------------------------------------------------


def test_rest_writes_are_events_with_source_api_and_the_request_id(api: Api, server: Any) -> None:
    response = api.post("/v1/shows", show(), **{"X-Request-ID": "rest-create-1"})
    assert response.headers["x-request-id"] == "rest-create-1"
    api.patch(f"/v1/shows/{response.json()['id']}", {"city": "Oslo"}, **{"X-Request-ID": "rest-2"})
    recorded = events_of(server, api.user_id)
    assert [type_ for type_, _ in recorded] == ["show.created", "show.updated"]
    metadata = [m if isinstance(m, dict) else msgspec.json.decode(m) for _, m in recorded]
    assert [m["source"] for m in metadata] == ["api", "api"]
    assert [m["request_id"] for m in metadata] == ["rest-create-1", "rest-2"]
    assert all(m["actor"] == api.user_id and m["op_id"] for m in metadata)


# -- Idempotency-Key -----------------------------------------------------------------------------


def keyed(key: str | None = None) -> dict[str, str]:
    return {"Idempotency-Key": key or f"key-{uuid.uuid4()}"}


def event_types(server: Any, owner: str) -> list[str]:
    return [type_ for type_, _ in events_of(server, owner)]


def test_a_retried_create_without_an_id_creates_one_entity_and_answers_the_same(
    api: Api, server: Any
) -> None:
    key = keyed()
    first = api.post("/v1/shows", show(), **key)
    retried = api.post("/v1/shows", show(), **key)
    assert first.status_code == retried.status_code == 201, retried.text
    assert retried.json() == first.json()
    assert retried.headers["location"] == first.headers["location"]
    assert retried.headers["etag"] == first.headers["etag"] == '"1"'
    other = api.post("/v1/shows", show(), **keyed())
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert len(api.list_all("shows")) == 2
    assert event_types(server, api.user_id) == ["show.created", "show.created"]


def test_a_retried_sale_is_recorded_once_and_another_key_records_another(api: Api) -> None:
    row = api.create("inventory", product(quantity=10))
    sales = f"/v1/inventory/{row['id']}/sales"
    key = keyed()
    first = api.post(sales, sale(3), **key)
    # The order of members is not the request: only what it says.
    retried = api.post(sales, dict(reversed(sale(3).items())), **key)
    assert first.status_code == retried.status_code == 200, retried.text
    assert first.json()["quantity"] == retried.json()["quantity"] == 7
    assert retried.headers["etag"] == '"2"'
    again = api.post(sales, sale(3), **keyed())
    assert again.json()["quantity"] == 4


def test_a_retried_delete_answers_204_again(api: Api, server: Any) -> None:
    row = api.create("shows", show())
    path = f"/v1/shows/{row['id']}"
    key = keyed()
    assert api.delete(path, **key).status_code == 204
    assert api.delete(path, **key).status_code == 204
    assert_problem(api.delete(path, **keyed()), 404, "not_found")
    assert_problem(api.delete(path), 404, "not_found")
    assert event_types(server, api.user_id) == ["show.created", "show.deleted"]


def test_a_retried_patch_answers_success_and_the_entity_as_it_is_now(api: Api) -> None:
    row = api.create("shows", show())
    path = f"/v1/shows/{row['id']}"
    key = {**keyed(), "If-Match": '"1"'}
    assert api.patch(path, {"city": "Oslo"}, **key).json()["version"] == 2
    api.patch(path, {"fee": "5"})
    # Without the key this would be a conflict (version 1 is stale); with it, the first answer.
    retried = api.patch(path, {"city": "Oslo"}, **key)
    assert retried.status_code == 200, retried.text
    assert retried.json()["version"] == 3 and retried.json()["city"] == "Oslo"


def test_a_retried_refusal_is_the_same_refusal(api: Api) -> None:
    row = api.create("inventory", product(quantity=1))
    path = f"/v1/inventory/{row['id']}"
    key = keyed()
    two = sale(2)
    assert_problem(api.post(f"{path}/sales", two, **key), 409, "insufficient_stock")
    assert api.post(f"{path}/adjust", {"delta": 5, "reason": "delivery"}).status_code == 200
    # The stock would allow it now, but this request was refused: its retry is too.
    retried = assert_problem(api.post(f"{path}/sales", two, **key), 409, "insufficient_stock")
    assert retried["current"]["quantity"] == 6
    assert api.post(f"{path}/sales", two, **keyed()).json()["quantity"] == 4
    invalid = keyed()
    assert_problem(api.post("/v1/shows", show(fee="-1"), **invalid), 422, "validation_failed")
    assert_problem(api.post("/v1/shows", show(fee="-1"), **invalid), 422, "validation_failed")


def test_a_key_reused_for_another_request_is_422_and_writes_nothing(api: Api, server: Any) -> None:
    row = api.create("inventory", product(quantity=10))
    path = f"/v1/inventory/{row['id']}"
    key = keyed()
    assert api.post(f"{path}/sales", sale(1), **key).status_code == 200
    for other in (
        api.post(f"{path}/sales", sale(2), **key),
        api.post(f"{path}/adjust", {"delta": 1, "reason": "found"}, **key),
        api.patch(path, {"name": "Mug"}, **key),
        api.delete(path, **key),
        api.post("/v1/shows", show(), **key),
    ):
        problem = assert_problem(other, 422, "idempotency_key_reused")
        assert problem["errors"][0]["path"] == "Idempotency-Key"
    assert api.get(path).json()["quantity"] == 9
    assert event_types(server, api.user_id) == ["product.created", "product.sale_recorded"]
    refused_first = keyed()
    assert_problem(api.post("/v1/shows", show(fee="-1"), **refused_first), 422)
    assert_problem(api.post("/v1/shows", show(), **refused_first), 422, "idempotency_key_reused")


def test_a_request_refused_before_it_is_pushed_claims_no_key(api: Api) -> None:
    key = keyed()
    malformed = api.client.post(
        "/v1/shows",
        content=b"{",
        headers={**api.headers, **key, "Content-Type": "application/json"},
    )
    assert_problem(malformed, 400, "malformed_json")
    assert_problem(api.post("/v1/shows", show(id="not-a-uuid"), **key), 422, "validation_failed")
    assert api.post("/v1/shows", show(), **key).status_code == 201


def test_keys_are_per_user(client: httpx.Client) -> None:
    alice, bob = Api(client), Api(client)
    key = keyed()
    mine = alice.post("/v1/shows", show(), **key)
    # Not a retry of Alice's request, nor a reuse of her key: Bob's keys are his own.
    theirs = bob.post("/v1/shows", show(city="Oslo"), **key)
    assert mine.status_code == theirs.status_code == 201, theirs.text
    assert mine.json()["id"] != theirs.json()["id"] and theirs.json()["city"] == "Oslo"
    assert [r["id"] for r in alice.list_all("shows")] == [mine.json()["id"]]
    assert [r["id"] for r in bob.list_all("shows")] == [theirs.json()["id"]]


def test_concurrent_requests_with_one_key_apply_once(client: httpx.Client, server: Any) -> None:
    api = Api(client)
    row = api.create("inventory", product(quantity=10))
    key = keyed()
    answers: list[httpx.Response] = []

    def send() -> None:
        with server.client() as own:
            answers.append(
                own.post(
                    f"/v1/inventory/{row['id']}/sales",
                    json=sale(1),
                    headers={**api.headers, **key},
                )
            )

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 4
    assert {a.json()["quantity"] for a in answers} == {9}
    assert api.get(f"/v1/inventory/{row['id']}").json()["quantity"] == 9


@pytest.mark.parametrize("key", [b"", b"two words", b"x" * 256, b"caf\xe9", b"tab\tbed"])
def test_malformed_idempotency_keys_are_400_and_write_nothing(api: Api, key: bytes) -> None:
    response = api.client.post(
        "/v1/shows", json=show(), headers=[*api.headers.items(), (b"Idempotency-Key", key)]
    )
    problem = assert_problem(response, 400, "invalid_header")
    assert problem["errors"][0]["path"] == "Idempotency-Key"
    assert api.list_all("shows") == []


def test_one_request_sends_one_key(api: Api) -> None:
    headers = [*api.headers.items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    response = api.client.post("/v1/shows", json=show(), headers=headers)
    assert_problem(response, 400, "invalid_header")
    assert api.post("/v1/shows", show(), **keyed("x" * 255)).status_code == 201


# -- lists: filters, sorts, pages ----------------------------------------------------------------


def test_filters_of_every_collection(api: Api) -> None:
    shows = [
        api.create("shows", show(date=f"2026-12-{day:02d}", status=status))
        for day, status in [(1, "draft"), (5, "confirmed"), (10, "confirmed"), (20, "canceled")]
    ]
    confirmed = api.list_all("shows", status="confirmed")
    assert [row["id"] for row in confirmed] == [shows[1]["id"], shows[2]["id"]]
    window = api.list_all("shows", **{"from": "2026-12-05", "to": "2026-12-10"})
    assert [row["id"] for row in window] == [shows[1]["id"], shows[2]["id"]]
    assert api.list_all("shows", status="confirmed", to="2026-12-07") == [shows[1]]

    cost = api.create("costs", {"show_id": shows[0]["id"], "type": "sound", "amount": "10"})
    api.create("costs", {"show_id": shows[1]["id"], "type": "light", "amount": "20"})
    assert api.list_all("costs", show_id=shows[0]["id"]) == [cost]
    assert len(api.list_all("costs")) == 2

    old = api.create("workouts", workout(date="2026-10-01"))
    new = api.create("workouts", workout(date="2026-11-01"))
    assert api.list_all("workouts") == [new, old]  # newest first by default
    assert api.list_all("workouts", **{"from": "2026-10-15"}) == [new]

    low = api.create("inventory", product(quantity=1, reorder_point=5))
    fine = api.create("inventory", product(quantity=50, reorder_point=5))
    assert api.list_all("inventory", low_stock="true") == [low]
    assert api.list_all("inventory", low_stock="false") == [fine]


def test_sorts_on_the_whitelist(api: Api) -> None:
    rows = [api.create("shows", show(date=f"2026-12-{day:02d}")) for day in (3, 1, 2)]
    by_date = [row["date"] for row in api.list_all("shows", sort="date")]
    assert by_date == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert [row["date"] for row in api.list_all("shows", sort="-date")] == by_date[::-1]
    assert api.list_all("shows", sort="created_at") == rows
    assert api.list_all("shows", sort="-created_at") == rows[::-1]
    skus = [api.create("inventory", product(sku=sku))["sku"] for sku in ("b", "a", "C")]
    assert [row["sku"] for row in api.list_all("inventory")] == sorted(skus)


@pytest.mark.parametrize(
    "query",
    [
        {"sort": "fee"},
        {"sort": "sku"},
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "ten"},
        {"status": "maybe"},
        {"from": "2026-13-01"},
        {"to": "yesterday"},
        {"stauts": "draft"},
        {"cursor": "l1.garbage.x"},
        {"cursor": "c1.1.1.f.abc"},
    ],
)
def test_bad_list_parameters_are_400_naming_the_parameter(api: Api, query: dict[str, str]) -> None:
    problem = assert_problem(api.get("/v1/shows", params=query), 400, "invalid_parameter")
    assert problem["errors"][0]["path"] == next(iter(query))


def test_a_cursor_is_bound_to_its_user_and_its_query(client: httpx.Client) -> None:
    alice, bob = Api(client), Api(client)
    for day in range(1, 4):
        alice.create("shows", show(date=f"2026-12-0{day}"))
    cursor = alice.get("/v1/shows", params={"limit": 1}).json()["next_cursor"]
    assert alice.get("/v1/shows", params={"limit": 1, "cursor": cursor}).status_code == 200
    assert_problem(bob.get("/v1/shows", params={"cursor": cursor}), 400)
    assert_problem(alice.get("/v1/shows", params={"cursor": cursor, "sort": "-date"}), 400)
    assert_problem(alice.get("/v1/shows", params={"cursor": cursor, "status": "draft"}), 400)
    assert_problem(alice.get("/v1/costs", params={"cursor": cursor}), 400)
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    assert_problem(alice.get("/v1/shows", params={"cursor": tampered}), 400)


def test_pages_hold_at_most_limit_items_and_walk_everything_once(api: Api) -> None:
    created = [api.create("shows", show(date=f"2026-12-{1 + i % 5:02d}")) for i in range(23)]
    first = api.get("/v1/shows", params={"limit": 5}).json()
    assert len(first["items"]) == 5 and first["has_more"]
    walked = api.list_all("shows", limit=5)
    assert sorted(row["id"] for row in walked) == sorted(row["id"] for row in created)
    assert [(r["date"], r["id"]) for r in walked] == sorted((r["date"], r["id"]) for r in walked)
    assert len(api.get("/v1/shows", params={"limit": 200}).json()["items"]) == 23


@pytest.mark.parametrize("sort", ["date", "-created_at"])
def test_pagination_neither_repeats_nor_skips_under_concurrent_writes(
    client: httpx.Client, server: Any, sort: str
) -> None:
    api = Api(client)
    initial = [api.create("shows", show(date=f"2026-12-{1 + i % 28:02d}")) for i in range(60)]
    before = {row["id"] for row in api.list_all("shows", limit=200)}
    stop = threading.Event()
    deleted: set[str] = set()
    errors: list[str] = []
    writes = threading.Semaphore(0)
    # Writers start once the first page is out: a show created before it is rightly listed.
    first_page = threading.Event()

    pages = 0

    def some_writes_happened() -> None:
        # Between pages, wait for a few writes, so that they interleave with the walk. Not
        # before the first: a show created before it pins the listing is rightly in it, and
        # would fail the check below (it did, on a loaded machine).
        nonlocal pages
        pages += 1
        if pages == 1:
            return
        first_page.set()
        for _ in range(3):
            writes.acquire(timeout=5)

    def churn(seed: int) -> None:
        # Moves shows across any cursor (date changes), edits them, creates and deletes some.
        with server.client() as own:
            first_page.wait(30)
            n = 0
            while not stop.is_set() and n < 400:
                n += 1
                target = initial[(seed * 7 + n * 13) % len(initial)]["id"]
                if target in deleted:
                    continue
                if n % 17 == 0 and seed == 0:
                    response = own.delete(f"/v1/shows/{target}", headers=api.headers)
                    if response.status_code == 204:
                        deleted.add(target)
                    writes.release()
                    continue
                if n % 5 == 0:
                    body = show(date=f"2026-12-{1 + n % 28:02d}")
                    response = own.post("/v1/shows", json=body, headers=api.headers)
                else:
                    day = 1 + (n * 11 + seed) % 28
                    body = {"date": f"2026-12-{day:02d}", "notes": f"edit {n}"}
                    response = own.patch(f"/v1/shows/{target}", json=body, headers=api.headers)
                if response.status_code not in (200, 201, 404):
                    errors.append(response.text)
                writes.release()

    writers = [threading.Thread(target=churn, args=(seed,)) for seed in range(2)]
    for writer in writers:
        writer.start()
    try:
        walked = api.list_all("shows", some_writes_happened, sort=sort, limit=4)
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert errors == []
    ids = [row["id"] for row in walked]
    assert len(ids) == len(set(ids)), "a show was listed twice"
    assert set(ids) <= before, "a show created during the walk was listed"
    assert before - deleted <= set(ids), "a live show was skipped"
    assert len(api.list_all("shows", limit=200)) > len(before) - len(deleted)  # writes happened


# -- stats ---------------------------------------------------------------------------------------


def test_stats_sum_shows_per_month_status_and_currency(api: Api) -> None:
    api.create("shows", show(date="2026-12-01", fee="1000", status="confirmed", wht_pct="10"))
    api.create("shows", show(date="2026-12-15", fee="500.50", status="confirmed"))
    api.create("shows", show(date="2026-12-20", fee="700", status="confirmed", currency="USD"))
    api.create("shows", show(date="2027-01-03", fee="300", status="draft"))
    gone = api.create("shows", show(date="2027-01-04", fee="999", status="draft"))
    api.delete(f"/v1/shows/{gone['id']}")
    workouts = [("2026-11-16", "100"), ("2026-11-22", "50"), ("2026-11-23", "10")]
    for day, weight in workouts:
        sets = [{"reps": 2, "weight": weight, "unit": "kg"}]
        api.create("workouts", workout(date=day, exercises=[{"name": "Row", "sets": sets}]))
    empty = api.create("inventory", product(sku="A", quantity=0, reorder_point=1))
    api.create("inventory", product(sku="B", quantity=100, reorder_point=1))
    selling = api.create("inventory", product(sku="C", quantity=40, reorder_point=50))
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    sale = {"quantity": 30, "unit_price": "1", "sold_at": an_hour_ago}
    assert api.post(f"/v1/inventory/{selling['id']}/sales", sale).status_code == 200

    response = api.get("/v1/stats")
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["shows"] == [
        {"month": "2026-12", "status": "confirmed", "currency": "EUR", "shows": 2,
         "fee_total": "1500.50", "net_total": "1400.50"},
        {"month": "2026-12", "status": "confirmed", "currency": "USD", "shows": 1,
         "fee_total": "700.00", "net_total": "700.00"},
        {"month": "2027-01", "status": "draft", "currency": "EUR", "shows": 1,
         "fee_total": "300.00", "net_total": "300.00"},
    ]  # fmt: skip
    assert stats["workouts"] == [
        {"week": "2026-W47", "starts_on": "2026-11-16", "workouts": 2, "sets": 2, "reps": 4,
         "volume_kg": "300.00"},
        {"week": "2026-W48", "starts_on": "2026-11-23", "workouts": 1, "sets": 1, "reps": 2,
         "volume_kg": "20.00"},
    ]  # fmt: skip
    low = stats["low_stock"]
    assert [p["sku"] for p in low] == ["C", "A"]  # runs out soonest first; never sold last
    assert low[0]["days_left"] == 10 and low[0]["quantity"] == 10
    assert low[1]["id"] == empty["id"] and low[1]["days_left"] is None

    december = api.get("/v1/stats", params={"from": "2026-12-01", "to": "2026-12-31"}).json()
    assert {s["month"] for s in december["shows"]} == {"2026-12"} and december["workouts"] == []
    assert_problem(api.get("/v1/stats", params={"from": "soon"}), 400, "invalid_parameter")


# -- found by schemathesis -----------------------------------------------------------------------


def test_nul_characters_are_refused_not_a_500(api: Api) -> None:
    # PostgreSQL cannot store NUL in text: it must be refused before any query sees it.
    problem = assert_problem(api.post("/v1/inventory", product(sku="a\x00b")), 422)
    assert problem["errors"][0] == {
        "path": "sku",
        "message": "must not be blank or contain NUL characters",
    }
    assert_problem(api.post("/v1/shows", show(notes="x\x00y")), 422)
    op = {"op_id": str(uuid.uuid4()), "entity": "product", "id": str(uuid.uuid4()),
          "action": "create", "data": product(sku="\x00")}  # fmt: skip
    pushed = api.post("/v1/sync/push", {"client_id": str(uuid.uuid4()), "ops": [op]})
    assert pushed.status_code == 200
    assert pushed.json()["results"][0]["error"]["code"] == "validation_failed"
