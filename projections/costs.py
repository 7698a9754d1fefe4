"""Projector of the ``costs`` read table: the client's fields, nothing derived.

A cost also counts in its show's totals; ``link_of`` says which show and for how much, so that
``apply.py`` can move the cost's weight between shows when it is created, changed or deleted.
"""

from __future__ import annotations

from typing import NamedTuple
from uuid import UUID

from event_store.events import RecordedEvent
from schemas.entities import writable_fields

from . import rows
from .rows import ReadRow
from .shows import CostEntry

ENTITY = "cost"


class Link(NamedTuple):
    show_id: UUID
    entry: CostEntry


def created(event: RecordedEvent) -> ReadRow:
    hidden = rows.with_field_versions({}, writable_fields(ENTITY), event.version)
    return rows.created(event, dict(event.data), hidden)


def updated(row: ReadRow, event: RecordedEvent) -> ReadRow:
    hidden = rows.with_field_versions(row.hidden, event.data, event.version)
    return rows.changed(row, event, {**row.data, **event.data}, hidden, own=True)


def deleted(row: ReadRow, event: RecordedEvent) -> ReadRow:
    return rows.tombstone(row, event)


def link_of(row: ReadRow | None) -> Link | None:
    """Which show a live cost weighs on, and with what; None for a missing or deleted cost."""
    if row is None or row.deleted:
        return None
    entry = {"amount": row.data["amount"], "currency": row.data["currency"]}
    return Link(rows.uuid_of(row.data["show_id"]), entry)
