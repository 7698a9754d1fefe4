"""What a push answers: one ``OpResult`` per op, in order, and a cursor (PROTOCOL.md, "Push").

``omit_defaults`` keeps absent optional members out of the JSON, so an applied op reads
``{"op_id": …, "status": "applied", "version": 4}`` and nothing more.
"""

from __future__ import annotations

from typing import Any, Final, Literal
from uuid import UUID

import msgspec

Status = Literal["applied", "duplicate", "conflict", "rejected"]
ConflictReason = Literal["version_mismatch", "entity_deleted", "already_exists"]

# Error codes of a rejected op. Kept as plain strings on the wire (not a Literal) so that an
# older client can still decode a response carrying a code added later.
VALIDATION_FAILED: Final = "validation_failed"
NOT_FOUND: Final = "not_found"
INSUFFICIENT_STOCK: Final = "insufficient_stock"
UNKNOWN_ENTITY: Final = "unknown_entity"
UNKNOWN_ACTION: Final = "unknown_action"
INVALID_REFERENCE: Final = "invalid_reference"
UNSUPPORTED_SCHEMA: Final = "unsupported_schema"


# gc=False (here and below): made by the thousand in a push and never part of a reference
# cycle, so the cyclic garbage collector need not track them (msgspec's option).
class FieldError(msgspec.Struct, frozen=True, gc=False):
    """One invalid value: ``path`` like ``data.fee`` (the push layer prefixes ``ops[3].``)."""

    path: str
    message: str


class OpError(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    code: str
    message: str
    errors: list[FieldError] | None = None


class Conflict(msgspec.Struct, frozen=True, gc=False):
    """The server's side of a conflict: enough for the client to rebase and resend."""

    reason: ConflictReason
    server_version: int
    server_data: dict[str, Any]
    fields: list[str]


class OpResult(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    op_id: UUID
    status: Status
    version: int | None = None
    conflict: Conflict | None = None
    error: OpError | None = None
    original: OpResult | None = None
    """For ``duplicate``: the result the op got the first time."""


class PushResponse(msgspec.Struct, frozen=True):
    results: list[OpResult]
    cursor: str
