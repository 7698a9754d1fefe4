"""What the auth endpoints do, apart from HTTP: register, log in, refresh, log out, check an
access token, list and revoke sessions. Failures are raised as problems (PROTOCOL.md)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from starlette.concurrency import run_in_threadpool

from event_store import EventStore, Sql, utc_now

from ..problems import FieldProblem, Problem
from ..settings import Settings
from . import accounts
from .accounts import Rotation
from .models import Principal, Session, SignedIn, Tokens, User
from .passwords import Passwords
from .rate_limit import Bucket, Hit, RateLimited, RateLimiter, bucket, rate_limiter_for
from .tokens import AccessTokens, TokenExpired, TokenInvalid, hash_refresh_token, new_refresh_token
from .validation import (
    PASSWORD_MAX,
    PASSWORD_MIN,
    collect,
    device_id_problem,
    email_problem,
    name_problem,
    normalize_email,
    normalize_name,
    password_problem,
)

log = logging.getLogger("sync_server.auth")

MAX_REFRESH_TOKEN_LENGTH = 256


def unauthorized(code: str, detail: str, error: str | None = "invalid_token") -> Problem:
    """A 401 with the ``WWW-Authenticate`` challenge RFC 9110 and RFC 6750 ask for."""
    challenge = 'Bearer realm="sync-server"'
    if error:
        challenge += f', error="{error}"'
    return Problem(401, code, detail, headers={"WWW-Authenticate": challenge})


def _invalid(errors: list[FieldProblem]) -> Problem:
    return Problem(422, "validation_failed", "the body has invalid fields", errors=errors)


@dataclass(frozen=True)
class _NewSession:
    """A device session about to be opened by a register or a login, with its first refresh
    token (the token goes to the client once; only its hash is stored)."""

    id: UUID
    device_id: str | None
    refresh_token: str
    refresh_hash: bytes
    opened_at: datetime
    expires_at: datetime

    def open(self, sql: Sql, user_id: UUID) -> None:
        accounts.open_session(
            sql, self.id, user_id, self.device_id, self.refresh_hash, self.opened_at,
            self.expires_at,
        )  # fmt: skip


@dataclass
class Auth:
    settings: Settings
    store: EventStore
    passwords: Passwords
    tokens: AccessTokens
    limiter: RateLimiter

    @classmethod
    async def create(cls, settings: Settings, store: EventStore, signing_key: str) -> Auth:
        passwords = await Passwords.create(
            settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism
        )
        tokens = AccessTokens(
            signing_key, settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl
        )
        return cls(settings, store, passwords, tokens, rate_limiter_for(store))

    # -- rate limits -----------------------------------------------------------------------------

    async def limit(
        self, action: str, address: str | None, account: str | None = None
    ) -> Hit | None:
        """Count one attempt at ``action`` from ``address`` (and on ``account``); 429 beyond
        the limits."""
        buckets = []
        if address is not None:
            buckets.append(bucket(action, "ip", address, self.settings.rate_limit_per_minute))
        if account is not None:
            buckets.append(self._account_bucket(action, account))
        try:
            return await self.limiter.hit(*buckets)
        except RateLimited as limited:
            log.info("rate limited", extra={"action": action})
            raise Problem(
                429,
                "rate_limited",
                f"too many attempts; retry in {limited.retry_after} s",
                headers={"Retry-After": str(limited.retry_after)},
            ) from None

    def _account_bucket(self, action: str, account: str) -> Bucket:
        return bucket(action, "account", account, self.settings.rate_limit_per_account_per_minute)

    # -- signing in ------------------------------------------------------------------------------

    async def register(
        self,
        email: str,
        password: str,
        name: str | None,
        device_id: str | None,
        address: str | None,
    ) -> SignedIn:
        email, name = normalize_email(email), normalize_name(name)
        errors = collect(
            email=email_problem(email),
            password=password_problem(password),
            name=name_problem(name),
            device_id=device_id_problem(device_id),
        )
        if errors:
            raise _invalid(errors)
        await self.limit("register", address, email)
        password_hash = await self.passwords.hash(password)
        now = utc_now()
        user = User(uuid.uuid4(), email, name, now)
        session = self._new_session(device_id, now)

        def write() -> bool:
            with self.store.sql() as sql:
                if not accounts.insert_user(sql, user, password_hash):
                    return False
                session.open(sql, user.id)
            return True

        if not await run_in_threadpool(write):
            raise Problem(409, "email_taken", "an account with this email exists already")
        log.info("user registered", extra={"user_id": str(user.id), "session_id": str(session.id)})
        return self._signed_in(user, session.id, session.refresh_token, now)

    async def login(
        self, email: str, password: str, device_id: str | None, address: str | None
    ) -> SignedIn:
        email = normalize_email(email)
        if problem := device_id_problem(device_id):
            raise _invalid(collect(device_id=problem))
        # Every attempt is counted before the password is checked, so concurrent guesses can
        # never outrun the limits; a success then gives its hit on the account back. Only
        # failures count against an account: signing in on many devices at once is never
        # refused for it (the address still counts every attempt).
        hit = await self.limit("login", address, email)
        found = await self._check_password(email, password)
        if found is None:
            log.info("login failed")
            raise unauthorized("invalid_credentials", "wrong email or password", error=None)
        if hit is not None:
            await self.limiter.refund(hit, self._account_bucket("login", email))

        now = utc_now()
        new_hash = None
        if self.passwords.needs_rehash(found.password_hash):
            new_hash = await self.passwords.hash(password)
        session = self._new_session(device_id, now)
        user = found.user

        def write() -> None:
            with self.store.sql() as sql:
                if new_hash is not None:
                    accounts.replace_password_hash(sql, user.id, new_hash, now)
                session.open(sql, user.id)

        await run_in_threadpool(write)
        log.info(
            "login succeeded",
            extra={
                "user_id": str(user.id),
                "session_id": str(session.id),
                "rehashed": new_hash is not None,
            },
        )
        return self._signed_in(user, session.id, session.refresh_token, now)

    async def _check_password(self, email: str, password: str) -> accounts.Credentials | None:
        """The account's credentials if ``password`` is its password. Unknown emails cost the
        same as wrong passwords (a verification against a dummy hash)."""
        # Out-of-bounds credentials cannot belong to anyone: refuse them before any lookup or
        # hashing (a megabyte-long password must never reach argon2).
        if email_problem(email) is not None or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
            return None

        def read() -> accounts.Credentials | None:
            with self.store.snapshot() as sql:
                return accounts.credentials(sql, email)

        found = await run_in_threadpool(read)
        matched = await self.passwords.verify(found.password_hash if found else None, password)
        return found if matched else None

    # -- refresh tokens --------------------------------------------------------------------------

    async def refresh(self, refresh_token: str, address: str | None) -> tuple[UUID, Tokens]:
        """A new pair of tokens for a refresh token, which is spent; (user id, tokens)."""
        if not refresh_token or len(refresh_token) > MAX_REFRESH_TOKEN_LENGTH:
            await self.limit("refresh", address)
            raise unauthorized("invalid_refresh_token", "the refresh token is not valid")
        old_hash = hash_refresh_token(refresh_token)

        def owner() -> tuple[UUID, UUID] | None:
            with self.store.snapshot() as sql:
                return accounts.refresh_token_session(sql, old_hash)

        # The account is known only once the token is: look it up (one indexed read), then
        # count the attempt against the address and the account together.
        found = await run_in_threadpool(owner)
        await self.limit("refresh", address, str(found[1]) if found else None)
        if found is None:
            raise unauthorized("invalid_refresh_token", "the refresh token is not valid")

        now = utc_now()
        new_token, new_hash = new_refresh_token()

        def rotate() -> accounts.RotationResult:
            with self.store.sql() as sql:
                return accounts.rotate_refresh_token(
                    sql, old_hash, new_hash, now, self._refresh_expiry(now)
                )

        result = await run_in_threadpool(rotate)
        if result.outcome is Rotation.REUSED:
            log.warning(
                "refresh token reused; session revoked",
                extra={"user_id": str(result.user_id), "session_id": str(result.session_id)},
            )
            raise unauthorized(
                "refresh_token_reused",
                "this refresh token was used before; its session is revoked, log in again",
            )
        if result.outcome is not Rotation.ROTATED:
            raise unauthorized("invalid_refresh_token", "the refresh token is not valid")
        assert result.user_id is not None and result.session_id is not None
        access = self.tokens.issue(result.user_id, result.session_id, now)
        return result.user_id, Tokens(access, new_token, self.tokens.ttl_seconds)

    async def logout(self, refresh_token: str, address: str | None) -> UUID:
        """Revoke the session of ``refresh_token`` (done already is fine); its user's id."""
        # Per address only, every attempt: logout is public, answers whether a token is live
        # and costs a write, and names no account until its token is found.
        await self.limit("logout", address)
        token_hash = self._refresh_hash(refresh_token)
        now = utc_now()

        def revoke() -> tuple[UUID, UUID] | None:
            with self.store.sql() as sql:
                found = accounts.refresh_token_session(sql, token_hash)
                if found is not None:
                    accounts.revoke_session(sql, found[0], "logout", now)
                return found

        found = await run_in_threadpool(revoke)
        if found is None:
            raise unauthorized("invalid_refresh_token", "the refresh token is not valid")
        session_id, user_id = found
        log.info("logged out", extra={"user_id": str(user_id), "session_id": str(session_id)})
        return user_id

    def _refresh_hash(self, refresh_token: str) -> bytes:
        if not refresh_token or len(refresh_token) > MAX_REFRESH_TOKEN_LENGTH:
            raise unauthorized("invalid_refresh_token", "the refresh token is not valid")
        return hash_refresh_token(refresh_token)

    # -- access tokens and sessions --------------------------------------------------------------

    async def authenticate(self, access_token: str) -> Principal:
        """The user and session of a valid access token of a live session, or a 401."""
        try:
            claims = self.tokens.verify(access_token)
        except TokenExpired:
            raise unauthorized("token_expired", "the access token expired; refresh it") from None
        except TokenInvalid:
            raise unauthorized("invalid_token", "the access token is not valid") from None
        now = utc_now()

        def lookup() -> User | None:
            with self.store.snapshot() as sql:
                return accounts.live_user(sql, claims.session_id, claims.user_id, now)

        user = await run_in_threadpool(lookup)
        if user is None:
            raise unauthorized("session_ended", "the session was revoked or has expired")
        return Principal(user, claims.session_id)

    async def sessions(self, principal: Principal) -> list[Session]:
        now = utc_now()

        def read() -> list[Session]:
            with self.store.snapshot() as sql:
                return accounts.live_sessions(sql, principal.user.id, now)

        found = await run_in_threadpool(read)
        return [
            Session(s.id, s.device_id, s.created_at, s.last_used_at, s.expires_at, current=True)
            if s.id == principal.session_id
            else s
            for s in found
        ]

    async def revoke(self, principal: Principal, session_id: UUID) -> None:
        """Revoke one of the user's sessions; 404 for anyone else's (or none)."""
        now = utc_now()

        def write() -> bool:
            with self.store.sql() as sql:
                if accounts.session_owner(sql, session_id) != principal.user.id:
                    return False
                accounts.revoke_session(sql, session_id, "revoked_by_user", now)
                return True

        if not await run_in_threadpool(write):
            raise Problem(404, "not_found", "no such session")
        log.info("session revoked", extra={"session_id": str(session_id)})

    # -- helpers ---------------------------------------------------------------------------------

    def _new_session(self, device_id: str | None, now: datetime) -> _NewSession:
        token, token_hash = new_refresh_token()
        return _NewSession(
            uuid.uuid4(), device_id, token, token_hash, now, self._refresh_expiry(now)
        )

    def _refresh_expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.settings.refresh_token_ttl)

    def _signed_in(
        self, user: User, session_id: UUID, refresh_token: str, now: datetime
    ) -> SignedIn:
        access = self.tokens.issue(user.id, session_id, now)
        return SignedIn(user, access, refresh_token, self.tokens.ttl_seconds)
