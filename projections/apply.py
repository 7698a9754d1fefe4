"""The one entry point of projection: apply an event to the rows it touches.

The same code runs inline during a push (on rows held in memory, events with provisional
positions) and during a rebuild or catch-up from the log, so that both give the same rows.
Events are expected already upcast to their current schema (the store does that on read).

What an event touches: its own row and, for a cost event, the show(s) the cost weighs on. A
cost that moves from show A to show B leaves A and joins B; the old show is named only by the
cost row, so a caller learns what to load in two steps: ``keys_needed`` before and after loading
the cost row (``load_missing`` does the loop for it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from uuid import UUID

from event_store.events import RecordedEvent
from schemas import events as types

from . import costs, inventory, shows, workouts
from .rows import TABLES, ReadRow, RowKey, key_of, uuid_of

Project = Callable[[ReadRow, RecordedEvent], ReadRow]

_CREATE: dict[str, Callable[[RecordedEvent], ReadRow]] = {
    types.SHOW_CREATED: shows.created,
    types.COST_CREATED: costs.created,
    types.WORKOUT_CREATED: workouts.created,
    types.PRODUCT_CREATED: inventory.created,
}

_CHANGE: dict[str, Project] = {
    types.SHOW_UPDATED: shows.updated,
    types.SHOW_DELETED: shows.deleted,
    types.COST_UPDATED: costs.updated,
    types.COST_DELETED: costs.deleted,
    types.WORKOUT_UPDATED: workouts.updated,
    types.WORKOUT_DELETED: workouts.deleted,
    types.WORKOUT_SET_LOGGED: workouts.set_logged,
    types.PRODUCT_UPDATED: inventory.updated,
    types.PRODUCT_DELETED: inventory.deleted,
    types.PRODUCT_STOCK_ADJUSTED: inventory.stock_adjusted,
    types.PRODUCT_SALE_RECORDED: inventory.sale_recorded,
}

_SHOWS = TABLES["show"]


class ProjectionError(Exception):
    """The event cannot be applied to the rows given: a bug in the caller or a broken log."""


def apply_event(rows: MutableMapping[RowKey, ReadRow], event: RecordedEvent) -> list[RowKey]:
    """Apply one event to the in-memory ``rows`` (replacing entries); return the keys changed.

    ``rows`` must hold every existing row in ``keys_needed(event, rows)``. A related show that is
    absent is taken as not existing and left alone; the event's own row being absent when the
    event is not a creation is an error.
    """
    key = key_of(event.stream)
    if key is None:
        return []
    before = rows.get(key)
    if event.type in _CREATE:
        after = _CREATE[event.type](event)
    elif event.type in _CHANGE:
        if before is None:
            raise ProjectionError(f"{event.type} at position {event.position}: no row {key}")
        after = _CHANGE[event.type](before, event)
    else:
        raise ProjectionError(f"no projector for event type {event.type!r}")
    rows[key] = after
    changed = [key]
    if event.stream.type == costs.ENTITY:
        changed += _move_cost(rows, event, costs.link_of(before), costs.link_of(after))
    return changed


def apply_events(
    rows: MutableMapping[RowKey, ReadRow], events: Iterable[RecordedEvent]
) -> list[RowKey]:
    """Apply events in order; the keys changed, each once, in order of first change."""
    changed: dict[RowKey, None] = {}
    for event in events:
        changed.update(dict.fromkeys(apply_event(rows, event)))
    return list(changed)


def keys_needed(event: RecordedEvent, rows: Mapping[RowKey, ReadRow]) -> set[RowKey]:
    """Every row ``apply_event`` may touch, as far as ``rows`` tell.

    For a cost update or deletion, the show the cost was on is known only once the cost row is
    in ``rows``: call again after loading. The answer only grows, and stops after two rounds.
    """
    key = key_of(event.stream)
    if key is None:
        return set()
    needed = {key}
    if event.stream.type == costs.ENTITY:
        old = costs.link_of(rows.get(key))
        if old is not None:
            needed.add((_SHOWS, old.show_id))
        new_show = event.data.get("show_id")
        if new_show is not None:
            needed.add((_SHOWS, uuid_of(new_show)))
    return needed


Loader = Callable[[set[RowKey]], Mapping[RowKey, ReadRow]]
"""Fetch rows by key; keys of rows that do not exist are simply absent from the answer."""


class RowCache:
    """A ``Loader`` that asks the database for each key at most once, found or not.

    Meant for one transaction in which the read tables are written only at its end (a push:
    ``project`` saves last). Until then what was read, or found not to exist, stays true, and
    the caller's working rows hold every change made since: so a batch of 500 creates asks for
    its 500 new keys once, not once per op and again when projecting.
    """

    def __init__(self, load: Loader) -> None:
        self._load = load
        self._known: dict[RowKey, ReadRow | None] = {}

    def __call__(self, keys: set[RowKey]) -> dict[RowKey, ReadRow]:
        unknown = {key for key in keys if key not in self._known}
        if unknown:
            found = self._load(unknown)
            for key in unknown:
                self._known[key] = found.get(key)
        return {key: row for key in keys if (row := self._known[key]) is not None}

    def stored(self, key: RowKey) -> ReadRow | None:
        """The row as the database gave it, if it was read and exists."""
        return self._known.get(key)

    def add(self, rows: Mapping[RowKey, ReadRow], asked: Iterable[RowKey] = ()) -> None:
        """Rows read by another query (products by sku), as the database holds them; and the
        keys it was ``asked`` for, those it did not find included (they do not exist)."""
        for key, row in rows.items():
            self._known.setdefault(key, row)
        for key in asked:
            self._known.setdefault(key, None)


def load_missing(event: RecordedEvent, rows: MutableMapping[RowKey, ReadRow], load: Loader) -> None:
    """Make ``rows`` hold every existing row ``event`` needs, loading only what it lacks.

    Rows already in ``rows`` are never replaced: in a push they hold the batch's newer state.
    """
    if event.stream.type != costs.ENTITY:
        # Only a cost event reaches past its own row (``keys_needed``): the common case, without
        # building a set per event.
        key = key_of(event.stream)
        if key is None or key in rows:
            return
    asked: set[RowKey] = set()
    # Not ``needed - rows.keys()``: a set minus a dict view iterates the whole view, which made
    # every op of a push walk every row loaded for the batch (quadratic in the batch size).
    while missing := {k for k in keys_needed(event, rows) if k not in rows and k not in asked}:
        asked |= missing
        found = load(missing)
        if not found:  # ``rows`` did not change, so neither would what the event needs
            return
        for key, row in found.items():
            rows.setdefault(key, row)


def _move_cost(
    rows: MutableMapping[RowKey, ReadRow],
    event: RecordedEvent,
    old: costs.Link | None,
    new: costs.Link | None,
) -> list[RowKey]:
    cost_id = event.stream.id
    changed: list[RowKey] = []
    if old is not None and (new is None or new.show_id != old.show_id):
        changed += _set_cost(rows, event, old.show_id, cost_id, None)
    if new is not None:
        changed += _set_cost(rows, event, new.show_id, cost_id, new.entry)
    return changed


def _set_cost(
    rows: MutableMapping[RowKey, ReadRow],
    event: RecordedEvent,
    show_id: UUID,
    cost_id: UUID,
    entry: shows.CostEntry | None,
) -> list[RowKey]:
    key = (_SHOWS, show_id)
    show = rows.get(key)
    after = None if show is None else shows.with_cost(show, event, cost_id, entry)
    if after is None:
        return []
    rows[key] = after
    return [key]
