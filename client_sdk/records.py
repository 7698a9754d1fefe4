"""What the SDK hands to the app: records, queued ops, rejections, sync reports."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from uuid import UUID

META: Final = ("id", "version", "created_at", "updated_at", "deleted_at")
"""Keys of a pulled row that describe the row rather than the entity."""


@dataclass(frozen=True)
class Record(Mapping[str, Any]):
    """One entity as the app sees it: the last pulled state with the local ops on top.

    Reads like a read-only mapping of its fields (``record["fee"]``, ``record.get("net")``).
    Derived fields (``net``, ``low_stock``…) come from the server: while ``pending`` is true
    they hold the value of the last pull, and an entity created offline has none until it has
    synced (``get`` returns None).
    """

    entity: str
    id: UUID
    version: int | None
    """The server version this record builds on; None until the server has confirmed it."""
    pending: bool
    """Local ops on this entity are not reflected by a pull yet."""
    fields: Mapping[str, Any]
    created_at: str | None = None
    updated_at: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)


@dataclass(frozen=True)
class PendingOp:
    """An op waiting in the outbox (``client.pending()``)."""

    op_id: UUID
    entity: str
    id: UUID
    action: str
    data: Mapping[str, Any]
    queued_at: str
    sent: bool
    """It may have reached the server already (its answer is not known yet)."""
    applied_version: int | None
    """Set once the server applied it; it leaves the outbox when a pull brings that version."""


RejectionKind = Literal["rejected", "conflict"]


@dataclass(frozen=True)
class Rejection:
    """An op the server refused, or a conflict in which some of the user's values were lost.

    Kept in the store until dismissed (``client.dismiss``), so that an app restarted after a
    sync still learns what did not make it.
    """

    seq: int
    op_id: UUID
    entity: str
    id: UUID
    action: str
    data: Mapping[str, Any]
    """What the op wrote."""
    kind: RejectionKind
    code: str
    """The error code (``insufficient_stock``, ``validation_failed``…) or the conflict reason
    (``version_mismatch``, ``entity_deleted``, ``already_exists``)."""
    message: str
    recorded_at: str
    errors: tuple[Mapping[str, Any], ...] = ()
    """Field errors, ``{"path", "message"}``, for a rejected op."""
    lost_fields: tuple[str, ...] = ()
    """For a conflict: the fields whose value from this op did not make it."""
    server_version: int | None = None
    server_data: Mapping[str, Any] | None = None
    """For a conflict: the server's state that won."""


@dataclass
class SyncReport:
    """What one ``sync()`` did."""

    applied: int = 0
    """Ops the server applied (including ones it had applied before: resent after a lost
    answer)."""
    resent: int = 0
    """Ops resent after a conflict (on the server's version, with a new op_id)."""
    rejections: list[Rejection] = field(default_factory=list)
    """New rejections recorded by this sync."""
    pulled: int = 0
    """Changes received."""
    resets: int = 0
    """Times the server asked for the local copy to be dropped and pulled again."""
    pending: int = 0
    """Ops still in the outbox afterwards, not yet applied."""
