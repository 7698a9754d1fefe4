"""Versioned SQL migrations, recorded in ``schema_migrations``, applied at most once.

Each package that owns tables ships its own set (``event_store`` the log, ``projections`` the
read tables, ``sync_server`` the accounts), as ``migrations/<backend>/NNNN_name.sql`` files.
A migration is never edited once released: its checksum is recorded, and a changed file is an
error rather than a silent divergence between databases.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from .errors import MigrationError
from .store import EventStore

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    applied_at  TEXT NOT NULL,
    PRIMARY KEY (component, version)
)
"""


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationSet:
    """The migrations of one component, found in ``<package>/migrations/<backend>/``."""

    component: str
    package: str

    def load(self, backend: str) -> list[Migration]:
        folder: Traversable = resources.files(self.package) / "migrations" / backend
        found = []
        for entry in folder.iterdir():
            match = _NAME.match(entry.name)
            if match:
                found.append(
                    Migration(self.component, int(match[1]), match[2], entry.read_text("utf-8"))
                )
        found.sort(key=lambda m: m.version)
        versions = [m.version for m in found]
        if versions != list(range(1, len(found) + 1)):
            raise MigrationError(f"{self.component}: migrations must be numbered 1, 2, 3…")
        return found


EVENT_LOG = MigrationSet("event_store", "event_store")


def _applied(store: EventStore) -> dict[tuple[str, int], str]:
    with store.snapshot() as sql:
        try:
            rows = sql.fetchall("SELECT component, version, checksum FROM schema_migrations")
        except Exception:
            return {}
    return {(c, v): s for c, v, s in rows}


def pending(store: EventStore, sets: list[MigrationSet]) -> list[Migration]:
    """Migrations not yet applied; raises if an applied one was edited since."""
    return _waiting(sets, store.backend, _applied(store))


def migrate(store: EventStore, sets: list[MigrationSet]) -> list[Migration]:
    """Apply what is pending, each migration in its own transaction; return what was applied.

    Safe to run from several processes at once on PostgreSQL: an advisory lock lets one through
    at a time, and it reads what is applied once it holds the lock. (The embedded SQLite mode
    is a single process.)
    """
    if store.backend == "postgres":
        return _migrate_postgres(store, sets)
    return _migrate_sqlite(store, sets)


def _migrate_postgres(store: EventStore, sets: list[MigrationSet]) -> list[Migration]:
    from .postgres import LOCK_MIGRATE, SCHEMA_KEY

    done = []
    with store.sql() as sql:
        # Waiting here is the point (another process is migrating), however long it takes: not
        # the lock timeout of ordinary calls.
        sql.execute("SET LOCAL lock_timeout = 0")
        sql.execute(f"SELECT pg_advisory_xact_lock(?, {SCHEMA_KEY})", [LOCK_MIGRATE])
        sql.script(_CREATE)
        rows = sql.fetchall("SELECT component, version, checksum FROM schema_migrations")
        applied = {(c, v): s for c, v, s in rows}
        for migration in _waiting(sets, store.backend, applied):
            sql.script(migration.sql)
            sql.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?, ?, now()::text)",
                [migration.component, migration.version, migration.name, migration.checksum],
            )
            done.append(migration)
    return done


def _migrate_sqlite(store: EventStore, sets: list[MigrationSet]) -> list[Migration]:
    from .sqlite import SqliteStore

    assert isinstance(store, SqliteStore)
    done = []
    with store.raw_write() as connection:
        connection.execute(_CREATE)
        rows = connection.execute(
            "SELECT component, version, checksum FROM schema_migrations"
        ).fetchall()
        applied = {(c, v): s for c, v, s in rows}
        for migration in _waiting(sets, store.backend, applied):
            record = (
                "INSERT INTO schema_migrations VALUES ("
                f"'{migration.component}', {migration.version}, '{migration.name}', "
                f"'{migration.checksum}', datetime('now'));"
            )
            # executescript commits what is open first; BEGIN…COMMIT makes each file atomic.
            try:
                connection.executescript(f"BEGIN IMMEDIATE;\n{migration.sql}\n{record}\nCOMMIT;")
            except Exception as error:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise MigrationError(
                    f"migration {migration.component} {migration.version:04d} failed: {error}"
                ) from error
            done.append(migration)
    return done


def _waiting(
    sets: list[MigrationSet], backend: str, applied: dict[tuple[str, int], str]
) -> list[Migration]:
    waiting = []
    for migration_set in sets:
        for migration in migration_set.load(backend):
            recorded = applied.get((migration.component, migration.version))
            if recorded is None:
                waiting.append(migration)
            elif recorded != migration.checksum:
                raise MigrationError(
                    f"migration {migration.component} {migration.version:04d}_{migration.name} "
                    "was edited after it was applied; add a new migration instead"
                )
    return waiting
