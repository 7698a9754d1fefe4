"""A REST write is one op pushed through ``push.py``: the command path of every sync client.

So the log stays the only source of truth: a ``PATCH`` is an ``update`` op decided, appended and
projected exactly as if a device had queued it, with ``source: "api"`` in its events' metadata.
This module runs that op and turns its result into HTTP terms:

* ``applied`` is a success (the caller reads the row back as a pull shows it);
* ``conflict``: ``version_mismatch`` and ``already_exists`` are 409 with the current row and
  version; ``entity_deleted`` is 404 (a deleted entity is gone for REST, as on ``GET``);
* ``rejected``: ``not_found`` is 404; ``insufficient_stock`` is 409, because the request is
  well-formed and may succeed once the stock has changed (a state conflict, not bad input);
  every other code (``validation_failed``, ``invalid_reference``…) is 422 with the field errors,
  their paths as the REST body spells them (``fee``, not ``data.fee``).

A retried op (the same op id: an ``Idempotency-Key``, ``idempotency.py``) answers its first
outcome again, whatever that was, so the retry gets the status the first request got.

Without ``If-Match`` a write is unconditional: push decides it at the entity's version inside
its own transaction (``at_current_version``), so no concurrent writer can make it conflict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID, uuid4

import msgspec

from event_store import EventStore
from projections import tables
from projections.rows import ReadRow
from schemas.ops import Op, PushRequest
from schemas.results import INSUFFICIENT_STOCK, NOT_FOUND, Conflict, OpResult

from . import metrics
from .problems import FieldProblem, Problem
from .push import Origin, push

log = logging.getLogger("sync_server.api")

SOURCE: Final = "api"


@dataclass(frozen=True)
class Write:
    entity: str
    table: str
    id: UUID
    action: str
    data: dict[str, Any]
    base_version: int | None = None
    """``If-Match``; None: unconditional (for update and delete)."""
    op_id: UUID = field(default_factory=uuid4)
    """Derived from an ``Idempotency-Key``, or fresh."""


def read_row(store: EventStore, owner: UUID, table: str, id_: UUID) -> ReadRow | None:
    """The row as a pull shows it, tombstones included (the caller decides what they mean)."""
    with store.snapshot() as sql:
        return tables.load_rows(sql, owner, [(table, id_)]).get((table, id_))


def execute(store: EventStore, origin: Origin, write: Write) -> OpResult:
    """Push ``write`` as one op of its own; its outcome, or the first one if it is a retry."""
    op = Op(
        op_id=write.op_id,
        entity=write.entity,
        id=write.id,
        action=write.action,
        base_version=write.base_version,
        data=write.data,
    )
    pushed = push(store, PushRequest(origin.client_id, [op]), origin, at_current_version=True)
    metrics.record_ops(SOURCE, pushed.results, len(pushed.events))
    result = pushed.results[0]
    return result.original if result.status == "duplicate" and result.original else result


def refusal(result: OpResult, write: Write, current: ReadRow | None) -> Problem:
    """The problem for a result that is not ``applied``; ``current`` is the row as it is now."""
    what = f"{write.entity} {write.id}"
    problem = _refusal(result, what, current)
    log.warning(
        "api op refused",
        extra={
            "entity": write.entity,
            "action": write.action,
            "status": problem.status,
            "code": problem.code,
        },
    )
    return problem


def _refusal(result: OpResult, what: str, current: ReadRow | None) -> Problem:
    conflict = result.conflict
    if conflict is not None:
        if conflict.reason == "entity_deleted":
            return Problem(404, NOT_FOUND, f"{what} was deleted")
        if conflict.reason == "already_exists":
            return _conflict(
                "already_exists", f"{what} exists already", current, conflict.fields, conflict
            )
        detail = (
            f"{what} is at version {conflict.server_version} and "
            f"{', '.join(conflict.fields) or 'it'} changed since the version given"
        )
        return _conflict("version_conflict", detail, current, conflict.fields, conflict)
    error = result.error
    if error is None:  # a duplicate without its first outcome: push always gives it
        return Problem(409, "duplicate", f"{what}: this op was already applied")
    if error.code == NOT_FOUND:
        return Problem(404, NOT_FOUND, f"{what} not found")
    if error.code == INSUFFICIENT_STOCK:
        return _conflict(INSUFFICIENT_STOCK, error.message, current, [], None)
    errors = [FieldProblem(_rest_path(field.path), field.message) for field in error.errors or []]
    detail = "the body has invalid fields" if errors else error.message
    return Problem(422, error.code, detail, errors=errors or None)


def _conflict(
    code: str,
    detail: str,
    current: ReadRow | None,
    fields: list[str],
    conflict: Conflict | None,
) -> Problem:
    extra: dict[str, Any] = {"fields": fields}
    headers: dict[str, str] = {}
    if current is not None and not current.deleted:
        extra["current"] = msgspec.json.decode(tables.body_of(current))
        extra["version"] = current.version
        headers["ETag"] = etag(current.version)
    elif conflict is not None:
        extra["version"] = conflict.server_version
    return Problem(409, code, detail, headers=headers, extra=extra)


def _rest_path(path: str) -> str:
    """An op's field path as a REST client wrote it: the body's fields at the top, the op's
    ``base_version`` as the ``If-Match`` header (one ahead of the entity is ``validation_failed``
    by the merge policy, PROTOCOL.md: 422 here, not a conflict)."""
    if path == "base_version":
        return "If-Match"
    return path.removeprefix("data.") if path != "data" else "$"


def etag(version: int) -> str:
    return f'"{version}"'
