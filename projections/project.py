"""Projecting recorded events into the read tables, inside the transaction that wrote them.

This is the I/O edge around the pure ``apply_event``: it loads the rows an event touches (only
those not already in memory), applies the events in log order, and writes back each changed
row once. A push calls it with the events it just appended (read-your-writes); a rebuild calls
it with the whole log. Same code, so the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Final, Protocol
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


class RowIO(Protocol):
    """Where ``project`` reads the rows it lacks and writes the rows it changed."""

    def load(self, owner: UUID, keys: set[RowKey]) -> Mapping[RowKey, ReadRow]: ...

    def save(self, owner: UUID, rows: Mapping[RowKey, ReadRow]) -> None: ...


@dataclass(frozen=True)
class TableIO:
    """The read tables themselves (or, with a ``suffix``, their copies aside), in ``sql``'s
    transaction."""

    sql: Sql
    suffix: str = ""

    def load(self, owner: UUID, keys: set[RowKey]) -> Mapping[RowKey, ReadRow]:
        return tables.load_rows(self.sql, owner, keys, suffix=self.suffix)

    def save(self, owner: UUID, rows: Mapping[RowKey, ReadRow]) -> None:
        tables.save_rows(self.sql, owner, rows, suffix=self.suffix)


def project(
    sql: Sql,
    owner: UUID,
    events: Iterable[RecordedEvent],
    rows: MutableMapping[RowKey, ReadRow] | None = None,
    load: Loader | None = None,
    *,
    io: RowIO | None = None,
    complete: bool = False,
) -> dict[RowKey, ReadRow]:
    """Apply ``events`` (all of ``owner``, in log order) and save the rows they changed.

    ``rows`` may hold rows already loaded in this transaction (as they are in the database);
    they are used instead of reading them again, and so are those ``load`` (by default a read
    through ``io``) already knows. ``complete``: ``rows`` hold every row the owner has (a
    rebuild's, filling empty tables), so a key they lack has no row and nothing is loaded.
    ``io`` says where rows are loaded from and saved to: by default the read tables, through
    ``sql``. Returns the changed rows as saved.
    """
    held: MutableMapping[RowKey, ReadRow] = {} if rows is None else rows
    target = io or TableIO(sql)
    if load is None:

        def load(keys: set[RowKey]) -> Mapping[RowKey, ReadRow]:
            return target.load(owner, keys)

    changed: dict[RowKey, None] = {}
    for event in events:
        if event.owner != owner:
            raise ValueError(f"event at position {event.position} is not of owner {owner}")
        if not complete:  # finding what to load cost a rebuild a tenth of its time
            load_missing(event, held, load)
        for key in apply_event(held, event):
            changed[key] = None
    saved = {key: held[key] for key in changed}
    if saved:
        target.save(owner, saved)
    return saved


def epoch(sql: Sql, name: str = READ_TABLES) -> int:
    """The epoch pull cursors of projection ``name`` are issued under."""
    return epoch_later(sql, name)()


def epoch_later(sql: Sql, name: str = READ_TABLES) -> Callable[[], int]:
    """``epoch``, asked for now and read when the result is called (``Sql.send``)."""
    rows = sql.send("SELECT epoch FROM projection_state WHERE name = ?", [name])

    def read() -> int:
        found = rows()
        if not found:
            raise LookupError(f"no projection named {name!r}")
        return int(found[0][0])

    return read
