"""A pure, in-memory stand-in for the push layer: decide, record, project, in order.

It does what the push layer does around the pure core (EntityState from rows, references from
rows, PendingEvent -> RecordedEvent with the next version and position, apply_event), so the
tests exercise the core exactly as it will be driven.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from event_store.events import EventMetadata, RecordedEvent, StreamId
from projections.apply import apply_event
from projections.rows import TABLES, ReadRow, RowKey, key_of
from schemas.ops import Op
from sync_server.decide import (
    Accepted,
    Decision,
    PendingEvent,
    decide,
    references_from_rows,
    state_from_rows,
)

OWNER = UUID("00000000-0000-4000-8000-000000000001")
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def op(
    entity: str,
    id: UUID,
    action: str,
    data: dict[str, Any] | None = None,
    base: int | None = None,
) -> Op:
    return Op(
        op_id=uuid4(), entity=entity, id=id, action=action, base_version=base, data=data or {}
    )


def show_data(**overrides: Any) -> dict[str, Any]:
    return {"date": "2026-12-01", "city": "Madrid", "country": "ES", "fee": "12000.00", **overrides}


def cost_data(show_id: UUID, **overrides: Any) -> dict[str, Any]:
    return {"show_id": str(show_id), "type": "sound", "amount": "500.00", **overrides}


def workout_data(**overrides: Any) -> dict[str, Any]:
    squat = {"name": "Squat", "sets": [{"reps": 5, "weight": "100", "unit": "kg"}]}
    return {"date": "2026-11-20", "name": "Legs", "exercises": [squat], **overrides}


def product_data(**overrides: Any) -> dict[str, Any]:
    return {"sku": "TSHIRT-M", "name": "T-shirt M", "quantity": 10, **overrides}


def recorded(
    stream: StreamId,
    type: str,
    data: dict[str, Any],
    *,
    version: int,
    position: int,
    at: datetime = T0,
) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        tx=position,
        owner=OWNER,
        stream=stream,
        version=version,
        type=type,
        schema_version=1,
        data=data,
        metadata=EventMetadata(),
        recorded_at=at,
    )


class Engine:
    def __init__(self) -> None:
        self.rows: dict[RowKey, ReadRow] = {}
        self.log: list[RecordedEvent] = []
        self.clock = T0

    def tick(self, **delta: float) -> None:
        self.clock += timedelta(**delta)

    def push(self, the_op: Op) -> Decision:
        state = state_from_rows(the_op, self.rows)
        decision = decide(the_op, state, references_from_rows(the_op, self.rows))
        if isinstance(decision, Accepted):
            self.record(decision.events)
        return decision

    def record(self, pending: Iterable[PendingEvent]) -> list[RecordedEvent]:
        events = []
        for event in pending:
            key = key_of(event.stream)
            assert key is not None
            current = self.rows[key].version if key in self.rows else 0
            position = len(self.log) + 1
            recorded_event = recorded(
                event.stream,
                event.type,
                event.data,
                version=current + 1,
                position=position,
                at=self.clock,
            )
            apply_event(self.rows, recorded_event)
            self.log.append(recorded_event)
            events.append(recorded_event)
        return events

    def row(self, entity: str, id: UUID) -> ReadRow:
        return self.rows[(TABLES[entity], id)]

    def data(self, entity: str, id: UUID) -> dict[str, Any]:
        return self.row(entity, id).data
