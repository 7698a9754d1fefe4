"""Projecting recorded events into the read tables, inside the transaction that wrote them.

This is the I/O edge around the pure ``apply_event``: it loads the rows an event touches (only
those not already in memory), applies the events in log order, and writes back each changed
row once. A push calls it with the events it just appended (read-your-writes); a rebuild calls
it with the whole log. Same code, so the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Final
from uuid import UUID

from event_store import RecordedEvent, Sql

from . import tables
from .apply import Loader, apply_event, load_missing
from .rows import ReadRow, RowKey

READ_TABLES: Final = "read_tables"
"""The name, in ``projection_state``, of the four inline read tables taken together."""

DEFINITION: Final = 1
"""The version of the projector code. Raise it whenever a projector would build different rows
from the same events; the read tables are then rebuilt and clients told to ``reset``."""


def project(
    sql: Sql,
    owner: UUID,
    events: Iterable[RecordedEvent],
    rows: MutableMapping[RowKey, ReadRow] | None = None,
    load: Loader | None = None,
) -> dict[RowKey, ReadRow]:
    """Apply ``events`` (all of ``owner``, in log order) and save the rows they changed.

    ``rows`` may hold rows already loaded in this transaction (as they are in the database);
    they are used instead of reading them again, and so are those ``load`` (by default a plain
    read of the read tables) already knows. Returns the changed rows as saved.
    """
    held: MutableMapping[RowKey, ReadRow] = {} if rows is None else rows
    if load is None:

        def load(keys: set[RowKey]) -> Mapping[RowKey, ReadRow]:
            return tables.load_rows(sql, owner, keys)

    changed: dict[RowKey, None] = {}
    for event in events:
        if event.owner != owner:
            raise ValueError(f"event at position {event.position} is not of owner {owner}")
        load_missing(event, held, load)
        changed.update(dict.fromkeys(apply_event(held, event)))
    saved = {key: held[key] for key in changed}
    if saved:
        tables.save_rows(sql, owner, saved)
    return saved


def epoch(sql: Sql, name: str = READ_TABLES) -> int:
    """The epoch pull cursors of projection ``name`` are issued under."""
    row = sql.fetchone("SELECT epoch FROM projection_state WHERE name = ?", [name])
    if row is None:
        raise LookupError(f"no projection named {name!r}")
    return int(row[0])
