"""The catch-up runner: applies the global feed to read models that are not written inline.

The four read tables are projected inline, in the push's own transaction, because push decides
against them. Other read models (``sales.py``) follow the log instead: this runner reads the
global feed after each model's checkpoint and applies it, a batch per transaction.

Exactly once, whatever the number of runners: each batch runs in one transaction that first
locks the model's ``projection_state`` row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a runner
that finds it locked moves on; on SQLite the write transaction excludes every other writer),
reads the checkpoint under that lock, applies the events after it, and moves the checkpoint in
the same commit. Two runners can never both apply the batch after one checkpoint, and a runner
that dies mid-batch leaves nothing of it. The feed is gap-free (``event_store/store.py``), so
no event is skipped either.

Definitions: a model whose code changed (its ``definition`` differs from the stored one) is
emptied and replayed from the start under a new epoch, in the same locked transaction as its
first batch. For the inline read tables the same check triggers a full rebuild aside
(``rebuild.py``), whose new epoch makes every client's next pull answer ``reset``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Final, Protocol

from event_store import START, EventStore, RecordedEvent, Sql

from . import projection_state, rebuild
from .project import DEFINITION, READ_TABLES
from .sales import SalesDaily

log = logging.getLogger("projections.runner")

BATCH: Final = 1000


class CatchUp(Protocol):
    """A read model the runner keeps up with the log."""

    name: str
    definition: int
    types: frozenset[str] | None
    """The event types the model reads (None: all). The feed hands it only those, and the
    checkpoint passes the rest: most of the log is none of a sales report's business."""

    def reset(self, sql: Sql) -> None:
        """Remove every row (before a replay from the start under a new definition)."""

    def apply(self, sql: Sql, events: Sequence[RecordedEvent]) -> None:
        """Apply ``events`` (any owners, feed order), in ``sql``'s transaction."""


CATCH_UP: Final[tuple[CatchUp, ...]] = (SalesDaily(),)
"""Every catch-up read model."""


def step(store: EventStore, model: CatchUp, batch: int = BATCH) -> int | None:
    """Apply the next batch of the feed to ``model``; the number of events of the feed it
    covered (applied, or passed over as of no interest to the model), or None when another
    runner holds the model right now."""
    with store.sql() as sql:
        current = projection_state.lock(sql, model.name)
        if current is None:
            return None
        checkpoint = current.checkpoint
        if current.definition != model.definition:
            model.reset(sql)
            epoch = projection_state.new_epoch(sql, model.name, model.definition, START)
            log.info("projection rebuilt", extra={"projection": model.name, "epoch": epoch})
            checkpoint = START
        page = store.read_feed(sql, checkpoint, batch, types=model.types)
        if page.events:
            model.apply(sql, page.events)
        if page.checkpoint != checkpoint:
            projection_state.save_checkpoint(sql, model.name, page.checkpoint)
        return page.covered


def catch_up(
    store: EventStore,
    models: Sequence[CatchUp] = CATCH_UP,
    *,
    batch: int = BATCH,
    stop: threading.Event | None = None,
) -> int:
    """Bring every model up to the feed as it is now; the number of events of the feed the
    models went over (each event once per model, whether it applied or was of no interest). A
    model another runner is busy with is left to it."""
    applied = 0
    for model in models:
        if not _has_work(store, model):
            continue
        while stop is None or not stop.is_set():
            done = step(store, model, batch)
            if done is None:
                break
            applied += done
            if done < batch:
                break
    return applied


def _has_work(store: EventStore, model: CatchUp) -> bool:
    """Whether a locked step would do anything: answered by reads alone, so that an idle
    runner takes no lock and writes nothing."""
    with store.snapshot() as sql:
        current = projection_state.read(sql, model.name)
    if current is None:
        with store.sql() as sql:
            projection_state.ensure(sql, model.name, model.definition)
        return True
    if current.definition != model.definition:
        return True
    return bool(store.read_all(current.checkpoint, 1).events)


def check_read_tables(store: EventStore) -> rebuild.Rebuilt | None:
    """Rebuild the inline read tables if the projector code changed since they were built
    (a new epoch: clients reset). None when nothing was to do or another process is on it."""
    with store.snapshot() as sql:
        current = projection_state.read(sql, READ_TABLES)
    if current is None or current.definition == DEFINITION:
        return None
    try:
        done = rebuild.rebuild(store)
    except projection_state.LeaseHeld:
        return None
    log.info(
        "read tables rebuilt under a new definition",
        extra={"definition": DEFINITION, "epoch": done.epoch, "events": done.events},
    )
    return done
