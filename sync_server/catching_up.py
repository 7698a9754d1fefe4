"""The catch-up runner inside ``serve``: a background task that keeps the read models that are
not written inline up with the log (``projections/runner.py``), every few seconds.

Every server process runs one; against one PostgreSQL they share the work safely (each batch
locks its model's state row), so nothing needs to be configured to run several. Set
``SYNC_CATCH_UP_INTERVAL=0`` to leave the work to ``sync-server project`` processes instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from event_store import EventStore
from projections import runner

log = logging.getLogger("sync_server.catch_up")


@dataclass
class CatchingUp:
    task: asyncio.Task[None] | None
    halt: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(cls, store: EventStore, interval: float) -> CatchingUp:
        if interval <= 0:
            return cls(None)
        running = cls(None)
        running.task = asyncio.create_task(running._loop(store, interval))
        return running

    async def _loop(self, store: EventStore, interval: float) -> None:
        while not self.halt.is_set():
            try:
                await run_in_threadpool(self._round, store)
            except Exception:  # the next round tries again; a dead runner helps no one
                log.exception("catch-up round failed")
            await asyncio.sleep(interval)

    def _round(self, store: EventStore) -> None:
        runner.check_read_tables(store)
        runner.catch_up(store, stop=self.halt)

    async def stop(self) -> None:
        """Stop after the batch in hand (a thread cannot be interrupted mid-transaction)."""
        self.halt.set()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
