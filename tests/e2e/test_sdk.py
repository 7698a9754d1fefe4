"""The client SDK against a real server process, on both backends: offline writes, sync,
conflict policies, rejections, lost answers, crashes, resets and sessions.

Each test registers its own user on the module's shared server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from sdk_harness import (
    PASSWORD,
    Crash,
    Devices,
    FaultyTransport,
    local_rows,
    new_email,
    open_client,
    server_rows,
    sign_out_elsewhere,
)

from client_sdk import (
    Changed,
    Client,
    ConflictInfo,
    NetworkError,
    NotFound,
    Rejection,
    SessionRevoked,
    ValidationError,
    WrongUser,
)

SHOW = {"date": "2026-12-01", "city": "Madrid", "country": "ES", "fee": "12000"}


@pytest.fixture
def devices(server: Any, tmp_path: Path) -> Iterator[Devices]:
    """Clients of this test's user, each on its own file (see ``sdk_harness.Devices``)."""
    opened = Devices(server.url, tmp_path)
    yield opened
    opened.close()


def assert_same_as_server(server: Any, *clients: Client) -> None:
    store = server.database.open()
    try:
        expected = server_rows(store, clients[0].user_id)
    finally:
        store.close()
    for client in clients:
        assert client.pending() == []
        assert local_rows(client) == expected


# -- the basics ----------------------------------------------------------------------------------


def test_offline_writes_show_at_once_and_reach_the_other_device(
    devices: Devices, server: Any
) -> None:
    laptop, phone = devices("laptop"), devices("phone")
    show = laptop.shows.create(SHOW, notes="first gig")
    cost = laptop.costs.create(show_id=show.id, type="hotel", amount=Decimal("150.5"))
    assert show.pending and show.version is None
    assert laptop.shows.get(show.id)["fee"] == "12000.00"  # canonical, as the server writes it
    assert laptop.shows.get(show.id).get("net") is None  # derived: the server's, not yet known
    assert [c.id for c in laptop.costs.list(show_id=show.id)] == [cost.id]
    assert phone.shows.get(show.id) is None

    report = laptop.sync()
    assert (report.applied, report.rejections, report.pending) == (2, [], 0)
    synced = laptop.shows.get(show.id)
    assert not synced.pending and synced.version == 1
    assert synced["costs_total"] == "150.50" and synced["net"] == "11849.50"

    phone.sync()
    assert phone.shows.get(show.id) == synced
    assert_same_as_server(server, laptop, phone)


def test_local_writes_are_checked_by_the_servers_rules(devices: Devices) -> None:
    client = devices("only")
    with pytest.raises(ValidationError) as invalid:
        client.shows.create(date="2026-12-01", city=" ", country="es", fee=12.5)
    paths = {error.path for error in invalid.value.errors}
    assert paths == {"data.city", "data.country", "data.fee"}
    with pytest.raises(NotFound):
        client.shows.update(uuid4(), fee="1")
    show = client.shows.create(SHOW)
    with pytest.raises(ValidationError):
        client.shows.update(show.id, status="sold out")
    assert len(client.pending()) == 1


def test_consecutive_updates_become_one_op_and_a_no_op_queues_nothing(devices: Devices) -> None:
    client = devices("only")
    show = client.shows.create(SHOW)
    client.sync()
    client.shows.update(show.id, fee="100")
    client.shows.update(show.id, city="Oslo")
    client.shows.update(show.id, city="Oslo")  # nothing changes
    (pending,) = client.pending()
    assert (pending.action, dict(pending.data)) == ("update", {"fee": "100.00", "city": "Oslo"})
    client.sync()
    assert client.shows.get(show.id).version == 2  # one event


def test_deleting_a_show_takes_its_costs_out_of_the_view_at_once(
    devices: Devices, server: Any
) -> None:
    client = devices("only")
    show = client.shows.create(SHOW)
    client.costs.create(show_id=show.id, type="light", amount="10")
    client.sync()
    client.shows.delete(show.id)
    assert client.shows.get(show.id) is None
    assert client.costs.list() == []
    client.sync()
    assert client.costs.list() == []
    assert_same_as_server(server, client)


def test_change_listeners_hear_local_writes_and_sync_steps(devices: Devices) -> None:
    client = devices("only")
    heard: list[Changed] = []
    client.on_change(heard.append)
    show = client.shows.create(SHOW)
    client.sync()
    assert [c.origin for c in heard] == ["local", "sync", "sync"]
    assert all(c.keys == {("show", show.id)} for c in heard)


# -- conflicts -----------------------------------------------------------------------------------


def _conflicting_edits(devices: Devices, **options: Any) -> tuple[Client, Client, UUID]:
    """Both devices start from the same show; the laptop changes the fee and syncs first, the
    phone (offline) changes the fee and the city."""
    laptop, phone = devices("laptop"), devices("phone", **options)
    show = laptop.shows.create(SHOW)
    laptop.sync()
    phone.sync()
    laptop.shows.update(show.id, fee="13000")
    phone.shows.update(show.id, fee="9000", city="Sevilla")
    laptop.sync()
    return laptop, phone, show.id


@pytest.mark.parametrize(
    ("policy", "fee", "city", "lost"),
    [
        ("server_wins", "13000.00", "Madrid", ("fee", "city")),
        ("client_wins", "9000.00", "Sevilla", None),
        ("merge", "13000.00", "Sevilla", ("fee",)),
    ],
)
def test_conflict_policies(
    devices: Devices,
    server: Any,
    policy: str,
    fee: str,
    city: str,
    lost: tuple[str, ...] | None,
) -> None:
    laptop, phone, show_id = _conflicting_edits(devices, conflicts={"show": policy})
    report = phone.sync()
    laptop.sync()
    for client in (laptop, phone):
        assert (client.shows.get(show_id)["fee"], client.shows.get(show_id)["city"]) == (fee, city)
    if lost is None:
        assert phone.rejections() == []
    else:
        (rejection,) = phone.rejections()
        assert report.rejections == [rejection]
        assert (rejection.kind, rejection.code, rejection.lost_fields) == (
            "conflict",
            "version_mismatch",
            lost,
        )
        assert rejection.server_data is not None and rejection.server_data["fee"] == "13000.00"
    assert_same_as_server(server, laptop, phone)


def test_a_conflict_callback_sees_both_sides_and_writes_its_answer(
    devices: Devices, server: Any
) -> None:
    seen: list[ConflictInfo] = []

    def halfway(conflict: ConflictInfo) -> dict[str, Any]:
        seen.append(conflict)
        mine, theirs = Decimal(conflict.mine["fee"]), Decimal(conflict.theirs["fee"])
        return {"fee": str((mine + theirs) / 2), "city": conflict.mine["city"]}

    laptop, phone, show_id = _conflicting_edits(devices, conflicts={"show": halfway})
    phone.sync()
    (conflict,) = seen
    assert conflict.fields == ("fee",)
    assert conflict.seen == {"fee": "12000.00", "city": "Madrid"}
    assert conflict.theirs["fee"] == "13000.00" and conflict.server_version == 2
    assert phone.shows.get(show_id)["fee"] == "11000.00"
    assert phone.rejections() == []
    laptop.sync()
    assert_same_as_server(server, laptop, phone)


def test_a_device_never_conflicts_with_its_own_earlier_edit(devices: Devices, server: Any) -> None:
    """The first edit is applied but its pull fails; the second edit of the same field is made
    on the old base: the server reports a conflict with the device's own write, which the
    three-way check sees through whatever the policy."""
    transport = FaultyTransport()
    client = devices("only", transport=transport, conflicts={"show": "server_wins"})
    show = client.shows.create(SHOW)
    client.sync()
    client.shows.update(show.id, fee="100")
    transport.plan.extend(["ok", "down", "down", "down"])  # push goes, every pull try fails
    with pytest.raises(NetworkError, match="network down"):
        client.sync()
    assert client.shows.get(show.id)["fee"] == "100.00"  # applied, still shown
    client.shows.update(show.id, fee="200")
    report = client.sync()
    assert report.rejections == [] and report.resent == 1
    assert client.shows.get(show.id)["fee"] == "200.00"
    assert_same_as_server(server, client)


def test_an_edit_of_an_entity_deleted_elsewhere_is_reported(devices: Devices, server: Any) -> None:
    laptop, phone = devices("laptop"), devices("phone", conflicts={"show": "client_wins"})
    show = laptop.shows.create(SHOW)
    laptop.sync()
    phone.sync()
    laptop.shows.delete(show.id)
    laptop.sync()
    phone.shows.update(show.id, notes="still on?")
    phone.sync()
    (rejection,) = phone.rejections()
    assert (rejection.code, rejection.lost_fields) == ("entity_deleted", ("notes",))
    assert phone.shows.get(show.id) is None
    phone.dismiss()
    assert phone.rejections() == []
    assert_same_as_server(server, laptop, phone)


def test_two_devices_creating_the_same_id(devices: Devices, server: Any) -> None:
    laptop, phone = devices("laptop"), devices("phone", conflicts={"show": "client_wins"})
    shared = uuid4()
    laptop.shows.create(SHOW, id=shared)
    phone.shows.create(SHOW, id=shared, city="Bilbao")
    laptop.sync()
    phone.sync()  # client_wins: the create becomes an update of the fields that differ
    laptop.sync()
    assert laptop.shows.get(shared)["city"] == "Bilbao"
    assert phone.rejections() == []
    assert_same_as_server(server, laptop, phone)


# -- rejections ----------------------------------------------------------------------------------


def test_refused_ops_are_reported_and_leave_the_view(devices: Devices, server: Any) -> None:
    heard: list[Rejection] = []
    client = devices("only", on_rejection=heard.append)
    product = client.inventory.create(sku="TS-1", name="T-shirt", quantity=3)
    client.sync()
    client.inventory.record_sale(
        product.id, quantity=5, unit_price="20", sold_at="2026-11-20T18:04:00Z"
    )
    ghost = client.costs.create(show_id=uuid4(), type="hotel", amount="1")
    assert client.inventory.get(product.id)["quantity"] == -2  # optimistic
    report = client.sync()
    codes = {(r.entity, r.code) for r in report.rejections}
    assert codes == {("product", "insufficient_stock"), ("cost", "invalid_reference")}
    assert heard == report.rejections == client.rejections()
    assert client.inventory.get(product.id)["quantity"] == 3
    assert client.costs.get(ghost.id) is None
    assert_same_as_server(server, client)


# -- lost answers, crashes -----------------------------------------------------------------------


def test_a_lost_push_answer_is_resent_and_applied_once(devices: Devices, server: Any) -> None:
    transport = FaultyTransport()
    client = devices("only", transport=transport)
    product = client.inventory.create(sku="P", name="Pens", quantity=10)
    client.sync()
    client.inventory.adjust_stock(product.id, delta=5, reason="delivery")
    transport.plan.extend(["lose"])  # the server applies it, the answer never arrives
    report = client.sync()
    assert report.applied == 1
    assert client.inventory.get(product.id)["quantity"] == 15
    assert_same_as_server(server, client)


@pytest.mark.parametrize("fault", ["crash_before", "crash_after"])
def test_a_client_killed_mid_push_resumes_without_loss_or_double(
    devices: Devices, server: Any, tmp_path: Path, fault: str
) -> None:
    transport = FaultyTransport()
    client = devices("only", transport=transport)
    product = client.inventory.create(sku="P", name="Pens", quantity=10)
    client.sync()
    client.inventory.adjust_stock(product.id, delta=5, reason="delivery")
    client.inventory.record_sale(
        product.id, quantity=2, unit_price="1", sold_at="2026-11-20T10:00:00Z"
    )
    transport.plan.extend([fault])
    with pytest.raises(Crash):
        client.sync()
    client.close()  # the process is gone; what it committed is all that is left

    reopened = open_client(tmp_path / "only.db", server.url)
    try:
        assert reopened.inventory.get(product.id)["quantity"] == 13
        reopened.sync()
        assert reopened.inventory.get(product.id)["quantity"] == 13
        assert_same_as_server(server, reopened)
    finally:
        reopened.close()


def test_a_client_killed_between_pull_pages_resumes_from_its_cursor(
    devices: Devices, server: Any, tmp_path: Path
) -> None:
    writer = devices("writer")
    for n in range(7):
        writer.shows.create(SHOW, notes=f"show {n}")
    writer.sync()
    transport = FaultyTransport(["ok", "ok", "crash_after"])
    reader = devices("reader", transport=transport, page_size=2)
    with pytest.raises(Crash):
        reader.sync()
    assert len(reader.shows.list()) == 2  # the first page, with its cursor
    reader.close()
    reopened = open_client(tmp_path / "reader.db", server.url, page_size=2)
    try:
        assert reopened.sync().pulled == 5
        assert_same_as_server(server, writer, reopened)
    finally:
        reopened.close()


# -- resets --------------------------------------------------------------------------------------


def test_a_reset_drops_the_local_copy_and_pulls_everything_again(
    devices: Devices, server: Any
) -> None:
    client = devices("only")
    kept = client.shows.create(SHOW)
    client.sync()
    pending = client.shows.create(SHOW, city="Lyon", country="FR")
    store = server.database.open()
    try:
        with store.sql() as sql:  # what a rebuild under a new projection definition does
            sql.execute("UPDATE projection_state SET epoch = epoch + 1")
        report = client.sync()
        assert report.resets == 1 and report.pulled == 2
        assert {s.id for s in client.shows.list()} == {kept.id, pending.id}
    finally:
        store.close()
    assert_same_as_server(server, client)


def test_a_cursor_the_server_no_longer_accepts_starts_over(devices: Devices, server: Any) -> None:
    client = devices("only")
    client.shows.create(SHOW)
    client.sync()
    with client.store.transaction():
        client.store.set_meta("cursor", "c1.9.9.f.forgedforgedforged")
    assert client.sync().resets == 1
    assert_same_as_server(server, client)


# -- sessions ------------------------------------------------------------------------------------


def test_an_expired_access_token_is_refreshed_and_the_refresh_token_rotated(
    devices: Devices, server: Any
) -> None:
    client = devices("only")
    with client.store.transaction():
        client.store.set_meta("access_token", "expired.or.garbage")
        old_refresh = client.store.get_meta("refresh_token")
    client.shows.create(SHOW)
    assert client.sync().applied == 1
    with client.store.transaction():
        assert client.store.get_meta("refresh_token") not in (None, old_refresh)
    with server.client() as http:  # the old refresh token is spent
        assert http.post("/v1/auth/refresh", json={"refresh_token": old_refresh}).status_code == 401


def test_a_revoked_session_raises_and_keeps_the_queue_for_the_next_login(
    devices: Devices, server: Any
) -> None:
    client = devices("only")
    sign_out_elsewhere(client, server.url)
    show = client.shows.create(SHOW)
    with pytest.raises(SessionRevoked):
        client.sync()
    assert not client.signed_in
    assert [op.id for op in client.pending()] == [show.id]
    with client.store.transaction():
        email = client.store.get_meta("email")
    assert email is not None
    client.login(email, PASSWORD)
    assert client.sync().applied == 1
    assert_same_as_server(server, client)


def test_a_store_belongs_to_one_account(devices: Devices, server: Any, tmp_path: Path) -> None:
    client = devices("only")
    other = new_email()
    with server.client() as http:
        assert http.post(
            "/v1/auth/register", json={"email": other, "password": PASSWORD}
        ).is_success
    with pytest.raises(WrongUser):
        client.login(other, PASSWORD)
    assert client.signed_in  # the first account's session is untouched


# -- the sync loop -------------------------------------------------------------------------------


def test_the_sync_loop_pushes_writes_soon_after_they_are_made(devices: Devices) -> None:
    client = devices("only")
    synced = threading.Event()
    loop = client.watch(
        interval=3600, on_sync=lambda report: synced.set() if report.applied else None
    )
    try:
        show = client.shows.create(SHOW)
        assert synced.wait(30), loop.last_error
        assert client.shows.get(show.id).version == 1
    finally:
        loop.stop(timeout=30)
    assert not loop.running


def test_network_errors_outlast_the_retries_and_lose_nothing(devices: Devices) -> None:
    transport = FaultyTransport()
    client = devices("only", transport=transport)
    client.shows.create(SHOW)
    transport.plan.extend(["down"] * 3)
    with pytest.raises(NetworkError, match="network down"):
        client.sync()
    assert len(client.pending()) == 1
    assert client.sync().applied == 1
