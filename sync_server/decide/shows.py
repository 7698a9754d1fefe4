"""Deciding show ops: plain create/update; a deletion takes the show's live costs with it."""

from __future__ import annotations

from event_store.events import StreamId
from schemas.events import COST_DELETED

from .crud import Rules
from .decisions import EntityState, PendingEvent, References


def _cascade(state: EntityState, refs: References) -> list[PendingEvent]:
    # A cost of a deleted show could never be edited again (its show_id would be an invalid
    # reference) nor show up anywhere: delete it explicitly rather than leave an orphan.
    return [
        PendingEvent(StreamId("cost", cost_id), COST_DELETED, {})
        for cost_id in refs.costs_by_show.get(state.id, ())
    ]


RULES = Rules("show", cascade=_cascade)
