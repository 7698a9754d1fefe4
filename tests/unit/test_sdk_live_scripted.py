"""``LiveSync`` (the SDK's ``client.live()``) against a scripted server in memory: what it does
for each poke, each ``bye``, each refusal, a stream that never opens, a reset and a session
that ended. The real server's streams are in ``tests/e2e/test_sdk_live.py``.

Every wait here is bounded only so that a broken run fails instead of hanging.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from client_sdk import LiveSettings, LiveStatus, LiveSync, RetryPolicy, SessionRevoked, SyncReport
from client_sdk.api import Api, Tokens
from client_sdk.transport import Transport

WAIT = 30.0
OPEN = b": open\n\n"
POKE = b'event: poke\ndata: {"cursor":"c1.x"}\n\n'


def bye(reason: str) -> bytes:
    return b'event: bye\ndata: {"reason":"' + reason.encode() + b'"}\n\n'


class Feed(httpx.SyncByteStream):
    """A stream body the test writes as it goes. Closing it (what the client does to stop or
    abort a stream without a socket) ends it."""

    def __init__(self, *chunks: bytes) -> None:
        self._chunks: queue.Queue[bytes | None] = queue.Queue()
        self.send(*chunks)

    def send(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self._chunks.put(chunk)

    def end(self) -> None:
        self._chunks.put(None)

    def read_all(self) -> None:
        """Wait until the client has read and handled every chunk sent so far."""
        self._chunks.join()

    def __iter__(self) -> Iterator[bytes]:
        while (chunk := self._chunks.get()) is not None:
            yield chunk  # resumed once the client asks for more: it handled this one
            self._chunks.task_done()
        self._chunks.task_done()

    def close(self) -> None:
        self.end()


Answer = Feed | httpx.Response


def stream(*chunks: bytes) -> Feed:
    return Feed(*chunks)


def problem(status: int, code: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"status": status, "code": code}, headers=headers)


@dataclass
class Server:
    """Answers ``/v1/sync/stream`` from a script (then with streams that stay open), and
    refreshes tokens unless told to refuse."""

    script: list[Answer] = field(default_factory=list)
    access: str = "access-1"
    refuse_refresh: bool = False
    streams: list[httpx.Request] = field(default_factory=list)
    feeds: list[Feed] = field(default_factory=list)
    opened: threading.Condition = field(default_factory=threading.Condition)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/auth/refresh":
            if self.refuse_refresh:
                return problem(401, "refresh_token_reused")
            self.access = "access-2"
            return httpx.Response(200, json={"access_token": "access-2", "refresh_token": "r-2"})
        assert request.url.path == "/v1/sync/stream"
        if request.headers["authorization"] != f"Bearer {self.access}":
            return problem(401, "token_expired")
        answer = self.script.pop(0) if self.script else Feed(OPEN)
        with self.opened:
            self.streams.append(request)
            self.opened.notify_all()
        if isinstance(answer, httpx.Response):
            return answer
        self.feeds.append(answer)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=answer)

    def wait_streams(self, count: int) -> None:
        with self.opened:
            assert self.opened.wait_for(lambda: len(self.streams) >= count, WAIT)

    def since(self, index: int) -> str | None:
        return self.streams[index].url.params.get("since")


class MemoryTokens:
    def __init__(self) -> None:
        self.tokens: Tokens | None = Tokens("access-1", "refresh-1")

    def load_tokens(self) -> Tokens | None:
        return self.tokens

    def save_tokens(self, tokens: Tokens | None) -> None:
        self.tokens = tokens


class Syncs:
    """The sync the loop runs: counted, and held at the gate while it is closed."""

    def __init__(self) -> None:
        self.started = 0
        self.done = 0
        self.gate = threading.Event()
        self.gate.set()
        self.resets_at: set[int] = set()
        self.changed = threading.Condition()

    def __call__(self) -> SyncReport:
        with self.changed:
            self.started += 1
            number = self.started
            self.changed.notify_all()
        assert self.gate.wait(WAIT)
        with self.changed:
            self.done += 1
            self.changed.notify_all()
        return SyncReport(resets=1 if number in self.resets_at else 0)

    def wait(self, predicate: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, WAIT)


class Statuses:
    def __init__(self) -> None:
        self.seen: list[LiveStatus] = []
        self.changed = threading.Condition()

    def __call__(self, status: LiveStatus) -> None:
        with self.changed:
            self.seen.append(status)
            self.changed.notify_all()

    def wait_for(self, mode: str, reason: str | None = None) -> LiveStatus:
        def found() -> LiveStatus | None:
            for status in self.seen:
                if status.mode == mode and reason in (None, status.reason):
                    return status
            return None

        with self.changed:
            assert self.changed.wait_for(lambda: found() is not None, WAIT), self.seen
        status = found()
        assert status is not None
        return status


QUICK = LiveSettings(
    interval=3600,
    fallback_interval=3600,
    open_timeout=WAIT,
    retry_stream_after=3600,
    reconnect=RetryPolicy(base_delay=0.0, max_delay=0.0, rng=random.Random(1)),
)


@dataclass
class Harness:
    server: Server
    syncs: Syncs
    statuses: Statuses
    tokens: MemoryTokens
    errors: list[BaseException]
    live: LiveSync


@pytest.fixture
def start() -> Iterator[Callable[..., Harness]]:
    started: list[Harness] = []

    def start_(
        *script: Answer,
        settings: LiveSettings = QUICK,
        cursor: str | None = "c1.mine",
        syncs: Syncs | None = None,
        refuse_refresh: bool = False,
        expired: bool = False,
    ) -> Harness:
        server = Server(list(script), refuse_refresh=refuse_refresh)
        if expired:  # the client's access token is no longer good
            server.access = "access-0"
        tokens = MemoryTokens()
        api = Api(Transport("http://server", transport=httpx.MockTransport(server.handle)), tokens)
        syncs = syncs or Syncs()
        statuses, errors = Statuses(), []
        live = LiveSync(
            api,
            lambda: cursor,
            syncs,
            settings,
            on_error=errors.append,
            on_status=statuses,
        )
        harness = Harness(server, syncs, statuses, tokens, errors, live.start())
        started.append(harness)
        return harness

    yield start_
    for harness in started:
        harness.syncs.gate.set()
        harness.live.stop(timeout=WAIT)
        assert not harness.live.running


# -- pokes ---------------------------------------------------------------------------------------


def test_a_burst_of_pokes_during_a_sync_causes_one_more_sync(
    start: Callable[..., Harness],
) -> None:
    syncs = Syncs()
    syncs.gate.clear()
    h = start(syncs=syncs)
    syncs.wait(lambda: syncs.started == 1)  # the loop's first sync, held at the gate
    h.server.wait_streams(1)
    feed = h.server.feeds[0]
    h.statuses.wait_for("streaming")
    feed.send(POKE, POKE + POKE, POKE * 3)
    feed.read_all()
    syncs.gate.set()
    syncs.wait(lambda: syncs.done == 2)
    feed.send(POKE)  # a poke after the burst: its sync is the next one, not the seventh
    syncs.wait(lambda: syncs.done >= 3)
    assert syncs.done == 3


def test_the_stream_opens_from_the_clients_cursor(start: Callable[..., Harness]) -> None:
    h = start(cursor="c1.mine")
    h.statuses.wait_for("streaming")
    assert h.server.since(0) == "c1.mine"
    assert h.server.streams[0].headers["accept"] == "text/event-stream"


def test_without_a_cursor_it_syncs_once_the_stream_is_open(start: Callable[..., Harness]) -> None:
    syncs = Syncs()
    syncs.gate.clear()
    h = start(cursor=None, syncs=syncs)
    syncs.wait(lambda: syncs.started == 1)
    h.statuses.wait_for("streaming")
    assert h.server.since(0) is None
    syncs.gate.set()
    syncs.wait(lambda: syncs.done == 2)  # the loop's first, then the one for the open stream


# -- how a stream ends ---------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["idle", "shutdown", "something new"])
def test_after_these_byes_it_reconnects(start: Callable[..., Harness], reason: str) -> None:
    h = start(stream(OPEN, bye(reason)))
    h.server.wait_streams(2)
    assert h.statuses.wait_for("reconnecting").reason == reason
    h.statuses.wait_for("streaming")


def test_a_lost_connection_is_reopened_and_polled_meanwhile(
    start: Callable[..., Harness],
) -> None:
    first = stream(OPEN)
    h = start(first)
    h.statuses.wait_for("streaming")
    first.end()  # the server went away without a word
    h.server.wait_streams(2)
    assert h.statuses.wait_for("reconnecting").reason == "lost"
    # Whatever the lost stream would have said is pulled at once.
    h.syncs.wait(lambda: h.syncs.done >= 2)


def test_replaced_polls_for_a_while_instead_of_taking_another_devices_stream(
    start: Callable[..., Harness],
) -> None:
    h = start(stream(OPEN, bye("replaced")))
    polling = h.statuses.wait_for("polling")
    assert polling.reason == "replaced"
    assert polling.retry_in is not None and 1800 <= polling.retry_in <= 3600
    assert len(h.server.streams) == 1


def test_retry_after_is_a_floor_under_the_reconnection_delay(
    start: Callable[..., Harness],
) -> None:
    h = start(problem(503, "unavailable", **{"Retry-After": "7"}))
    assert h.statuses.wait_for("reconnecting") == LiveStatus("reconnecting", "refused", 7.0)


def test_the_streams_retry_field_is_a_floor_too(start: Callable[..., Harness]) -> None:
    h = start(stream(b"retry: 4000\n", OPEN, bye("shutdown")))
    assert h.statuses.wait_for("reconnecting") == LiveStatus("reconnecting", "shutdown", 4.0)


def test_the_backoff_grows_while_the_stream_does_not_open(start: Callable[..., Harness]) -> None:
    policy = RetryPolicy(base_delay=0.001, max_delay=1000.0, rng=random.Random(3))
    settings = LiveSettings(interval=3600, fallback_interval=3600, reconnect=policy)
    down = [problem(502, "bad_gateway") for _ in range(8)]
    h = start(*down, settings=settings)
    h.server.wait_streams(9)
    waits = [s.retry_in or 0.0 for s in h.statuses.seen if s.mode == "reconnecting"][:8]
    assert len(waits) == 8
    # Full jitter: each wait is drawn below a cap that doubles.
    assert all(wait <= 0.001 * 2**i for i, wait in enumerate(waits))
    assert max(waits[4:]) > 0.001 * 2**2  # and the cap did grow


@pytest.mark.parametrize(
    "answer",
    [
        problem(404, "not_found"),
        problem(405, "method_not_allowed"),
        httpx.Response(200, text="<html>Sign in to the Wi-Fi</html>"),
    ],
)
def test_where_streaming_does_not_work_it_polls_and_tries_again_later(
    start: Callable[..., Harness], answer: httpx.Response
) -> None:
    settings = LiveSettings(
        fallback_interval=0.01, retry_stream_after=1.0, reconnect=QUICK.reconnect
    )
    h = start(answer, settings=settings)
    assert h.statuses.wait_for("polling").reason == "unsupported"
    h.syncs.wait(lambda: h.syncs.done >= 3)  # every fallback_interval
    h.statuses.wait_for("streaming")  # the stream was tried again, and works now
    assert len(h.server.streams) == 2


def test_a_stream_that_never_says_open_counts_as_buffered(start: Callable[..., Harness]) -> None:
    settings = LiveSettings(open_timeout=0.2, retry_stream_after=3600, reconnect=QUICK.reconnect)
    h = start(stream(POKE[:5]), settings=settings)  # something holds the rest back
    assert h.statuses.wait_for("polling").reason == "buffered"


def test_a_cursor_the_server_refuses_is_left_out_and_a_sync_starts_over(
    start: Callable[..., Harness],
) -> None:
    h = start(problem(400, "invalid_parameter"))
    h.statuses.wait_for("streaming")
    assert (h.server.since(0), h.server.since(1)) == ("c1.mine", None)
    h.syncs.wait(lambda: h.syncs.done >= 2)


def test_after_a_reset_the_stream_is_reopened_at_once(start: Callable[..., Harness]) -> None:
    syncs = Syncs()
    syncs.resets_at = {2}
    h = start(syncs=syncs)
    h.statuses.wait_for("streaming")
    h.server.feeds[0].send(POKE)
    h.server.wait_streams(2)
    assert h.statuses.wait_for("connecting", "reopen")
    assert not any(s.mode == "reconnecting" for s in h.statuses.seen)


# -- sessions and stopping -----------------------------------------------------------------------


def test_an_expired_token_is_refreshed_once(start: Callable[..., Harness]) -> None:
    h = start(expired=True)
    h.statuses.wait_for("streaming")
    assert h.tokens.tokens == Tokens("access-2", "r-2")
    assert h.server.streams[-1].headers["authorization"] == "Bearer access-2"


def test_a_session_that_ended_stops_it_with_session_revoked(
    start: Callable[..., Harness],
) -> None:
    h = start(expired=True, refuse_refresh=True)
    h.statuses.wait_for("stopped")
    h.live.stop(timeout=WAIT)
    assert isinstance(h.live.error, SessionRevoked)
    assert h.errors == [h.live.error]
    assert h.tokens.tokens is None
    assert not h.live.running


def test_stop_ends_an_open_stream_and_the_loop(start: Callable[..., Harness]) -> None:
    h = start()
    h.statuses.wait_for("streaming")
    h.live.stop(timeout=WAIT)
    assert not h.live.running
    assert h.live.status.mode == "stopped"
    assert h.live.error is None


def test_its_a_context_manager(start: Callable[..., Harness]) -> None:
    h = start()
    with h.live as live:
        h.statuses.wait_for("streaming")
    assert not live.running


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="> 0"):
        LiveSettings(open_timeout=0)
