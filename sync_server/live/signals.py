"""Learning that the process is asked to stop, before the server waits for open responses.

uvicorn's graceful shutdown stops accepting connections and then waits (up to its timeout)
for every open response to finish, and only after that runs the application's lifespan
shutdown. A stream never finishes by itself, so waiting for the lifespan would hold shutdown
for the whole timeout and then cut the streams off. Instead, the stop signals (SIGINT, SIGTERM)
are chained: our handler ends the live connections, then calls the handler that was there
before (uvicorn's), which proceeds as usual and finds them closing.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def on_stop_signal(callback: Callable[[], None]) -> Iterator[None]:
    """While open, run ``callback`` in the running event loop when a stop signal arrives,
    then let the previous handler act on the signal."""
    if threading.current_thread() is not threading.main_thread():
        # Signals are only ever handled by the main thread (an app in a test client's thread).
        yield
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handle(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        before = previous[signum]
        if callable(before):
            before(signum, frame)
        elif before == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, before in previous.items():
            if signal.getsignal(signum) is handle:
                signal.signal(signum, before)
