"""Keyset pages of one read table, pinned to the moment the listing began.

A plain keyset page (``WHERE (key, id) > (last key, last id) ORDER BY key, id``) never repeats or
skips a row because *other* rows are created or deleted, but a row whose own sort key changes
while someone pages through (a show moved to another date) jumps over the cursor: it is seen
twice or never. So a listing is pinned to the owner's head sync position ``pinned`` taken on its
first page, and every page is cut from the list *as it was at that moment*:

* rows unchanged since then (``sync_pos <= pinned``) are read by the index, as they are: their
  key and filtered columns are still what they were;
* rows changed since then (``sync_pos > pinned``: few, the writes made while the listing runs)
  are put back where they were by replaying their own stream up to ``pinned`` with the same
  projectors a rebuild runs; whether they matched the filters and where they sorted is decided
  on that old state, while the page shows them as they are now.

So a listing holds exactly the rows that were live and matched when it began and are still live
when their page is read, each once, in the order they had then. Rows created after it began are
not in it (a new listing, or a pull, shows them). If so much changed that putting rows back would
be costly (more than ``MAX_CHANGED`` rows), the listing is refused as expired and starts again.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

import msgspec

from event_store import RecordedEvent, Sql, UpcasterRegistry, as_uuid
from event_store.store import EVENT_COLUMNS, decode_row

from . import tables
from .apply import apply_events
from .rows import ENTITIES, ReadRow, RowKey

MAX_CHANGED: Final = 2000
"""Rows changed since a listing began beyond which its next page is refused (``ListingExpired``)."""

Op = Literal["eq", "ge", "le"]
SortColumn = Literal["created_at", "date", "sku"]

_SQL_OPS: Final = {"eq": "=", "ge": ">=", "le": "<="}
_PY_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "eq": operator.eq,
    "ge": operator.ge,
    "le": operator.le,
}


class ListingExpired(Exception):
    """The listing cannot go on from where it was (too much changed, or the tables were rebuilt)."""


class Condition(msgspec.Struct, frozen=True):
    """``column op value`` on a column of ``tables.INDEX_COLUMNS``; ``value`` as rows hold it."""

    column: str
    op: Op
    value: str | bool


class Order(msgspec.Struct, frozen=True):
    column: SortColumn
    descending: bool = False


class After(msgspec.Struct, frozen=True):
    """Where the next page starts: the listing's pin and the sort key of the last row sent."""

    pinned: int
    key: str
    id: UUID


class Item(msgspec.Struct, frozen=True):
    id: UUID
    key: str
    """The row's sort value at the pin, as text (what a cursor carries)."""
    body: str
    """The row's public JSON now, as stored."""


class ListPage(msgspec.Struct, frozen=True):
    items: list[Item]
    pinned: int
    has_more: bool


def head(sql: Sql, owner: UUID) -> int:
    """Where a new listing is pinned."""
    return tables.head(sql, owner)


def list_page(
    sql: Sql,
    owner: UUID,
    table: str,
    conditions: Sequence[Condition],
    order: Order,
    limit: int,
    after: After | None,
    registry: UpcasterRegistry,
) -> ListPage:
    """One page of ``owner``'s live rows of ``table``; read inside one snapshot."""
    if table not in ENTITIES:
        raise ValueError(f"unknown read table {table!r}")
    pinned = head(sql, owner) if after is None else after.pinned
    unchanged = _unchanged(sql, owner, table, conditions, order, limit + 1, after, pinned)
    moved = [] if after is None else _moved(sql, owner, table, conditions, order, after, registry)
    merged = sorted(
        [*unchanged, *moved], key=lambda item: _sort_key(order, item), reverse=order.descending
    )
    return ListPage(merged[:limit], pinned, has_more=len(merged) > limit)


def _column_sql(sql: Sql, column: str) -> str:
    # Byte order on both backends (see migration 0003), the order Python compares text in.
    return f'{column} COLLATE "C"' if sql.backend == "postgres" and column == "sku" else column


def _param(column: str, value: Any) -> Any:
    if column == "show_id" and isinstance(value, str):
        return UUID(value)
    if column == "created_at" and isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


def _unchanged(
    sql: Sql,
    owner: UUID,
    table: str,
    conditions: Sequence[Condition],
    order: Order,
    limit: int,
    after: After | None,
    pinned: int,
) -> list[Item]:
    where = ["owner = ?", "deleted_at IS NULL", "sync_pos <= ?"]
    params: list[Any] = [owner, pinned]
    for condition in conditions:
        _check_column(table, condition.column)
        where.append(f"{condition.column} {_SQL_OPS[condition.op]} ?")
        params.append(_param(condition.column, condition.value))
    column = _column_sql(sql, order.column)
    if after is not None:
        where.append(f"({column}, id) {'<' if order.descending else '>'} (?, ?)")
        params += [_param(order.column, after.key), after.id]
    direction = "DESC" if order.descending else "ASC"
    records = sql.fetchall(
        f"SELECT id, {order.column}, body FROM {table} WHERE {' AND '.join(where)} "
        f"ORDER BY {column} {direction}, id {direction} LIMIT ?",
        [*params, limit],
    )
    return [Item(as_uuid(id_), _text(key), body) for id_, key, body in records]


def _moved(
    sql: Sql,
    owner: UUID,
    table: str,
    conditions: Sequence[Condition],
    order: Order,
    after: After,
    registry: UpcasterRegistry,
) -> list[Item]:
    """Rows changed since the pin that belong after ``after`` in the listing as it was then.

    Only rows that existed at the pin can have moved: a row created since (at or after the
    moment of the pinned event, as one owner's events are recorded in log order) is left out
    of the count as well as of the listing, so that a bulk upload while a listing is open does
    not expire it."""
    pinned_at = sql.fetchone(
        "SELECT recorded_at FROM events WHERE owner = ? AND position = ?", [owner, after.pinned]
    )
    if pinned_at is None:  # nothing of the owner's at the pin: no row was there to move
        return []
    records = sql.fetchall(
        f"SELECT {tables.ROW_COLUMNS} FROM {table} WHERE owner = ? AND sync_pos > ? "
        "AND created_at <= ? LIMIT ?",
        [owner, after.pinned, pinned_at[0], MAX_CHANGED + 1],
    )
    if len(records) > MAX_CHANGED:
        raise ListingExpired(f"more than {MAX_CHANGED} rows changed since this listing began")
    now = {row.id: row for row in map(tables.row_from, records) if not row.deleted}
    if not now:
        return []
    then = _replay(sql, owner, ENTITIES[table], now, after.pinned, registry)
    boundary = _sort_key(order, Item(after.id, after.key, ""))
    moved = []
    for id_, row in now.items():
        old = then.get(id_)
        if old is None or old.deleted or not _matches(old, conditions):
            continue
        item = Item(id_, _key_of(old, order.column), tables.body_of(row).decode())
        position = _sort_key(order, item)
        if (position < boundary) if order.descending else (position > boundary):
            moved.append(item)
    return moved


def _replay(
    sql: Sql,
    owner: UUID,
    entity: str,
    rows: Iterable[UUID],
    pinned: int,
    registry: UpcasterRegistry,
) -> dict[UUID, ReadRow]:
    """The rows as their own streams had built them at position ``pinned``.

    Only the own stream is replayed: a show's cost totals at that moment are not rebuilt, but no
    filter or sort looks at derived fields that other streams move.
    """
    ids = list(rows)
    events: list[RecordedEvent] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        events += [
            decode_row(record, registry)
            for record in sql.fetchall(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE owner = ? AND stream_type = ? "
                f"AND stream_id IN ({marks}) AND position <= ? ORDER BY position",
                [owner, entity, *chunk, pinned],
            )
        ]
    events.sort(key=lambda event: event.position)
    replayed: dict[RowKey, ReadRow] = {}
    apply_events(replayed, events)
    return {id_: row for (_, id_), row in replayed.items()}


def _matches(row: ReadRow, conditions: Sequence[Condition]) -> bool:
    for condition in conditions:
        value = row.data.get(condition.column)
        if value is None or not _PY_OPS[condition.op](value, condition.value):
            return False
    return True


def _key_of(row: ReadRow, column: str) -> str:
    return _text(row.created_at if column == "created_at" else row.data[column])


def _sort_key(order: Order, item: Item) -> tuple[Any, UUID]:
    value: Any = datetime.fromisoformat(item.key) if order.column == "created_at" else item.key
    return (value, item.id)


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _check_column(table: str, column: str) -> None:
    if column not in tables.INDEX_COLUMNS[table]:
        raise ValueError(f"{table} cannot be filtered on {column!r}")
