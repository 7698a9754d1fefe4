"""Live updates over HTTP against real server processes, on both backends: the event stream
(``GET /v1/sync/stream``), the long poll (``GET /v1/sync/pull?wait=``), their limits, and,
on PostgreSQL, pokes across server processes.

No assertion here is about time: every wait is bounded only so that a broken run fails
instead of hanging.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from api import Device, assert_problem, op, show, sign_in, sign_up, uid
from conftest import BACKENDS, Database, Server, serve_module
from sse import Message, Parser

from event_store.changes import CHANNEL_SQL
from event_store.listener import NAME as LISTENER

WAIT = 30.0
QUICK_BEATS = {"SYNC_LIVE_HEARTBEAT": "0.3"}


class Stream:
    """One device's open ``GET /v1/sync/stream``, read message by message."""

    def __init__(self, device: Device, since: str | None = None) -> None:
        params = {"since": since} if since else {}
        self._context = device.http.stream(
            "GET", "/v1/sync/stream", params=params, headers=device.headers
        )
        self.response = self._context.__enter__()
        assert self.response.status_code == 200, self.response.read()
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self._lines = self.response.iter_lines()
        self._parser = Parser()
        # Once this arrives the stream is subscribed: every commit from now on is announced.
        assert self.next(comments=True) == Message(":", "open")

    def next(self, comments: bool = False) -> Message | None:
        """The next event (or comment), or None when the server ended the stream."""
        deadline = time.monotonic() + WAIT
        for line in self._lines:
            message = self._parser.feed(line)
            if message is not None and (comments or message.event != ":"):
                return message
            assert time.monotonic() < deadline, "no event arrived"
        return None

    def poke(self) -> str:
        message = self.next()
        assert message is not None and message.event == "poke", message
        cursor: str = message.json()["cursor"]
        return cursor

    def close(self) -> None:
        self._context.__exit__(None, None, None)


@pytest.fixture
def streams() -> Iterator[list[Stream]]:
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        stream.close()


def open_stream(streams: list[Stream], device: Device, since: str | None = None) -> Stream:
    stream = Stream(device, since)
    streams.append(stream)
    return stream


def create_show(device: Device, **fields: Any) -> str:
    show_id = uid()
    [result] = device.push([op("show", show_id, "create", show(**fields))])
    assert result["status"] == "applied"
    return show_id


def ids_after(device: Device, cursor: str) -> set[str]:
    """Every entity id a pull from ``cursor`` returns (following its pages)."""
    seen: set[str] = set()
    while True:
        page = device.pull(since=cursor)
        seen |= {change["id"] for change in page["changes"]}
        cursor = page["cursor"]
        if not page["has_more"]:
            return seen


def wait_listening(database: Database, processes: int) -> None:
    """On PostgreSQL, wait until ``processes`` servers hear notices. A listener pokes every
    stream once when it starts (notices may have been missed); a test's stream opened before
    that would get a poke it did not expect."""
    if database.url is None:
        return  # SQLite: the server hears from the moment it is ready
    deadline = time.monotonic() + WAIT
    while len(listeners(database)) < processes:
        assert time.monotonic() < deadline, "the servers never began to listen"
        time.sleep(0.05)


def until_heartbeat(stream: Stream) -> None:
    """The stream's next message is a heartbeat: it was poked for nothing before it."""
    assert stream.next(comments=True) == Message(":", "heartbeat")


# -- on the module's server, one per backend ---------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """This module's server, with quick heartbeats."""
    yield from serve_module(request, tmp_path_factory, **QUICK_BEATS)


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    wait_listening(server.database, 1)
    with server.client() as client:
        yield client


@pytest.fixture
def pair(http: httpx.Client) -> tuple[Device, Device]:
    """Two devices of one user: one writes, the other reads."""
    writer = sign_up(http)
    return writer, sign_in(http, writer.email)


def test_a_push_pokes_the_users_other_devices_and_no_one_else(
    http: httpx.Client, pair: tuple[Device, Device], streams: list[Stream]
) -> None:
    writer, reader = pair
    stranger = sign_up(http)
    reader_stream = open_stream(streams, reader)
    stranger_stream = open_stream(streams, stranger)

    show_id = create_show(writer)
    cursor = reader_stream.poke()
    assert ids_after(reader, cursor) == {show_id}
    # The stranger's stream was offered the notice at the same moment, and has said nothing
    # but heartbeats since; its first poke is for its own change.
    until_heartbeat(stranger_stream)
    own = create_show(stranger)
    assert ids_after(stranger, stranger_stream.poke()) == {own}


def test_poke_cursors_follow_on_so_pulling_from_them_never_skips_a_change(
    pair: tuple[Device, Device], streams: list[Stream]
) -> None:
    writer, reader = pair
    create_show(writer)
    stream = open_stream(streams, reader)
    # Whichever poke comes first once a push is answered (one for an earlier commit whose
    # notice raced the stream's opening, or this push's own), pulling from its cursor returns
    # the push's change: a poke's cursor is never past a change it has not announced.
    first = create_show(writer)
    assert first in ids_after(reader, stream.poke())
    second, third = create_show(writer), create_show(writer)
    assert {second, third} <= ids_after(reader, stream.poke())


def test_a_client_that_reconnects_with_its_cursor_misses_no_change(
    pair: tuple[Device, Device], streams: list[Stream]
) -> None:
    writer, reader = pair
    stream = open_stream(streams, reader)
    made = create_show(writer)
    assert made in ids_after(reader, stream.poke())  # its notice has come and gone
    reader.sync_changes()
    stream.close()
    stream = open_stream(streams, reader, since=reader.cursor)
    until_heartbeat(stream)  # up to date: nothing to poke about
    stream.close()

    missed = create_show(writer)  # while this device was offline
    stream = open_stream(streams, reader, since=reader.cursor)
    assert stream.poke() == reader.cursor  # behind already: poked at once, from its cursor
    assert {c["id"] for c in reader.sync_changes()} == {missed}
    later = create_show(writer)
    assert later in ids_after(reader, stream.poke())


def test_a_new_stream_beyond_the_cap_closes_the_users_oldest(
    http: httpx.Client, streams: list[Stream]
) -> None:
    device = sign_up(http)
    oldest, *others = [open_stream(streams, device) for _ in range(11)]  # the cap is 10
    assert oldest.next() == Message("bye", '{"reason":"replaced"}')
    assert oldest.next() is None
    show_id = create_show(device)
    for stream in others:
        assert ids_after(device, stream.poke()) == {show_id}


def test_a_long_poll_returns_as_soon_as_a_change_lands(
    pair: tuple[Device, Device], server: Server
) -> None:
    writer, reader = pair
    cursor = reader.pull()["cursor"]
    with ThreadPoolExecutor(1) as pool, server.client() as other:
        waiting = pool.submit(
            other.get,
            "/v1/sync/pull",
            params={"since": cursor, "wait": "60"},
            headers=reader.headers,
            timeout=90,
        )
        time.sleep(0.5)  # most likely waiting by now; if not, its first read finds the change
        show_id = create_show(writer)
        page = waiting.result(timeout=90).json()
    assert [c["id"] for c in page["changes"]] == [show_id]


def test_a_long_poll_sees_a_change_made_since_the_clients_last_pull(
    pair: tuple[Device, Device],
) -> None:
    writer, reader = pair
    cursor = reader.pull()["cursor"]
    show_id = create_show(writer)
    # Had it waited without looking first, it would answer an empty page after 20 s.
    page = reader.pull(since=cursor, wait=20)
    assert [c["id"] for c in page["changes"]] == [show_id]


def test_a_long_poll_answers_an_empty_page_of_the_same_shape_when_the_wait_ends(
    http: httpx.Client,
) -> None:
    device = sign_up(http)
    create_show(device)
    cursor = device.pull()["cursor"]
    page = device.pull(since=cursor, wait=1)
    assert page == {"changes": [], "cursor": cursor, "has_more": False, "reset": False}


def test_bad_live_parameters_and_missing_tokens_are_refused(http: httpx.Client) -> None:
    device, stranger = sign_up(http), sign_up(http)
    for wait in ["61", "-1", "1.5", "soon", "\u0661"]:
        body = assert_problem(device.pull_raw(wait=wait), 400, "invalid_parameter")
        assert body["errors"][0]["path"] == "wait"
    foreign = stranger.pull()["cursor"]
    for since in ["nonsense", foreign, "c1.0.-.-.1.f.AAAAAAAAAAAAAAAA"]:
        response = http.get("/v1/sync/stream", params={"since": since}, headers=device.headers)
        assert_problem(response, 400, "invalid_parameter")
    own = device.pull()["cursor"]
    for params in ({"sinse": own}, [("since", own), ("since", own)]):
        response = http.get("/v1/sync/stream", params=params, headers=device.headers)
        assert_problem(response, 400, "invalid_parameter")
    assert_problem(http.get("/v1/sync/stream"), 401)
    assert_problem(http.get("/v1/sync/stream", headers={"Authorization": "Bearer x"}), 401)


# -- limits that need a server of their own ---------------------------------------------------


def test_an_idle_stream_beats_and_is_then_closed(server_factory: Any) -> None:
    server = server_factory(SYNC_LIVE_IDLE_TIMEOUT="1.5", **QUICK_BEATS)
    wait_listening(server.database, 1)
    with server.client() as http:
        stream = Stream(sign_up(http))
        try:
            messages = []
            while (message := stream.next(comments=True)) is not None:
                messages.append(message)
        finally:
            stream.close()
    assert messages[-1] == Message("bye", '{"reason":"idle"}')
    assert set(messages[:-1]) == {Message(":", "heartbeat")}


def test_stopping_the_server_ends_its_streams_cleanly(server_factory: Any) -> None:
    server = server_factory()
    with server.client() as http:
        stream = Stream(sign_up(http))
        server.process.terminate()
        try:
            assert stream.next() == Message("bye", '{"reason":"shutdown"}')
            assert stream.next() is None
        finally:
            stream.close()
    server.process.wait(WAIT)
    assert "graceful shutdown exceeded" not in server.logs()


# -- several server processes on one PostgreSQL ------------------------------------------------


def listeners(database: Database) -> list[int]:
    """The backend pids of the listening connections of ``database``'s servers."""
    assert database.url is not None
    with psycopg.connect(database.url, autocommit=True) as connection:
        row = connection.execute(f"SELECT {CHANNEL_SQL}").fetchone()
        assert row is not None
        name = f"{LISTENER} {row[0]}"
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [name]
        ).fetchall()
    return [pid for (pid,) in rows]


@dataclass
class TwoProcesses:
    database: Database
    first: httpx.Client
    second: httpx.Client
    writer: Device
    """Signed in through the first process."""
    reader: Device
    """The same user, signed in through the second."""


@pytest.fixture
def two(server_factory: Any) -> Iterator[TwoProcesses]:
    """Two server processes on one database (a test asks for ``backend`` postgres)."""
    first = server_factory(**QUICK_BEATS)
    second = server_factory(database=first.database, **QUICK_BEATS)
    wait_listening(first.database, 2)
    with first.client() as http_a, second.client() as http_b:
        writer = sign_up(http_a)
        yield TwoProcesses(first.database, http_a, http_b, writer, sign_in(http_b, writer.email))


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_push_through_one_process_pokes_streams_held_by_another(
    two: TwoProcesses, streams: list[Stream]
) -> None:
    writer, reader = two.writer, two.reader
    reader_stream = open_stream(streams, reader)
    stranger_stream = open_stream(streams, sign_up(two.second))

    show_id = create_show(writer)
    assert ids_after(reader, reader_stream.poke()) == {show_id}
    until_heartbeat(stranger_stream)

    # The long poll on the second process wakes for a push through the first, too.
    cursor = reader.pull()["cursor"]
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(reader.pull, since=cursor, wait=60)
        time.sleep(0.5)
        later = create_show(writer)
        assert [c["id"] for c in waiting.result(timeout=90)["changes"]] == [later]
    assert later in ids_after(reader, reader_stream.poke())


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_process_whose_listener_was_cut_off_reconnects_and_pokes_everyone(
    two: TwoProcesses, streams: list[Stream]
) -> None:
    stream = open_stream(streams, two.reader)
    pids = listeners(two.database)
    assert len(pids) == 2  # one per process
    with psycopg.connect(two.database.url or "", autocommit=True) as connection:
        for pid in pids:
            connection.execute("SELECT pg_terminate_backend(%s)", [pid])
    # Whatever was committed while it was deaf may have been missed: a poke, to be safe.
    ids_after(two.reader, stream.poke())
    show_id = create_show(two.writer)  # and it hears again
    assert show_id in ids_after(two.reader, stream.poke())
    assert set(listeners(two.database)).isdisjoint(pids)
