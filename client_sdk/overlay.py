"""What the app reads: the pulled rows with the outbox applied on top, optimistically.

Pure functions of (row, ops). Nothing here is stored: the view is recomputed on every read, so
after a pull the queued ops are automatically replayed on the new server state (the rebase), and
an op resolved or dropped after a conflict stops showing at once.

Derived fields (``net``, ``costs_total``, ``low_stock``, ``volume_kg``…) are the server's and
are never recomputed here: while an op is pending they keep the value of the last pull, and an
entity created offline has none until it has synced. ``LocalState.pending`` says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol
from uuid import UUID

from schemas.entities import CREATE, DELETE, UPDATE


class OpLike(Protocol):
    @property
    def action(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def acked_version(self) -> int | None: ...


@dataclass(frozen=True)
class LocalState:
    version: int | None
    """The server version this state builds on: None for an entity the server has not
    confirmed yet."""
    deleted: bool
    data: dict[str, Any]
    pending: bool
    """True while some local op on the entity is not reflected by a pull yet."""


def view(
    version: int | None, deleted: bool, data: Mapping[str, Any] | None, ops: Sequence[OpLike]
) -> LocalState | None:
    """The entity as the app sees it: the pulled row (``version`` None if there is none), then
    ``ops`` (the entity's outbox entries, in order). None: the entity does not exist."""
    state = (
        None if version is None else LocalState(version, deleted, dict(data or {}), pending=False)
    )
    for op in ops:
        if _pulled_already(op, state):
            continue
        state = apply(state, op)
        if state is not None and op.acked_version is not None:
            state = replace(state, version=max(state.version or 0, op.acked_version))
    return state


def _pulled_already(op: OpLike, state: LocalState | None) -> bool:
    """An op the server applied, whose version the pulled row has reached."""
    acked, pulled = op.acked_version, None if state is None else state.version
    return acked is not None and pulled is not None and acked <= pulled


def apply(state: LocalState | None, op: OpLike) -> LocalState | None:
    """``state`` after ``op``, as far as the client can tell before the server decides.

    Ops the server is bound to refuse as written (an update of a missing or deleted entity, a
    create of an id that exists) leave the state as it is; the conflict strategy settles them.
    """
    if op.action == CREATE:
        if state is not None:
            return replace(state, pending=True)
        return LocalState(None, False, dict(op.data), pending=True)
    if state is None:
        return None
    if state.deleted:
        return replace(state, pending=True)
    if op.action == UPDATE:
        return replace(state, data={**state.data, **op.data}, pending=True)
    if op.action == DELETE:
        return replace(state, deleted=True, pending=True)
    return replace(state, data=_ACTIONS[op.action](state.data, op.data), pending=True)


def _log_set(data: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    # The server's rule (PROTOCOL.md, log_set): the set goes to the first exercise of that
    # name, or to a new exercise at the end.
    new_set = {key: payload[key] for key in ("reps", "weight", "unit")}
    exercises = [{**e, "sets": list(e["sets"])} for e in data.get("exercises", [])]
    for exercise in exercises:
        if exercise["name"] == payload["exercise"]:
            exercise["sets"].append(new_set)
            break
    else:
        exercises.append({"name": payload["exercise"], "sets": [new_set]})
    return {**data, "exercises": exercises}


def _adjust_stock(data: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    return {**data, "quantity": data.get("quantity", 0) + payload["delta"]}


def _record_sale(data: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    return {**data, "quantity": data.get("quantity", 0) - payload["quantity"]}


_ACTIONS = {
    "log_set": _log_set,
    "adjust_stock": _adjust_stock,
    "record_sale": _record_sale,
}


def hides_cost(cost: LocalState, shows: Mapping[UUID, LocalState | None]) -> bool:
    """A cost of a deleted show: the server deletes a show's costs with it (and refuses new
    ones), so a show deleted offline takes its costs out of the view at once."""
    show_id = cost.data.get("show_id")
    if not isinstance(show_id, str):
        return False
    show = shows.get(UUID(show_id))
    return show is not None and show.deleted
