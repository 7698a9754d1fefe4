"""Reading and writing the local copy: the view the app reads, and queuing the ops it writes.

A write checks its fields with the server's own rules (``schemas.validate``), then, in one
local transaction, reads the entity's current view, queues the op with the ``base_version``
the client has (the version of the last pulled row) and the values the user saw (for conflicts
later). The view then shows the op at once (``overlay.py``).

Two updates in a row of the same entity, the first not sent yet, become one op: fewer events,
and the second cannot conflict with the first. Only the last op of the outbox is ever merged
into, so the order in which ops reach the server is always the order they were made in.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from schemas.entities import CREATE, DELETE, UPDATE
from schemas.validate import validate_action, validate_fields

from . import overlay
from .conflicts import seen_values
from .errors import AlreadyExists, NotFound, ValidationError
from .overlay import LocalState
from .records import META, PendingOp, Record, Rejection
from .store import LocalStore, QueuedOp, StoredRejection
from .wire import utc_now

Origin = Literal["local", "sync"]


@dataclass(frozen=True)
class Changed:
    """What a change listener receives: the entities that changed, and why."""

    keys: frozenset[tuple[str, UUID]]
    """``(entity, id)`` of every entity whose view may have changed."""
    origin: Origin
    """``local``: a write of this app; ``sync``: an outcome of the server or a pulled change."""


ChangeListener = Callable[[Changed], None]


class LocalData:
    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self._listeners: list[ChangeListener] = []

    # -- change notifications --------------------------------------------------------------------

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener`` after each local write and each applied sync step (see
        ``Changed``). Returns the function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def notify(self, keys: Iterable[tuple[str, UUID]], origin: Origin = "local") -> None:
        changed = frozenset(keys)
        if changed:
            for listener in list(self._listeners):
                listener(Changed(changed, origin))

    # -- reading ---------------------------------------------------------------------------------

    def state(self, entity: str, id_: UUID) -> LocalState | None:
        with self.store.transaction():
            row = self.store.row(entity, id_)
            ops = self.store.ops(entity, id_)
        if row is None:
            return overlay.view(None, False, None, ops)
        return overlay.view(row.version, row.deleted, row.data, ops)

    def states(self, entity: str) -> dict[UUID, LocalState]:
        with self.store.transaction():
            rows = {row.id: row for row in self.store.rows(entity)}
            ops_by_id: dict[UUID, list[QueuedOp]] = {}
            for op in self.store.ops(entity):
                ops_by_id.setdefault(op.id, []).append(op)
        found: dict[UUID, LocalState] = {}
        for id_ in rows.keys() | ops_by_id.keys():
            row = rows.get(id_)
            ops = ops_by_id.get(id_, [])
            state = (
                overlay.view(None, False, None, ops)
                if row is None
                else overlay.view(row.version, row.deleted, row.data, ops)
            )
            if state is not None:
                found[id_] = state
        return found

    def live(self, entity: str, id_: UUID) -> Record | None:
        state = self.state(entity, id_)
        if state is None or state.deleted or self._hidden(entity, state, {}):
            return None
        return record_of(entity, id_, state)

    def all_live(self, entity: str) -> list[Record]:
        shows: dict[UUID, LocalState | None] = {}
        records = [
            record_of(entity, id_, state)
            for id_, state in self.states(entity).items()
            if not state.deleted and not self._hidden(entity, state, shows)
        ]
        return sorted(records, key=lambda r: (r.created_at or "~", str(r.id)))

    def _hidden(self, entity: str, state: LocalState, shows: dict[UUID, LocalState | None]) -> bool:
        if entity != "cost":
            return False
        show_id = state.data.get("show_id")
        if isinstance(show_id, str):
            key = UUID(show_id)
            if key not in shows:
                shows[key] = self.state("show", key)
        return overlay.hides_cost(state, shows)

    # -- writing ---------------------------------------------------------------------------------

    def create(self, entity: str, id_: UUID | None, data: Mapping[str, Any]) -> Record:
        clean = _checked(validate_fields(entity, data, partial=False))
        id_ = id_ or uuid.uuid4()
        with self.store.transaction():
            if self.store.row(entity, id_) is not None or self.store.ops(entity, id_):
                raise AlreadyExists(f"{entity} {id_} exists already (ids are never reused)")
            self._queue(entity, id_, CREATE, clean, base=None, seen=None)
            record = self._record(entity, id_)
        self.notify([(entity, id_)])
        return record

    def update(self, entity: str, id_: UUID, data: Mapping[str, Any]) -> Record:
        clean = _checked(validate_fields(entity, data, partial=True))
        with self.store.transaction():
            current = self._existing(entity, id_)
            changes = {k: v for k, v in clean.items() if current.data.get(k) != v}
            if changes and not self._merge_into_last(entity, id_, changes, current):
                seen = seen_values(entity, UPDATE, changes, current.data)
                self._queue(entity, id_, UPDATE, changes, self._base(entity, id_), seen)
            record = self._record(entity, id_)
        if changes:
            self.notify([(entity, id_)])
        return record

    def delete(self, entity: str, id_: UUID) -> None:
        with self.store.transaction():
            current = self._existing(entity, id_)
            seen = seen_values(entity, DELETE, {}, current.data)
            self._queue(entity, id_, DELETE, {}, self._base(entity, id_), seen)
        self.notify([(entity, id_)])

    def act(self, entity: str, id_: UUID, action: str, data: Mapping[str, Any]) -> Record:
        """A commutative action (``log_set``, ``adjust_stock``, ``record_sale``)."""
        payload = _checked(validate_action(entity, action, data))
        with self.store.transaction():
            self._existing(entity, id_)
            # Not sent (these actions ignore versions) but kept for the record.
            self._queue(entity, id_, action, payload, self._base(entity, id_), None)
            record = self._record(entity, id_)
        self.notify([(entity, id_)])
        return record

    def _existing(self, entity: str, id_: UUID) -> LocalState:
        current = self.state(entity, id_)
        if current is None or current.deleted:
            raise NotFound(f"no {entity} {id_} in the local copy")
        return current

    def _record(self, entity: str, id_: UUID) -> Record:
        state = self.state(entity, id_)
        assert state is not None
        return record_of(entity, id_, state)

    def _base(self, entity: str, id_: UUID) -> int:
        """The version the client has: its last pulled row's (0 when it has none, i.e. the
        entity was created here and not pulled back yet: the server then reports every field
        as changed, and the three-way check in ``conflicts.py`` resends the op)."""
        row = self.store.row(entity, id_)
        return 0 if row is None else row.version

    def _queue(
        self,
        entity: str,
        id_: UUID,
        action: str,
        data: dict[str, Any],
        base: int | None,
        seen: dict[str, Any] | None,
    ) -> None:
        op = QueuedOp(
            0, uuid.uuid4(), entity, id_, action, base, data, seen, utc_now(), False, None
        )
        self.store.add_op(op)

    def _merge_into_last(
        self, entity: str, id_: UUID, changes: dict[str, Any], current: LocalState
    ) -> bool:
        """Fold an update into the outbox's last op when that op is an unsent create or update
        of the same entity (on the same base). True if it was folded."""
        op = self.store.last_op()
        if op is None or (op.entity, op.id) != (entity, id_) or op.sent or op.acked:
            return False
        if op.action != CREATE and not (
            op.action == UPDATE and op.base_version == self._base(entity, id_)
        ):
            return False
        seen = None
        if op.action == UPDATE:
            # The values seen before the first of the folded updates are the base.
            seen = {**seen_values(entity, UPDATE, changes, current.data), **(op.seen or {})}
        self.store.replace_op(
            QueuedOp(
                op.seq,
                op.op_id,
                entity,
                id_,
                op.action,
                op.base_version,
                {**op.data, **changes},
                seen,
                op.client_ts,
                False,
                None,
            )
        )
        return True

    # -- the outbox and the rejections, for the app ----------------------------------------------

    def pending(self) -> list[PendingOp]:
        with self.store.transaction():
            ops = self.store.ops()
        return [
            PendingOp(
                op.op_id,
                op.entity,
                op.id,
                op.action,
                op.data,
                op.client_ts,
                op.sent,
                op.acked_version,
            )
            for op in ops
        ]

    def rejections(self) -> list[Rejection]:
        with self.store.transaction():
            stored = self.store.rejections()
        return [rejection_of(r) for r in stored]

    def dismiss(self, rejections: Iterable[Rejection] | None) -> None:
        with self.store.transaction():
            self.store.remove_rejections(
                None if rejections is None else [r.seq for r in rejections]
            )


def record_of(entity: str, id_: UUID, state: LocalState) -> Record:
    fields = {k: v for k, v in state.data.items() if k not in META}
    created, updated = state.data.get("created_at"), state.data.get("updated_at")
    return Record(
        entity,
        id_,
        state.version,
        state.pending,
        fields,
        created if isinstance(created, str) else None,
        updated if isinstance(updated, str) else None,
    )


def rejection_of(stored: StoredRejection) -> Rejection:
    details = stored.details
    return Rejection(
        seq=stored.seq,
        op_id=stored.op_id,
        entity=stored.entity,
        id=stored.id,
        action=stored.action,
        data=stored.data,
        kind="conflict" if stored.kind == "conflict" else "rejected",
        code=stored.code,
        message=stored.message,
        recorded_at=stored.recorded_at,
        errors=tuple(details.get("errors") or ()),
        lost_fields=tuple(details.get("lost_fields") or ()),
        server_version=details.get("server_version"),
        server_data=details.get("server_data"),
    )


def _checked(result: dict[str, Any] | list[Any]) -> dict[str, Any]:
    if isinstance(result, list):
        raise ValidationError(result)
    return result
