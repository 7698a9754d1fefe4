"""What a running server holds: settings, the store, and the services built on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from event_store import EventStore, MigrationSet, Timeouts, migrate, open_store
from event_store.integrity import seal
from event_store.migrator import EVENT_LOG, Migration

from .settings import Settings

if TYPE_CHECKING:
    from starlette.requests import Request

# Every component's migrations, in the order their tables depend on each other.
MIGRATIONS: list[MigrationSet] = [
    EVENT_LOG,
    MigrationSet("projections", "projections"),
    MigrationSet("accounts", "sync_server"),
]


def migrate_all(store: EventStore) -> list[Migration]:
    """Apply pending migrations, then hash any events recorded before the hash chain existed
    (a no-op, one indexed query, once they all are)."""
    applied = migrate(store, MIGRATIONS)
    seal(store)
    return applied


def _registry() -> Any:
    try:
        from schemas.events import build_registry
    except ImportError:  # the event catalogue is optional for the store alone
        return None
    return build_registry()


def connect(settings: Settings) -> EventStore:
    return open_store(
        settings.database_url,
        data_dir=str(settings.data_dir),
        registry=_registry(),
        pool_min=settings.pool_min_size,
        pool_max=settings.pool_max_size,
        pool_timeout=settings.pool_timeout,
        timeouts=Timeouts(
            lock=settings.lock_timeout,
            idle_in_transaction=settings.idle_in_transaction_timeout,
            keepalives_idle=settings.tcp_keepalives_idle,
            keepalives_interval=settings.tcp_keepalives_interval,
            keepalives_count=settings.tcp_keepalives_count,
        ),
    )


@dataclass
class Services:
    settings: Settings
    store: EventStore
    cursor_key: bytes = b""
    """The key pull cursors are signed with (derived from the token secret at start)."""
    extras: dict[str, Any] = field(default_factory=dict)


def services_of(request: Request) -> Services:
    """The services of the app that serves ``request`` (set when it starts)."""
    services: Services = request.app.state.services
    return services
