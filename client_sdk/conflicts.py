"""Settling an op the server answered ``conflict``: resend it, drop it, or part of each.

Pure: (the queued op, the server's conflict, the entity's policy) -> ``Settlement``.

First a three-way comparison, per field, of the value the user saw when making the op
(``seen``), the server's current value and the op's value. A field the server reports as
changed but whose value is still the one the user saw is no real conflict (the change was this
device's own earlier op, or was undone since): when no field is really in conflict the op is
resent on the server's version, whatever the policy, so a device never conflicts with itself.

Real conflicts go to the entity's policy:

* ``server_wins``: the op is dropped; the user's values are reported as lost.
* ``client_wins``: the op is resent on the server's version with a new op_id (the server
  answers a reused op_id with its first outcome).
* ``merge``: field by field, the user's value where only the user changed it, the server's where
  both did (reported as lost). A deletion wins over edits: it is resent.
* a callable: receives a ``ConflictInfo`` (both states) and returns one of the names above, or
  the values to write for the fields in conflict: they are sent, with the op's fields that are
  in no conflict, on the server's version (``{}`` resolves every conflicting field to the
  server's value). The app decided, so nothing is reported as lost.

Conflicts no policy can change are dropped and reported: an update of an entity deleted
elsewhere (``entity_deleted``; a deletion of it is simply done), and a create whose id exists
(``already_exists``; ``client_wins`` turns it into an update of the fields that differ).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from uuid import UUID

from schemas.entities import CREATE_ONLY, DELETE, UPDATE, writable_fields
from schemas.results import Conflict
from schemas.validate import validate_fields

from .store import QueuedOp
from .wire import to_wire

Strategy = Literal["server_wins", "client_wins", "merge"]
STRATEGIES: Final = ("server_wins", "client_wins", "merge")
_ABSENT: Final = object()


@dataclass(frozen=True)
class ConflictInfo:
    """What a conflict callback sees: the op, the user's side and the server's side."""

    entity: str
    id: UUID
    action: str
    reason: str
    mine: Mapping[str, Any]
    """The fields the op writes (empty for a delete)."""
    seen: Mapping[str, Any] | None
    """The values the user saw when making the op: the common base (None for a create)."""
    theirs: Mapping[str, Any]
    """The server's current row, derived fields included."""
    server_version: int
    fields: tuple[str, ...]
    """The fields really in conflict: changed on the server away from what the user saw."""


Resolver = Callable[[ConflictInfo], "Strategy | Mapping[str, Any]"]
Policy = Strategy | Resolver


@dataclass(frozen=True)
class Resend:
    """Replace the op by this one (same place in the outbox, a new op_id)."""

    action: str
    data: dict[str, Any]
    base_version: int
    seen: dict[str, Any]


@dataclass(frozen=True)
class Loss:
    """What to report to the app: values of the user that did not make it."""

    code: str
    message: str
    lost_fields: tuple[str, ...]
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Settlement:
    resend: Resend | None = None
    loss: Loss | None = None


def settle(op: QueuedOp, conflict: Conflict, policy: Policy) -> Settlement:
    theirs = conflict.server_data
    if conflict.reason == "entity_deleted":
        if op.action == DELETE:
            return Settlement()  # what the user wanted is done
        return Settlement(
            loss=Loss(
                "entity_deleted",
                f"the {op.entity} was deleted on another device",
                tuple(op.data),
            )
        )
    if conflict.reason == "already_exists":
        return _settle_create(op, conflict, policy)
    seen = op.seen or {}
    real = tuple(f for f in conflict.fields if theirs.get(f, _ABSENT) != seen.get(f, _ABSENT))
    if not real:
        return Settlement(resend=_resend(op.entity, op.action, op.data, conflict))
    choice = _choose(policy, _info(op, conflict, seen, real))
    if isinstance(choice, Mapping):
        return _settle_with_fields(op, conflict, real, choice)
    if choice == "client_wins":
        return Settlement(resend=_resend(op.entity, op.action, op.data, conflict))
    lost = real if op.action == DELETE else tuple(op.data)
    if choice == "merge":
        if op.action == DELETE:
            return Settlement(resend=_resend(op.entity, DELETE, {}, conflict))
        kept = {k: v for k, v in op.data.items() if k not in real}
        lost = tuple(k for k in op.data if k in real)
        return Settlement(
            resend=_resend(op.entity, UPDATE, kept, conflict) if kept else None,
            loss=_lost_to_server(op, conflict.reason, lost),
        )
    return Settlement(loss=_lost_to_server(op, conflict.reason, lost))


def _settle_create(op: QueuedOp, conflict: Conflict, policy: Policy) -> Settlement:
    """Two devices created the same id. There is no common base: every field whose value
    differs is a real conflict."""
    theirs = conflict.server_data
    differing = tuple(k for k, v in op.data.items() if theirs.get(k, _ABSENT) != v)
    if not differing:
        return Settlement()  # the same entity, created twice
    choice = _choose(policy, _info(op, conflict, None, differing))
    if isinstance(choice, Mapping):
        return _settle_with_fields(op, conflict, differing, choice)
    if choice == "client_wins":
        fixed = CREATE_ONLY.get(op.entity, {})
        data = {k: op.data[k] for k in differing if k not in fixed}
        lost = tuple(k for k in differing if k in fixed)
        return Settlement(
            resend=_resend(op.entity, UPDATE, data, conflict) if data else None,
            loss=_lost_to_server(op, conflict.reason, lost) if lost else None,
        )
    return Settlement(loss=_lost_to_server(op, conflict.reason, differing))


def _settle_with_fields(
    op: QueuedOp, conflict: Conflict, real: tuple[str, ...], fields: Mapping[str, Any]
) -> Settlement:
    """A callback's answer: its fields, with the op's fields that are in no conflict, written
    on the server's state (as an update, whatever the op was)."""
    kept = {k: v for k, v in op.data.items() if k not in real} if op.action == UPDATE else {}
    data = {**kept, **to_wire(fields)}
    if not data:
        return Settlement()
    clean = validate_fields(op.entity, data, partial=True)
    if isinstance(clean, list):
        errors = [{"path": e.path, "message": e.message} for e in clean]
        message = "the conflict callback returned invalid fields"
        return Settlement(loss=Loss("invalid_resolution", message, tuple(op.data), errors))
    return Settlement(resend=_resend(op.entity, UPDATE, clean, conflict))


def _info(
    op: QueuedOp, conflict: Conflict, seen: Mapping[str, Any] | None, fields: tuple[str, ...]
) -> ConflictInfo:
    return ConflictInfo(
        entity=op.entity,
        id=op.id,
        action=op.action,
        reason=conflict.reason,
        mine=dict(op.data),
        seen=seen,
        theirs=conflict.server_data,
        server_version=conflict.server_version,
        fields=fields,
    )


def _choose(policy: Policy, info: ConflictInfo) -> Strategy | Mapping[str, Any]:
    choice = policy(info) if callable(policy) else policy
    if isinstance(choice, Mapping) or choice in STRATEGIES:
        return choice
    raise ValueError(f"a conflict policy must give one of {STRATEGIES} or fields, not {choice!r}")


def _resend(entity: str, action: str, data: Mapping[str, Any], conflict: Conflict) -> Resend:
    """The op to send instead, on the server's version; ``seen`` is now the server's state."""
    theirs = conflict.server_data
    return Resend(
        action,
        dict(data),
        conflict.server_version,
        seen_values(entity, action, data, theirs),
    )


def _lost_to_server(op: QueuedOp, reason: str, lost: tuple[str, ...]) -> Loss:
    if op.action == DELETE:
        message = f"the {op.entity} was changed on another device; the deletion was not applied"
    else:
        message = f"the {op.entity} was changed on another device; the server's values were kept"
    return Loss(reason, message, lost)


def seen_values(
    entity: str, action: str, data: Mapping[str, Any], current: Mapping[str, Any]
) -> dict[str, Any]:
    """The values ``current`` holds for the fields an op is about (every writable field for a
    deletion): the base of the three-way comparison when the op meets a conflict."""
    names = writable_fields(entity) if action == DELETE else tuple(data)
    return {name: current.get(name) for name in names}
