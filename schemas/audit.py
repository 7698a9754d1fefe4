"""What the audit endpoints answer (PROTOCOL.md, "Audit and replay")."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec


class LoggedEvent(msgspec.Struct, frozen=True):
    """One event of the log, its data in the current schema version."""

    position: int
    entity: str
    id: UUID
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, str]
    """Who caused it and from where: actor, client_id, device, op_id, request_id, client_ts,
    source (those that were known)."""
    recorded_at: datetime


class EventsPage(msgspec.Struct, frozen=True):
    events: list[LoggedEvent]
    next: int
    """Pass as ``after`` for the next page."""
    has_more: bool


class EntityVersion(msgspec.Struct, frozen=True, omit_defaults=True):
    """One version of an entity: who made it, when, and what it changed."""

    version: int
    type: str
    recorded_at: datetime
    changes: dict[str, tuple[Any, Any]]
    """field -> [before, after], derived fields included."""
    data: dict[str, Any]
    """The event's own data (for an action: its payload, e.g. a sale's price and time)."""
    position: int
    actor: str | None = None
    client_id: str | None = None
    device: str | None = None
    op_id: str | None = None
    source: str | None = None


class HistoryPage(msgspec.Struct, frozen=True):
    entity: str
    id: UUID
    versions: list[EntityVersion]
    next: int
    """Pass as ``after`` (a version) for the next page."""
    has_more: bool
