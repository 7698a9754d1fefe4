"""What a pull answers (PROTOCOL.md, "Pull")."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import msgspec


class Change(msgspec.Struct, frozen=True, omit_defaults=True):
    """One entity in its latest state. ``data`` is the read row, derived fields included; for a
    tombstone (``op: "delete"``), the row's id, version, times and ``deleted_at`` only."""

    entity: str
    id: UUID
    op: Literal["upsert", "delete"]
    version: int
    data: dict[str, Any] | None = None


class PullPage(msgspec.Struct, frozen=True):
    changes: list[Change]
    cursor: str
    has_more: bool
    reset: bool = False
