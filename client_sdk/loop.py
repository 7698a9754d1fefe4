"""Periodic sync in a background thread, with a way to ask for a sync now.

``trigger()`` is the one way to wake the loop early: local writes call it (when the loop is
started with ``sync_on_write``), and so does ``live.py`` when the server announces a change.
Triggers that come while a sync runs cause one more sync after it, however many they are.
After a failure the loop waits longer each time (doubling, with jitter, up to
``max_backoff``); a session that ended stops it, since only a new login helps.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from .errors import NotAuthenticated, SessionRevoked
from .records import SyncReport

log = logging.getLogger("client_sdk.loop")
T = TypeVar("T")

ErrorListener = Callable[[BaseException], None]
ReportListener = Callable[[SyncReport], None]


class SyncLoop:
    def __init__(
        self,
        sync: Callable[[], SyncReport],
        *,
        interval: float = 30.0,
        max_backoff: float = 300.0,
        on_sync: ReportListener | None = None,
        on_error: ErrorListener | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self.interval = interval
        self.max_backoff = max(max_backoff, interval)
        self._sync = sync
        self._on_sync = on_sync
        self._on_error = on_error
        self._rng = rng or random.Random()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0
        """Consecutive failed syncs (0 after a success)."""
        self.last_report: SyncReport | None = None
        self.last_error: BaseException | None = None

    def start(self) -> SyncLoop:
        if self._thread is not None:
            raise RuntimeError("the sync loop is started already")
        self._thread = threading.Thread(target=self._run, name="client-sdk-sync", daemon=True)
        self._thread.start()
        return self

    def trigger(self) -> None:
        """Sync as soon as the current sync (if any) is over."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the sync in progress, if any; wait up to ``timeout`` seconds for it."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> SyncLoop:
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            if not self._once():
                return
            self._wake.wait(self._next_wait())

    def _once(self) -> bool:
        """One sync; False when the loop must end."""
        try:
            report = self._sync()
        except (SessionRevoked, NotAuthenticated) as error:
            self._failed(error)
            return False
        except Exception as error:  # the loop outlives any one failure; it is reported
            self._failed(error)
            return True
        self.failures = 0
        self.last_report = report
        self.last_error = None
        call_listener(self._on_sync, report)
        return True

    def _failed(self, error: BaseException) -> None:
        self.failures += 1
        self.last_error = error
        log.warning("sync failed", extra={"error": type(error).__name__})
        call_listener(self._on_error, error)

    def _next_wait(self) -> float:
        if not self.failures:
            return self.interval
        cap = min(self.max_backoff, self.interval * 2 ** min(self.failures - 1, 32))
        return self._rng.uniform(cap / 2, cap)


def call_listener(listener: Callable[[T], None] | None, value: T) -> None:
    """Call an app's callback, if there is one; what it raises is logged, never passed on."""
    if listener is None:
        return
    try:
        listener(value)
    except Exception:  # an app callback must not kill the loop
        log.exception("sync loop listener failed")
