"""Settings, read from the environment (and validated) once at start.

Every variable is ``SYNC_<NAME>`` except ``DATABASE_URL``, which keeps its conventional name.
With no ``DATABASE_URL`` the server runs embedded: a SQLite file in ``SYNC_DATA_DIR``.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNC_", extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "SYNC_DATABASE_URL")
    )
    data_dir: Path = Path(".sync-data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)

    # Auth. Without a secret, the embedded mode makes one and keeps it in the data directory.
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "sync-server"
    jwt_audience: str = "sync-clients"
    access_token_ttl: int = Field(default=15 * 60, ge=30, le=24 * 3600)
    refresh_token_ttl: int = Field(default=7 * 24 * 3600, ge=60)
    # argon2id cost; the defaults follow OWASP's first recommendation (m=46 MiB, t=1, p=1)
    # raised to t=2. Tests lower them to keep the suite fast.
    argon2_memory_kib: int = Field(default=47104, ge=8)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)
    rate_limit_per_minute: int = Field(default=10, ge=1)
    rate_limit_per_account_per_minute: int = Field(default=5, ge=1)

    # Limits of the wire contract.
    max_ops_per_batch: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    pull_default_limit: int = Field(default=500, ge=1)
    pull_max_limit: int = Field(default=5000, ge=1)

    # Live updates: GET /v1/sync/stream and GET /v1/sync/pull?wait=.
    live_heartbeat: float = Field(default=15.0, gt=0, description="seconds between heartbeats")
    live_idle_timeout: float = Field(
        default=600.0, gt=0, description="a stream with no poke for this long is closed"
    )
    live_max_streams_per_user: int = Field(
        default=10, ge=1, description="live connections per user; a new one closes the oldest"
    )
    live_max_wait: int = Field(default=60, ge=1, le=300, description="longest long poll, seconds")

    # PostgreSQL connection pool and worker threads, per server process: with N workers the
    # database sees up to N x (pool_max_size + 1 listener) connections, which must fit in its
    # max_connections (100 by default) with room for migrations, backups and psql (`serve`
    # warns otherwise).
    # Every database call runs in a thread and holds a connection only while it runs; threads
    # beyond the pool wait for one (at most pool_timeout, then 503) while others do the
    # Python part of a request, so threads >= pool_max_size keeps the pool busy.
    pool_min_size: int = Field(default=2, ge=1)
    pool_max_size: int = Field(default=20, ge=1)
    pool_timeout: float = Field(
        default=5.0, gt=0, description="seconds a request waits for a connection before a 503"
    )
    threads: int = Field(default=40, ge=1, description="blocking-work threads per process")
    # How long the database may keep a request waiting before it answers 503 (Retry-After),
    # rather than hold the request, and whatever locks it has, without end.
    lock_timeout: float = Field(
        default=10.0,
        gt=0,
        description="seconds a statement waits for a lock another transaction holds before a "
        "503 (PostgreSQL lock_timeout; SQLite: the file held by another process)",
    )
    idle_in_transaction_timeout: float = Field(
        default=60.0,
        gt=0,
        description="PostgreSQL: seconds a transaction may sit idle before the server ends its "
        "session, releasing its locks",
    )
    tcp_keepalives_idle: int = Field(
        default=10, ge=1, description="PostgreSQL: seconds of silence before a keepalive probe"
    )
    tcp_keepalives_interval: int = Field(
        default=5, ge=1, description="PostgreSQL: seconds between unanswered keepalive probes"
    )
    tcp_keepalives_count: int = Field(
        default=3, ge=1, description="PostgreSQL: unanswered probes before a connection is dead"
    )

    cors_origins: Annotated[list[str], NoDecode] = []
    log_level: str = "info"
    log_json: bool = True
    migrate_on_start: bool | None = None
    """Apply pending migrations when the server starts; by default only in the embedded mode."""
    catch_up_interval: float = Field(default=1.0, ge=0)
    """Seconds between the rounds of the catch-up runner inside ``serve`` (0: no runner; run
    ``sync-server project`` instead)."""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @property
    def embedded(self) -> bool:
        return not self.database_url or self.database_url.startswith("sqlite:")

    @property
    def should_migrate_on_start(self) -> bool:
        return self.embedded if self.migrate_on_start is None else self.migrate_on_start

    @cached_property
    def display_database(self) -> str:
        """The database named for logs, without a password."""
        if not self.database_url:
            return f"sqlite:///{self.data_dir / 'sync.db'}"
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.database_url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            parts = parts._replace(netloc=netloc)
        return urlunsplit(parts)
