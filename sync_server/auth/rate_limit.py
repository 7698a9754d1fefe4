"""Fixed-window rate limits: at most ``limit`` hits per key per minute.

Keys are digests (``bucket()``), never raw emails or addresses. A hit can be refunded within
its window (a login that succeeds gives back its hit on the account: only failures count
there). On PostgreSQL the counters live in the ``rate_limits`` table so that every server
process counts against the same numbers: one upsert per request counts all its keys and returns
their totals, windows taken from the database clock. The embedded SQLite mode is one process:
memory is enough there, and spares the single writer.
"""

from __future__ import annotations

import abc
import hashlib
import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from event_store import EventStore

WINDOW_SECONDS = 60
_PRUNE_CHANCE = 0.01  # a hundredth of the upserts also delete counters of past windows


@dataclass(frozen=True, order=True)
class Bucket:
    key: str
    limit: int


def bucket(action: str, scope: str, subject: str, limit: int) -> Bucket:
    """The bucket of ``subject`` (an address, an email, a user id) for ``action``."""
    digest = hashlib.sha256(f"{action}\x00{scope}\x00{subject}".encode()).hexdigest()[:40]
    return Bucket(f"{action}:{scope}:{digest}", limit)


@dataclass(frozen=True)
class Hit:
    """A counted hit: the window it was counted in, which a refund must still be in."""

    window: int


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after}s")
        self.retry_after = retry_after


class RateLimiter(abc.ABC):
    async def hit(self, *buckets: Bucket) -> Hit | None:
        """Count one hit in each bucket; raise ``RateLimited`` if any is over its limit.
        None when there is no bucket (nothing to count, nothing to refund)."""
        unique = sorted(set(buckets))  # one order everywhere: upserts never deadlock
        if not unique:
            return None
        counts, retry_after, window = await self._count(unique)
        if any(count > b.limit for b, count in zip(unique, counts, strict=True)):
            raise RateLimited(max(1, math.ceil(retry_after)))
        return Hit(window)

    @abc.abstractmethod
    async def _count(self, buckets: Sequence[Bucket]) -> tuple[list[int], float, int]:
        """Each bucket's hits in the current window (this one included), the seconds until
        the window ends, and the window."""

    @abc.abstractmethod
    async def refund(self, hit: Hit, bucket: Bucket) -> None:
        """Take back the hit ``hit`` counted in ``bucket``; nothing once its window is over."""


class MemoryRateLimiter(RateLimiter):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = -1
        self._hits: dict[str, int] = {}

    async def _count(self, buckets: Sequence[Bucket]) -> tuple[list[int], float, int]:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        with self._lock:
            if window != self._window:  # a new window forgets the old one whole
                self._window = window
                self._hits = {}
            counts = []
            for b in buckets:
                self._hits[b.key] = self._hits.get(b.key, 0) + 1
                counts.append(self._hits[b.key])
        return counts, (window + 1) * WINDOW_SECONDS - now, window

    async def refund(self, hit: Hit, bucket: Bucket) -> None:
        with self._lock:
            if hit.window == self._window and self._hits.get(bucket.key, 0) > 0:
                self._hits[bucket.key] -= 1


_UPSERT = f"""
INSERT INTO rate_limits AS r (key, window_start, hits)
SELECT k, floor(extract(epoch FROM statement_timestamp()) / {WINDOW_SECONDS})::bigint, 1
FROM unnest(?::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n
ON CONFLICT (key, window_start) DO UPDATE SET hits = r.hits + 1
RETURNING r.key, r.hits,
    ((r.window_start + 1) * {WINDOW_SECONDS} - extract(epoch FROM statement_timestamp()))::float8,
    r.window_start
"""

_REFUND = "UPDATE rate_limits SET hits = hits - 1 WHERE key = ? AND window_start = ? AND hits > 0"

_PRUNE = f"""
DELETE FROM rate_limits
WHERE window_start < floor(extract(epoch FROM statement_timestamp()) / {WINDOW_SECONDS})::bigint
"""


class PostgresRateLimiter(RateLimiter):
    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def _count(self, buckets: Sequence[Bucket]) -> tuple[list[int], float, int]:
        keys = [b.key for b in buckets]

        def upsert() -> tuple[list[int], float, int]:
            with self._store.sql() as sql:
                rows = sql.fetchall(_UPSERT, [keys])
                if random.random() < _PRUNE_CHANCE:
                    sql.execute(_PRUNE)
            found = {str(key): (int(hits), float(left)) for key, hits, left, _ in rows}
            window = int(rows[0][3])  # one statement: one clock, one window for every key
            return [found[k][0] for k in keys], min(left for _, left in found.values()), window

        return await run_in_threadpool(upsert)

    async def refund(self, hit: Hit, bucket: Bucket) -> None:
        def update() -> None:
            with self._store.sql() as sql:
                sql.execute(_REFUND, [bucket.key, hit.window])

        await run_in_threadpool(update)


def rate_limiter_for(store: EventStore) -> RateLimiter:
    return PostgresRateLimiter(store) if store.backend == "postgres" else MemoryRateLimiter()
