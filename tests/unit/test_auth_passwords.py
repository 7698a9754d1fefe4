"""argon2id hashing: verification, the dummy hash for unknown emails, rehash on new costs."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher

from sync_server.auth.passwords import Passwords


async def cheap(memory_kib: int = 64) -> Passwords:
    return await Passwords.create(memory_kib=memory_kib, time_cost=1, parallelism=1)


def test_a_hash_is_argon2id_and_verifies_only_its_password() -> None:
    async def run() -> None:
        passwords = await cheap()
        stored = await passwords.hash("correct horse")
        assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")
        assert await passwords.verify(stored, "correct horse")
        assert not await passwords.verify(stored, "wrong horse")
        assert not await passwords.verify("not a hash", "correct horse")

    asyncio.run(run())


def test_an_unknown_account_costs_a_verification_against_the_dummy_hash() -> None:
    async def run() -> None:
        passwords = await cheap()
        verified: list[str] = []
        real = PasswordHasher.verify

        def spy(self: PasswordHasher, stored: str, password: str) -> bool:
            verified.append(stored)
            return real(self, stored, password)

        PasswordHasher.verify = spy  # type: ignore[method-assign]
        try:
            assert not await passwords.verify(None, "any password")
        finally:
            PasswordHasher.verify = real  # type: ignore[method-assign]
        assert len(verified) == 1 and verified[0].startswith("$argon2id$v=19$m=64,t=1,p=1$")

    asyncio.run(run())


def test_a_hash_made_with_other_costs_needs_rehashing() -> None:
    async def run() -> None:
        old, new = await cheap(64), await cheap(128)
        stored = await old.hash("correct horse")
        assert not old.needs_rehash(stored)
        assert new.needs_rehash(stored)
        assert await new.verify(stored, "correct horse")  # old hashes still verify

    asyncio.run(run())
