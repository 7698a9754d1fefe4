"""Password hashing with argon2id, off the event loop and with bounded concurrency.

Each hash holds ``memory_kib`` of memory for its duration; the limiter caps how many run at
once, so a burst of logins queues instead of exhausting memory or starving other requests'
threads.
"""

from __future__ import annotations

import logging
import os
import secrets

import anyio
import anyio.to_thread
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger("sync_server.auth")


class Passwords:
    def __init__(self, hasher: PasswordHasher, dummy_hash: str, concurrency: int) -> None:
        self._hasher = hasher
        # Unknown emails are verified against this, so that they cost what a wrong password
        # costs and the two cannot be told apart by timing.
        self._dummy_hash = dummy_hash
        self._limiter = anyio.CapacityLimiter(concurrency)

    @classmethod
    async def create(
        cls, memory_kib: int, time_cost: int, parallelism: int, concurrency: int | None = None
    ) -> Passwords:
        hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        dummy = await anyio.to_thread.run_sync(hasher.hash, secrets.token_urlsafe(24))
        return cls(hasher, dummy, concurrency or max(2, os.cpu_count() or 1))

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hasher.hash, password, limiter=self._limiter)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; with no stored hash, spend the same time
        and answer False."""
        return await anyio.to_thread.run_sync(self._verify, stored, password, limiter=self._limiter)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            matched = self._hasher.verify(stored or self._dummy_hash, password)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError):
            log.error("a stored password hash is unreadable")
            return False
        return matched and stored is not None

    def needs_rehash(self, stored: str) -> bool:
        """True when ``stored`` was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(stored)
        except (InvalidHashError, ValueError):
            return True
