"""``client.live()``: sync as soon as the server says this user's data changed.

A background thread holds ``GET /v1/sync/stream`` open and, on every ``poke``, calls
``trigger()`` on a sync loop (``loop.py``, the one ``watch()`` runs too). The loop does the
syncing, so a burst of pokes during a sync causes one more sync, not one per poke. The client
pulls from its own cursor, never from a poke's: its own is where its copy stands, and a pull
from it returns everything the poke is about and everything before it.

The stream is opened with ``since=<the client's cursor>``: a client that fell behind while it
was disconnected is poked at once. Without a cursor yet (or when the server refused it), the
client syncs once the stream is open instead; it does too when its last sync failed.

How each way a stream ends is answered:

* ``bye`` ``idle`` or ``shutdown``, a broken or silent connection (no byte for
  ``heartbeat_timeout`` seconds), a 5xx or a 429: reconnect after a backoff, exponential with
  full jitter (``reconnect``); ``Retry-After`` and the stream's ``retry:`` are floors under it.
  The backoff starts over after every stream that opened.
* ``bye`` ``replaced``: the user holds more streams on that server process than it allows, and
  this one was the oldest. Reconnecting at once would close another device's stream, which
  would do the same, and the two would take turns for ever; so this device polls instead, and
  tries a stream again after ``retry_stream_after`` seconds.
* 404, 405 or another 4xx, an answer that is not an event stream, or no ``: open`` within
  ``open_timeout`` seconds (a proxy that buffers the response would hold every poke back):
  streaming does not work here. Poll, and try again after ``retry_stream_after``.
* 400 to a ``since``: the server no longer takes that cursor. Sync (which starts over from the
  beginning) and reopen without it.
* 401: the tokens are refreshed once, as for every call. A session that ended stops everything
  with ``SessionRevoked`` (given to ``on_error`` and kept in ``error``), as it stops ``watch()``.
* A sync answered ``reset``: the stream is reopened, since its cursors belong to the projection
  epoch it opened in.

While a stream is open the loop also syncs every ``interval`` seconds (a safety net); while
none is (reconnecting, or polling), every ``fallback_interval`` seconds, starting at once when
an open stream is lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Literal

import httpx
import msgspec

from .api import Api
from .errors import ClientError, NetworkError, NotAuthenticated, RateLimited, SessionRevoked
from .loop import ErrorListener, ReportListener, SyncLoop, call_listener
from .records import SyncReport
from .retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after
from .sse import Comment, Event, EventStreamError, EventStreamParser
from .transport import Transport

log = logging.getLogger("client_sdk.live")

Mode = Literal["connecting", "streaming", "reconnecting", "polling", "stopped"]

# Why a stream ended (besides the server's own ``bye`` reasons).
LOST: Final = "lost"
"""The connection broke, went silent, or ended without a ``bye``."""
REFUSED: Final = "refused"
"""The server answered 429 or 5xx."""
UNSUPPORTED: Final = "unsupported"
"""Another 4xx, or an answer that is not an event stream."""
BUFFERED: Final = "buffered"
"""No ``: open`` in time: something between the client and the server holds the stream back."""
STALE_CURSOR: Final = "stale_cursor"
"""The server refused the client's cursor as ``since``."""
REOPEN: Final = "reopen"
"""Closed by the client after a reset."""
STOPPED: Final = "stopped"
REPLACED: Final = "replaced"

_POLL: Final = frozenset({REPLACED, UNSUPPORTED, BUFFERED})
_AT_ONCE: Final = frozenset({STALE_CURSOR, REOPEN})


@dataclass(frozen=True)
class LiveSettings:
    interval: float = 300.0
    """Seconds between syncs while a stream is open: a safety net, pokes do the work."""
    fallback_interval: float = 30.0
    """Seconds between syncs while no stream is open (reconnecting, or polling)."""
    open_timeout: float = 10.0
    """Seconds for a new stream to say ``: open`` (and to connect)."""
    heartbeat_timeout: float = 45.0
    """Seconds of silence after which an open stream is taken for dead (the server sends a
    heartbeat every 15 seconds by default: keep this well above its ``SYNC_LIVE_HEARTBEAT``)."""
    retry_stream_after: float = 300.0
    """Seconds of polling before trying a stream again, once streaming did not work here or
    the stream was replaced (jittered: between half of it and all of it)."""
    reconnect: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(base_delay=1.0, max_delay=60.0)
    )
    """The backoff between reconnections (its ``attempts`` do not count: live never gives up)."""

    def __post_init__(self) -> None:
        timings = (
            self.interval,
            self.fallback_interval,
            self.open_timeout,
            self.heartbeat_timeout,
            self.retry_stream_after,
        )
        if min(timings) <= 0:
            raise ValueError("every interval and timeout of LiveSettings must be > 0 seconds")


@dataclass(frozen=True)
class LiveStatus:
    mode: Mode
    reason: str | None = None
    """Why the last stream ended (``idle``, ``shutdown``, ``replaced``, ``lost``, ``refused``,
    ``unsupported``, ``buffered``…), when it did."""
    retry_in: float | None = None
    """Seconds until the next try, while ``reconnecting`` or ``polling``."""


StatusListener = Callable[[LiveStatus], None]


@dataclass(frozen=True)
class _Ended:
    reason: str
    opened: bool = False
    retry_after: float | None = None


class _Bye(msgspec.Struct):
    reason: str = LOST


class LiveSync:
    """The live sync of one client: a stream reader thread and the sync loop it triggers.

    Made by ``Client.live()``; ``stop()`` it (or use it as a context manager).
    """

    def __init__(
        self,
        api: Api,
        cursor: Callable[[], str | None],
        sync: Callable[[], SyncReport],
        settings: LiveSettings,
        *,
        on_sync: ReportListener | None = None,
        on_error: ErrorListener | None = None,
        on_status: StatusListener | None = None,
    ) -> None:
        self.settings = settings
        self.loop = SyncLoop(
            sync,
            interval=settings.fallback_interval,
            on_sync=self._synced,
            on_error=self._failed,
            rng=settings.reconnect.rng,
        )
        """The sync loop this live sync triggers (``trigger()`` it to sync now)."""
        self.error: BaseException | None = None
        """What stopped it by itself, if anything: ``SessionRevoked`` or ``NotAuthenticated``
        (sign in again), or an error it did not expect (a bug, logged)."""
        self.status = LiveStatus("stopped")
        self._api = api
        self._cursor = cursor
        self._on_sync = on_sync
        self._on_error = on_error
        self._on_status = on_status
        self._timeout = httpx.Timeout(
            connect=settings.open_timeout,
            read=settings.heartbeat_timeout,
            write=settings.open_timeout,
            pool=settings.open_timeout,
        )
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        """Streams in a row that did not open."""
        # The attempt in progress, shared with stop(), the open timer and the sync loop.
        self._lock = threading.Lock()
        self._response: httpx.Response | None = None
        self._opened = False
        self._timed_out = False
        self._reopen = False

    # -- the app's side --------------------------------------------------------------------------

    def start(self) -> LiveSync:
        if self._thread is not None:
            raise RuntimeError("live sync is started already")
        self._thread = threading.Thread(target=self._run, name="client-sdk-live", daemon=True)
        self._set_status(LiveStatus("connecting"))
        self.loop.start()
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Close the stream now and stop the loop after the sync in progress, if any; wait up
        to ``timeout`` seconds for both."""
        self._stopping.set()
        self._abort()
        self.loop.stop(timeout)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        thread = self._thread
        return (thread is not None and thread.is_alive()) or self.loop.running

    @property
    def streaming(self) -> bool:
        """A stream is open: changes are heard of as they happen."""
        return self.status.mode == "streaming"

    def __enter__(self) -> LiveSync:
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the stream thread -----------------------------------------------------------------------

    def _run(self) -> None:
        use_since = True
        try:
            while not self._stopping.is_set():
                ended = self._attempt(use_since)
                if ended.reason == STOPPED:
                    break
                use_since = ended.reason != STALE_CURSOR
                if self._stopping.wait(self._pause_after(ended)):
                    break
                self._set_status(LiveStatus("connecting", ended.reason))
        except Exception as error:  # SessionRevoked, NotAuthenticated, or a bug: reported
            if not isinstance(error, SessionRevoked | NotAuthenticated):
                log.exception("live sync stopped by an unexpected error")
            self._end(error)
        finally:
            self._set_status(LiveStatus("stopped", self.status.reason))

    def _pause_after(self, ended: _Ended) -> float:
        """Seconds to wait before the next stream, now that one ``ended``."""
        if ended.opened:
            self._failures = 0
            if ended.reason not in _AT_ONCE:
                # Whatever the lost stream would have said: poll from now on, at once.
                self.loop.interval = self.settings.fallback_interval
                self.loop.trigger()
        if ended.reason in _AT_ONCE:
            return 0.0  # a stream reopened without a cursor syncs once open
        if ended.reason in _POLL:
            half = self.settings.retry_stream_after / 2
            wait = self.settings.reconnect.rng.uniform(half, 2 * half)
            self._set_status(LiveStatus("polling", ended.reason, wait))
        else:
            self._failures += 1
            wait = self.settings.reconnect.delay(self._failures, ended.retry_after)
            self._set_status(LiveStatus("reconnecting", ended.reason, wait))
        log.info("live stream ended", extra={"reason": ended.reason, "retry_in": wait})
        return wait

    def _attempt(self, use_since: bool) -> _Ended:
        """Open a stream and read it until it ends; how it ended."""
        with self._lock:
            self._opened = self._timed_out = self._reopen = False
        since = self._cursor() if use_since else None
        timer = threading.Timer(self.settings.open_timeout, self._open_timed_out)
        timer.daemon = True
        timer.start()
        try:
            with self._api.stream(since, self._timeout) as response:
                with self._lock:
                    self._response = response
                    interrupted = self._interrupted()
                try:
                    return interrupted or self._read(response, since)
                finally:
                    with self._lock:
                        self._response = None
        except (NetworkError, EventStreamError):
            with self._lock:
                return self._interrupted() or _Ended(LOST, self._opened)
        except (SessionRevoked, NotAuthenticated):
            raise
        except RateLimited as error:  # from refreshing the tokens, as every error below
            return _Ended(REFUSED, retry_after=error.retry_after)
        except ClientError:  # a 5xx through every retry, an answer that made no sense
            return _Ended(REFUSED)
        finally:
            timer.cancel()

    def _interrupted(self) -> _Ended | None:
        """Why the attempt must end now, if it must (called holding the lock)."""
        if self._stopping.is_set():
            return _Ended(STOPPED, self._opened)
        if self._reopen:
            return _Ended(REOPEN, self._opened)
        if self._timed_out:
            return _Ended(BUFFERED)
        return None

    def _read(self, response: httpx.Response, since: str | None) -> _Ended:
        if response.status_code != 200:
            return _refused(response, since)
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            return _Ended(UNSUPPORTED)
        parser = EventStreamParser()
        for chunk in Transport.chunks(response):
            for item in parser.feed(chunk):
                if not self._opened and (item == Comment("open") or isinstance(item, Event)):
                    self._stream_opened(since)
                if isinstance(item, Event) and item.type == "poke":
                    self.loop.trigger()
                elif isinstance(item, Event) and item.type == "bye":
                    return _Ended(_bye_reason(item.data), True, parser.retry)
            if self._stopping.is_set() or self._reopen:
                break  # aborted, yet the read went on (a transport without a socket to shut)
        with self._lock:
            return self._interrupted() or _Ended(LOST, self._opened, parser.retry)

    def _stream_opened(self, since: str | None) -> None:
        with self._lock:
            self._opened = True
        self.loop.interval = self.settings.interval
        if since is None or self.loop.failures:
            self.loop.trigger()
        self._set_status(LiveStatus("streaming"))

    # -- from other threads ----------------------------------------------------------------------

    def _abort(self, *, reopen: bool = False, timed_out: bool = False) -> None:
        """End the attempt in progress (the stream thread notices why)."""
        with self._lock:
            if timed_out:
                if self._opened:
                    return
                self._timed_out = True
            self._reopen = self._reopen or reopen
            response = self._response
        if response is not None:
            Transport.abort(response)

    def _open_timed_out(self) -> None:
        self._abort(timed_out=True)

    def _synced(self, report: SyncReport) -> None:
        if report.resets:
            self._abort(reopen=True)
        call_listener(self._on_sync, report)

    def _failed(self, error: BaseException) -> None:
        if isinstance(error, SessionRevoked | NotAuthenticated):
            self._end(error)  # the loop ends by itself
        else:
            call_listener(self._on_error, error)

    def _end(self, error: BaseException) -> None:
        """Stop everything because of ``error``; the app hears of the first such error only
        (when a session ends, the stream and the loop may both find out)."""
        with self._lock:
            first = self.error is None
            if first:
                self.error = error
        self._stopping.set()
        self._abort()
        if first:
            call_listener(self._on_error, error)
        self.loop.stop()

    def _set_status(self, status: LiveStatus) -> None:
        self.status = status
        call_listener(self._on_status, status)


def _refused(response: httpx.Response, since: str | None) -> _Ended:
    status = response.status_code
    if status == 400 and since is not None:
        return _Ended(STALE_CURSOR)
    if status in RETRYABLE_STATUSES:
        return _Ended(REFUSED, retry_after=parse_retry_after(response.headers.get("Retry-After")))
    return _Ended(UNSUPPORTED)


def _bye_reason(data: str) -> str:
    try:
        return msgspec.json.decode(data, type=_Bye).reason
    except (msgspec.DecodeError, msgspec.ValidationError):
        return LOST
