"""The SQL of accounts and the rate limiter's counters, on both backends (``store`` fixture).

Not pure, but below HTTP: races that a server-level test could only hit by luck are forced
here with threads.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta

import pytest

from event_store import EventStore, utc_now
from sync_server.auth import accounts
from sync_server.auth.accounts import Rotation
from sync_server.auth.models import User
from sync_server.auth.rate_limit import (
    Hit,
    MemoryRateLimiter,
    PostgresRateLimiter,
    RateLimited,
    RateLimiter,
    bucket,
    rate_limiter_for,
)
from sync_server.auth.tokens import new_refresh_token


def open_session(store: EventStore) -> tuple[User, uuid.UUID, bytes]:
    now = utc_now()
    user = User(uuid.uuid4(), f"{uuid.uuid4().hex}@example.com", None, now)
    session_id = uuid.uuid4()
    _, digest = new_refresh_token()
    with store.sql() as sql:
        assert accounts.insert_user(sql, user, "$argon2id$…")
        accounts.open_session(sql, session_id, user.id, None, digest, now, now + timedelta(days=7))
    return user, session_id, digest


def test_an_email_is_inserted_once(store: EventStore) -> None:
    user, _, _ = open_session(store)
    twin = User(uuid.uuid4(), user.email, "twin", utc_now())
    with store.sql() as sql:
        assert not accounts.insert_user(sql, twin, "$argon2id$…")
    with store.snapshot() as sql:
        found = accounts.credentials(sql, user.email)
    assert found is not None and found.user == user


def test_two_racing_refreshes_of_one_token_rotate_once_and_revoke(store: EventStore) -> None:
    user, session_id, digest = open_session(store)
    barrier = threading.Barrier(2)
    results: list[accounts.RotationResult] = []

    def spend() -> None:
        _, new_digest = new_refresh_token()
        barrier.wait()
        now = utc_now()
        with store.sql() as sql:
            results.append(
                accounts.rotate_refresh_token(sql, digest, new_digest, now, now + timedelta(days=1))
            )

    threads = [threading.Thread(target=spend) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.outcome.value for r in results) == ["reused", "rotated"]
    with store.snapshot() as sql:
        assert accounts.live_user(sql, session_id, user.id, utc_now()) is None


def test_a_revoked_session_is_not_live(store: EventStore) -> None:
    user, session_id, digest = open_session(store)
    with store.snapshot() as sql:
        assert accounts.live_user(sql, session_id, user.id, utc_now()) == user
        assert accounts.live_user(sql, session_id, uuid.uuid4(), utc_now()) is None
    with store.sql() as sql:
        assert accounts.revoke_session(sql, session_id, "logout", utc_now())
        assert not accounts.revoke_session(sql, session_id, "logout", utc_now())
    _, new_digest = new_refresh_token()
    now = utc_now()
    with store.sql() as sql:
        result = accounts.rotate_refresh_token(sql, digest, new_digest, now, now)
    assert result.outcome is Rotation.ENDED
    with store.snapshot() as sql:
        assert accounts.live_user(sql, session_id, user.id, utc_now()) is None
        assert accounts.live_sessions(sql, user.id, utc_now()) == []


async def hits(limiter: RateLimiter, count: int, limit: int, key: str = "k") -> int:
    """How many of ``count`` hits pass."""
    passed = 0
    for _ in range(count):
        try:
            await limiter.hit(bucket("login", "ip", key, limit))
            passed += 1
        except RateLimited as limited:
            assert 1 <= limited.retry_after <= 60
    return passed


def test_the_limiter_counts_each_bucket_apart(store: EventStore) -> None:
    async def run() -> None:
        limiter = rate_limiter_for(store)
        assert await hits(limiter, 5, 3, "a") == 3
        assert await hits(limiter, 2, 3, "b") == 2

    asyncio.run(run())


def test_a_refund_gives_one_hit_back_within_its_window(store: EventStore) -> None:
    async def run() -> None:
        limiter = rate_limiter_for(store)
        account = bucket("login", "account", "a@example.com", 2)
        first = await limiter.hit(account)
        assert first is not None
        await limiter.hit(account)
        await limiter.refund(first, account)
        await limiter.refund(Hit(first.window - 1), account)  # a window that is over: nothing
        await limiter.hit(account)  # two counted again
        with pytest.raises(RateLimited):
            await limiter.hit(account)

    asyncio.run(run())


def test_memory_limits_apply_to_any_of_several_buckets() -> None:
    async def run() -> None:
        limiter = MemoryRateLimiter()
        address, account = bucket("login", "ip", "1.2.3.4", 10), bucket("login", "acct", "a", 1)
        await limiter.hit(address, account)
        with pytest.raises(RateLimited):
            await limiter.hit(address, account)

    asyncio.run(run())


def test_postgres_limits_are_shared_by_every_process(store: EventStore) -> None:
    if store.backend != "postgres":
        pytest.skip("the embedded mode is one process")

    async def run() -> None:
        one, two = PostgresRateLimiter(store), PostgresRateLimiter(store)
        assert await hits(one, 2, 3) == 2
        assert await hits(two, 2, 3) == 1  # the second "process" sees the first one's hits

    asyncio.run(run())
