"""Create, update and delete, the same for every entity; ``Rules`` holds what differs.

The order of the checks is part of the contract, so it is written once here:

1. the op itself: payload and ``base_version`` (``validation_failed``, every problem at once);
2. existence: ``already_exists`` on create, ``not_found`` otherwise;
3. for update and delete: a ``base_version`` ahead of the entity (``validation_failed``), then
   a deleted entity (``entity_deleted``), then the merge policy (``version_mismatch``);
4. the entity's own rules on the values that change (references, uniqueness).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from event_store.events import StreamId
from schemas.entities import ACTION_PAYLOADS, CREATE, UPDATE, is_entity
from schemas.events import ACTION_EVENTS, created, deleted, updated
from schemas.ops import Op
from schemas.results import NOT_FOUND, FieldError
from schemas.validate import Clean, validate_action, validate_fields

from . import merge
from .decisions import (
    Accepted,
    Decision,
    EntityState,
    PendingEvent,
    References,
    Rejected,
    conflicted,
    invalid,
    rejected,
)

Check = Callable[[Op, Mapping[str, Any], References], Rejected | None]
"""An entity's rule on the values a create or update sets (only the ones that change)."""
Cascade = Callable[[EntityState, References], list[PendingEvent]]
"""Events a deletion brings along (a show's costs)."""
ActionDecider = Callable[[Op, EntityState | None, References, "Payload"], Decision]
Invariant = Callable[[EntityState, Mapping[str, Any]], Rejected | None]
"""A commutative action's check against the current state (stock never below zero…)."""


def _no_check(op: Op, values: Mapping[str, Any], refs: References) -> Rejected | None:
    return None


def _no_cascade(state: EntityState, refs: References) -> list[PendingEvent]:
    return []


Payload = Clean | list[FieldError] | None
"""An op's payload checked on its own (``check_payload``): its canonical fields, what is wrong
with them, or None for an op whose payload is not read (a delete, an unknown action)."""


def check_payload(op: Op) -> Payload:
    """The part of deciding that needs no state: the op's data checked against its entity's
    Struct (create, update) or its action's (``record_sale``…). Pure, so a caller may run it
    ahead of the rest, while the rows it will decide on are still on their way."""
    if not is_entity(op.entity):
        return None
    if op.action == CREATE:
        return validate_fields(op.entity, op.data, partial=False)
    if op.action == UPDATE:
        return validate_fields(op.entity, op.data, partial=True)
    if (op.entity, op.action) in ACTION_PAYLOADS:
        return validate_action(op.entity, op.action, op.data)
    return None


@dataclass(frozen=True)
class Rules:
    entity: str
    check: Check = _no_check
    cascade: Cascade = _no_cascade
    actions: Mapping[str, ActionDecider] = field(default_factory=dict)


def create(
    rules: Rules, op: Op, state: EntityState | None, refs: References, clean: Payload
) -> Decision:
    assert clean is not None
    if isinstance(clean, list):
        return invalid(clean)
    if state is not None:
        # Deleted ones too: ids are never reused, or a late device would resurrect a tombstone.
        return conflicted("already_exists", state)
    problem = rules.check(op, clean, refs)
    if problem is not None:
        return problem
    return Accepted([PendingEvent(StreamId(rules.entity, op.id), created(rules.entity), clean)])


def update(
    rules: Rules, op: Op, state: EntityState | None, refs: References, clean: Payload
) -> Decision:
    assert clean is not None
    base = op.base_version
    base_error = merge.base_version_error(base)
    if base is None or base_error is not None or isinstance(clean, list):
        errors = [base_error] if base_error else []
        return invalid(errors + (clean if isinstance(clean, list) else []))
    found = _existing(rules, op, state, base)
    if not isinstance(found, EntityState):
        return found
    conflict = merge.update_conflict(found, base, clean)
    if conflict is not None:
        return conflict
    changes = merge.changes(clean, found)
    if not changes:
        return Accepted([])
    problem = rules.check(op, changes, refs)
    if problem is not None:
        return problem
    return Accepted([PendingEvent(found.stream, updated(rules.entity), changes)])


def delete(rules: Rules, op: Op, state: EntityState | None, refs: References) -> Decision:
    # A delete's data is ignored: clients may send the last state they saw along with it.
    base = op.base_version
    base_error = merge.base_version_error(base)
    if base is None or base_error is not None:
        return invalid([base_error] if base_error else [])
    found = _existing(rules, op, state, base)
    if not isinstance(found, EntityState):
        return found
    conflict = merge.delete_conflict(found, base)
    if conflict is not None:
        return conflict
    events = [PendingEvent(found.stream, deleted(rules.entity), {})]
    return Accepted(events + rules.cascade(found, refs))


def commutative(entity: str, action: str, invariant: Invariant) -> ActionDecider:
    """A decider for an action that commutes: ``base_version`` is ignored, invariants decide."""
    event_type = ACTION_EVENTS[(entity, action)]
    assert (entity, action) in ACTION_PAYLOADS

    def decide(op: Op, state: EntityState | None, refs: References, payload: Payload) -> Decision:
        assert payload is not None
        if isinstance(payload, list):
            return invalid(payload)
        if state is None:
            return _not_found(entity, op)
        if state.deleted:
            return conflicted("entity_deleted", state)
        problem = invariant(state, payload)
        if problem is not None:
            return problem
        return Accepted([PendingEvent(state.stream, event_type, payload)])

    return decide


def _existing(rules: Rules, op: Op, state: EntityState | None, base: int) -> EntityState | Decision:
    """The live entity an update or delete at ``base`` may apply to, or why there is none."""
    if state is None:
        return _not_found(rules.entity, op)
    ahead = merge.ahead_of(state, base)
    if ahead is not None:
        return ahead
    if state.deleted:
        return conflicted("entity_deleted", state)
    return state


def _not_found(entity: str, op: Op) -> Rejected:
    return rejected(NOT_FOUND, f"{entity} {op.id} not found")
