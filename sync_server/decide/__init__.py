"""Deciding: one client op and the current state in, events or a refusal out. Pure.

``decide`` never touches storage; the caller loads what ``references_needed`` names (see
``inputs.py``), then appends the accepted events and projects them.
"""

from __future__ import annotations

from typing import Final

from schemas.entities import CREATE, DELETE, UPDATE, actions_of
from schemas.ops import Op
from schemas.results import UNKNOWN_ACTION, UNKNOWN_ENTITY

from . import costs, crud, products, shows, workouts
from .crud import Payload, check_payload
from .decisions import (
    Accepted,
    Conflicted,
    Decision,
    EntityState,
    PendingEvent,
    References,
    Rejected,
    rejected,
)
from .inputs import Needs, references_from_rows, references_needed, state_from_rows

RULES: dict[str, crud.Rules] = {
    rules.entity: rules for rules in (shows.RULES, costs.RULES, workouts.RULES, products.RULES)
}

_NO_REFERENCES = References()


class _Unchecked:
    """The default of ``decide``'s ``payload``: not worked out yet."""


UNCHECKED: Final = _Unchecked()


def decide(
    op: Op,
    state: EntityState | None,
    refs: References = _NO_REFERENCES,
    payload: Payload | _Unchecked = UNCHECKED,
) -> Decision:
    """What ``op`` does to the entity in ``state`` (None: it does not exist).

    ``payload``: ``check_payload(op)``, when the caller worked it out ahead (a push does, while
    its rows load); by default it is worked out here."""
    if state is not None and (state.entity, state.id) != (op.entity, op.id):
        raise ValueError(
            f"state of {state.entity} {state.id} given for an op on {op.entity} {op.id}"
        )
    rules = RULES.get(op.entity)
    if rules is None:
        known = ", ".join(RULES)
        return rejected(UNKNOWN_ENTITY, f"unknown entity {op.entity!r}; known: {known}")
    if isinstance(payload, _Unchecked):
        payload = check_payload(op)
    if op.action == CREATE:
        return crud.create(rules, op, state, refs, payload)
    if op.action == UPDATE:
        return crud.update(rules, op, state, refs, payload)
    if op.action == DELETE:
        return crud.delete(rules, op, state, refs)
    action = rules.actions.get(op.action)
    if action is None:
        known = ", ".join(sorted(actions_of(op.entity)))
        return rejected(
            UNKNOWN_ACTION, f"unknown action {op.action!r} for {op.entity}; known: {known}"
        )
    return action(op, state, refs, payload)


__all__ = [
    "Accepted",
    "Conflicted",
    "Decision",
    "EntityState",
    "Needs",
    "Payload",
    "PendingEvent",
    "References",
    "Rejected",
    "check_payload",
    "decide",
    "references_from_rows",
    "references_needed",
    "state_from_rows",
]
