"""``client.live()`` against real server processes, on both backends: changes reach another
device without it calling ``sync``, through a reset, a server restart, a missing stream
endpoint and a proxy that buffers; a revoked session stops it; ``stop()`` ends an open stream.

No assertion here is about time: every wait is bounded only so that a broken run fails
instead of hanging. The periodic syncs are an hour apart unless a test is about polling, so
a change that arrives came through a poke.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sdk_harness import Devices, local_rows, server_rows, sign_out_elsewhere

from client_sdk import Client, LiveSettings, LiveStatus, LiveSync, RetryPolicy, SessionRevoked

WAIT = 60.0
SHOW = {"date": "2026-12-01", "city": "Madrid", "country": "ES", "fee": "12000"}
STREAM = "/v1/sync/stream"

HOURLY = LiveSettings(
    interval=3600,
    fallback_interval=3600,
    retry_stream_after=3600,
    reconnect=RetryPolicy(base_delay=0.05, max_delay=0.5),
)
POLLING = LiveSettings(
    interval=3600,
    fallback_interval=0.2,
    open_timeout=1.0,
    retry_stream_after=3600,
    reconnect=RetryPolicy(base_delay=0.05, max_delay=0.5),
)


def wait_until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


class Statuses:
    """Every status a live sync went through, in order."""

    def __init__(self) -> None:
        self.seen: list[LiveStatus] = []

    def __call__(self, status: LiveStatus) -> None:
        self.seen.append(status)

    def reasons(self) -> set[str | None]:
        return {status.reason for status in self.seen}


@pytest.fixture
def devices(server: Any, tmp_path: Path) -> Iterator[Devices]:
    opened = Devices(server.url, tmp_path)
    yield opened
    opened.close()


def create_and_push(device: Client, **fields: str) -> Any:
    show = device.shows.create({**SHOW, **fields})
    device.sync()
    return show.id


def arrives(device: Client, show_id: Any) -> None:
    wait_until(lambda: device.shows.get(show_id) is not None, f"show {show_id} on the device")


def assert_same_as_server(database: Any, *clients: Client) -> None:
    store = database.open()
    try:
        expected = server_rows(store, clients[0].user_id)
    finally:
        store.close()
    for client in clients:
        wait_until(lambda c=client: local_rows(c) == expected, "the device has the server's rows")
        assert client.pending() == []


# -- on the module's server ----------------------------------------------------------------------


def test_a_change_pushed_by_one_device_reaches_the_other_without_it_syncing(
    devices: Devices, server: Any
) -> None:
    laptop, phone = devices("laptop"), devices("phone")
    with phone.live(HOURLY) as live:
        wait_until(lambda: live.streaming, "a stream is open")
        for city in ("Oslo", "Lyon", "Porto"):
            arrives(phone, create_and_push(laptop, city=city))
        assert live.streaming
    assert not live.running
    assert_same_as_server(server.database, laptop, phone)


def test_its_own_writes_are_pushed_and_reach_the_other_live_device(
    devices: Devices, server: Any
) -> None:
    laptop, phone = devices("laptop"), devices("phone")
    with laptop.live(HOURLY), phone.live(HOURLY) as live:
        wait_until(lambda: live.streaming, "a stream is open")
        show = laptop.shows.create(SHOW)  # no sync: live syncs after each write
        arrives(phone, show.id)
        phone.shows.update(show.id, notes="seen on the phone")
        wait_until(lambda: laptop.shows.get(show.id).get("notes"), "the phone's edit on the laptop")
    assert_same_as_server(server.database, laptop, phone)


def test_after_a_reset_the_stream_is_reopened_and_changes_keep_arriving(
    devices: Devices, server: Any
) -> None:
    laptop, phone = devices("laptop"), devices("phone")
    statuses = Statuses()
    with phone.live(HOURLY, on_status=statuses) as live:
        wait_until(lambda: live.streaming, "a stream is open")
        store = server.database.open()
        try:
            with store.sql() as sql:  # what a rebuild under a new projection definition does
                sql.execute("UPDATE projection_state SET epoch = epoch + 1")
        finally:
            store.close()
        arrives(phone, create_and_push(laptop))  # its sync answers reset, and pulls it all
        wait_until(lambda: "reopen" in statuses.reasons(), "the stream is reopened")
        wait_until(lambda: live.streaming, "a stream is open again")
        arrives(phone, create_and_push(laptop, city="Oslo"))
    assert_same_as_server(server.database, laptop, phone)


def test_a_revoked_session_stops_it_and_the_app_hears_session_revoked(
    devices: Devices, server: Any
) -> None:
    laptop, phone = devices("laptop"), devices("phone")
    errors: list[BaseException] = []
    live = phone.live(HOURLY, on_error=errors.append)
    wait_until(lambda: live.streaming, "a stream is open")
    sign_out_elsewhere(phone, server.url)
    create_and_push(laptop)  # the poke makes the phone sync, which finds the session over
    wait_until(lambda: not live.running, "live stops")
    assert isinstance(live.error, SessionRevoked)
    assert [type(error) for error in errors] == [SessionRevoked]
    assert not phone.signed_in


def test_a_session_that_ended_before_it_starts_is_reported_once(
    devices: Devices, server: Any
) -> None:
    phone = devices("phone")
    sign_out_elsewhere(phone, server.url)
    errors: list[BaseException] = []
    # Its first sync and its stream both find out, whichever comes first.
    live = phone.live(HOURLY, on_error=errors.append)
    wait_until(lambda: not live.running, "live stops")
    assert [type(error) for error in errors] == [SessionRevoked]
    assert live.error is errors[0]


class WithoutStreams(httpx.BaseTransport):
    """A server (or a proxy in front of it) without the event stream: 404 for it."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.refused = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != STREAM:
            return self.inner.handle_request(request)
        self.refused += 1
        return httpx.Response(404, json={"status": 404, "code": "not_found"})

    def close(self) -> None:
        self.inner.close()


class BufferingProxy(httpx.BaseTransport):
    """A proxy that holds each response back until it is complete: an event stream's
    ``: open`` and pokes never come through while the stream lasts."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path != STREAM:
            return response
        held = _HeldBack(response.stream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=held,
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.inner.close()


class _HeldBack(httpx.SyncByteStream):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[bytes]:
        yield b"".join(self.inner)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize(
    ("transport", "reason"), [(WithoutStreams, "unsupported"), (BufferingProxy, "buffered")]
)
def test_where_streams_do_not_work_it_polls_and_still_converges(
    devices: Devices, server: Any, transport: type[httpx.BaseTransport], reason: str
) -> None:
    laptop, phone = devices("laptop"), devices("phone", transport=transport())
    with phone.live(POLLING) as live:
        wait_until(lambda: live.status.mode == "polling", "live falls back to polling")
        assert live.status.reason == reason
        for city in ("Oslo", "Lyon"):
            arrives(phone, create_and_push(laptop, city=city))
        phone.shows.create(SHOW, city="Porto")  # and its own writes go out
        wait_until(lambda: not phone.pending(), "the phone's write is pushed")
        assert not live.streaming
    laptop.sync()
    assert_same_as_server(server.database, laptop, phone)


# -- servers of their own ------------------------------------------------------------------------


def test_it_survives_a_server_restart_and_misses_no_change(
    server_factory: Any, tmp_path: Path
) -> None:
    first = server_factory()
    devices = Devices(first.url, tmp_path)
    statuses = Statuses()
    try:
        laptop, phone = devices("laptop"), devices("phone")
        with phone.live(HOURLY, on_status=statuses) as live:
            wait_until(lambda: live.streaming, "a stream is open")
            arrives(phone, create_and_push(laptop))
            first.stop()  # the server says bye to its streams and goes
            assert "shutdown" in statuses.reasons()
            offline = laptop.shows.create(SHOW, city="Oslo")  # while no server runs
            port = int(first.url.rsplit(":", 1)[1])
            server_factory(database=first.database, port=port)
            laptop.sync()  # perhaps before the phone is back, perhaps after
            arrives(phone, offline.id)
            wait_until(lambda: live.streaming, "the stream is open again")
            arrives(phone, create_and_push(laptop, city="Lyon"))
        assert_same_as_server(first.database, laptop, phone)
    finally:
        devices.close()


def test_a_replaced_stream_polls_instead_of_taking_the_stream_back(
    server_factory: Any, tmp_path: Path
) -> None:
    server = server_factory(SYNC_LIVE_MAX_STREAMS_PER_USER="1")
    devices = Devices(server.url, tmp_path)
    phone_said, tablet_said = Statuses(), Statuses()
    try:
        laptop, phone, tablet = devices("laptop"), devices("phone"), devices("tablet")
        with phone.live(POLLING, on_status=phone_said) as on_phone:
            wait_until(lambda: on_phone.streaming, "the phone streams")
            with tablet.live(POLLING, on_status=tablet_said) as on_tablet:
                wait_until(lambda: on_tablet.streaming, "the tablet streams")
                wait_until(lambda: on_phone.status.mode == "polling", "the phone polls")
                assert on_phone.status.reason == "replaced"
                for city in ("Oslo", "Lyon"):
                    show_id = create_and_push(laptop, city=city)
                    arrives(tablet, show_id)
                    arrives(phone, show_id)
                # The phone did not take the only stream back: the tablet never lost it.
                assert [s.mode for s in tablet_said.seen] == ["connecting", "streaming"]
                assert [s.mode for s in phone_said.seen].count("streaming") == 1
    finally:
        devices.close()


def test_stop_returns_at_once_while_a_stream_is_open(server_factory: Any, tmp_path: Path) -> None:
    # Without heartbeats, only the client can end the read its thread is waiting in.
    server = server_factory(SYNC_LIVE_HEARTBEAT="3600")
    devices = Devices(server.url, tmp_path)
    try:
        phone = devices("phone")
        live: LiveSync = phone.live(
            LiveSettings(interval=3600, fallback_interval=3600, heartbeat_timeout=3600)
        )
        wait_until(lambda: live.streaming, "a stream is open")
        stopping = threading.Thread(target=live.stop)
        stopping.start()
        stopping.join(WAIT)
        assert not stopping.is_alive() and not live.running
        assert live.status.mode == "stopped" and live.error is None
    finally:
        server.stop()  # ends the stream, should stop() have failed to
        devices.close()
