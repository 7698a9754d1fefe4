"""When to retry a request and how long to wait: exponential backoff with full jitter.

Pure policy, no I/O: ``transport.py`` asks it for delays. Full jitter (a uniform draw between 0
and the exponential cap) keeps a fleet of devices that lost the network together from coming
back in lockstep. A ``Retry-After`` from the server is a floor under the drawn delay, and one
longer than ``max_retry_after`` is not waited out at all: the caller is told instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Answers that mean "not now" rather than "never": overload, rate limits, a proxy or a
database that is briefly away. Any other 4xx is final: resending the same request cannot help."""

SAFE_WITHOUT_IDEMPOTENCY = frozenset({429, 503})
"""Answers after which even a non-idempotent request certainly did nothing (refused before any
work), so it may be sent again."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    """Tries in total, the first included."""
    base_delay: float = 0.2
    max_delay: float = 10.0
    max_retry_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        cap = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        drawn = self.rng.uniform(0, cap)
        return drawn if retry_after is None else max(drawn, retry_after)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds, from either of its forms (RFC 9110, section 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())
