"""The SQL of the read tables: load rows, save rows, and read changes in sync order.

Each row is stored as the JSON a pull sends (``body``: id, version, the fields with their
derived values, timestamps) next to the projector's private state (``hidden``), so that a pull
splices stored bytes into its answer instead of decoding and encoding every row. A few columns
are copied out of the row for the filters and reference checks that look them up.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple
from uuid import UUID

import msgspec

from event_store import RecordedEvent, Sql, as_uuid, chunks

from .rows import ENTITIES, TABLES, ReadRow, RowKey

# Columns copied out of the row, per table: (column, field of row.data).
INDEX_COLUMNS: dict[str, tuple[str, ...]] = {
    "shows": ("status", "date"),
    "costs": ("show_id",),
    "workouts": ("date",),
    "inventory": ("sku", "low_stock"),
}
META = ("id", "version", "created_at", "updated_at", "deleted_at")
ROW_COLUMNS = "id, version, sync_pos, created_at, updated_at, deleted_at, body, hidden"

_encoder = msgspec.json.Encoder()
_decode_dict = msgspec.json.Decoder(dict[str, Any]).decode


def body_of(row: ReadRow) -> bytes:
    """The public JSON of a row: what a pull sends as ``data``."""
    public: dict[str, Any] = {
        "id": row.id,
        "version": row.version,
        **row.data,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
    if row.deleted_at is not None:
        public["deleted_at"] = row.deleted_at
    return _encoder.encode(public)


def row_from(record: Sequence[Any]) -> ReadRow:
    id_, version, sync_pos, created_at, updated_at, deleted_at, body, hidden = record
    data = _decode_dict(body)
    for key in META:
        data.pop(key, None)
    return ReadRow(
        id=as_uuid(id_),
        version=version,
        sync_pos=sync_pos,
        created_at=created_at,
        updated_at=updated_at,
        deleted_at=deleted_at,
        data=data,
        hidden=_decode_dict(hidden),
    )


OwnedKey = tuple[UUID, str, UUID]
"""(owner, table, id): a row among every owner's."""


def physical(table: str, suffix: str = "") -> str:
    """The table that holds ``table``'s rows: itself, or a copy aside (``suffix``) that a
    rebuild fills before it replaces the live rows (``rebuild.py``)."""
    _check_table(table)
    if suffix and not suffix.replace("_", "").isalnum():
        raise ValueError(f"bad table suffix {suffix!r}")
    return table + suffix


def load_rows(
    sql: Sql, owner: UUID, keys: Iterable[RowKey], *, suffix: str = ""
) -> dict[RowKey, ReadRow]:
    """The rows that exist among ``keys`` (tombstones included): one query per table."""
    return load_rows_later(sql, owner, keys, suffix=suffix)()


def load_rows_later(
    sql: Sql, owner: UUID, keys: Iterable[RowKey], *, suffix: str = ""
) -> Callable[[], dict[RowKey, ReadRow]]:
    """``load_rows``, sent now and read when the result is called: in a pipelined
    transaction the database looks the rows up while the caller goes on."""
    by_table: dict[str, list[UUID]] = {}
    for table, id_ in keys:
        by_table.setdefault(table, []).append(id_)
    # Every table's query is sent before any rows are read: in a pipelined transaction the
    # database runs the next while Python decodes the rows of the one before.
    return _decoded(
        [
            (table, fetch)
            for table, ids in by_table.items()
            for fetch in _select_by_ids(
                sql, owner, physical(table, suffix), list(dict.fromkeys(ids))
            )
        ]
    )


def _decoded(
    sent: list[tuple[str, Callable[[], list[Sequence[Any]]]]],
) -> Callable[[], dict[RowKey, ReadRow]]:
    """How to get the rows of queries already sent, each with the table it reads."""

    def rows() -> dict[RowKey, ReadRow]:
        found: dict[RowKey, ReadRow] = {}
        for table, fetch in sent:
            for record in fetch():
                row = row_from(record)
                found[(table, row.id)] = row
        return found

    return rows


def _select_by_ids(
    sql: Sql, owner: UUID, table: str, ids: list[UUID]
) -> list[Callable[[], list[Sequence[Any]]]]:
    if sql.backend == "postgres":
        # One JSON parameter (encoded in C), so the statement's text never changes: psycopg
        # splits a statement at its placeholders in Python and caches only short ones, and an
        # IN list of hundreds of placeholders cost more to convert than to run. One index probe
        # per id, as for idempotency keys (``event_store/postgres.py``): ``id = ANY(…)`` let
        # the planner read every row of an owner it thought small, so pushes slowed as a
        # user's data grew.
        return [
            sql.send(
                "SELECT t.* FROM json_array_elements_text(?::json) AS w(id) CROSS JOIN "
                f"LATERAL (SELECT {ROW_COLUMNS} FROM {table} WHERE owner = ? "
                "AND id = w.id::uuid LIMIT 1) t",
                [_encoder.encode(ids).decode(), owner],
            )
        ]
    return [  # SQLite caps the number of parameters
        sql.send(
            f"SELECT {ROW_COLUMNS} FROM {table} WHERE owner = ? "
            f"AND id IN ({','.join('?' * len(chunk))})",
            [owner, *chunk],
        )
        for chunk in chunks(ids, 500)
    ]


def load_live_by_sku_later(
    sql: Sql, owner: UUID, skus: Iterable[str]
) -> Callable[[], dict[RowKey, ReadRow]]:
    """The owner's live products whose sku is among ``skus``: sent now, read when the result
    is called."""
    wanted = list(dict.fromkeys(skus))
    # Byte-wise on PostgreSQL, to use the index the lists sort skus by (the same rows match).
    sku = 'sku COLLATE "C"' if sql.backend == "postgres" else "sku"
    return _decoded(
        [
            (
                "inventory",
                sql.send(
                    f"SELECT {ROW_COLUMNS} FROM inventory WHERE owner = ? AND deleted_at IS NULL "
                    f"AND {sku} IN ({','.join('?' * len(chunk))})",
                    [owner, *chunk],
                ),
            )
            for chunk in chunks(wanted, 500)
        ]
    )


def load_all(sql: Sql, owner: UUID | None = None) -> dict[tuple[UUID, str, UUID], ReadRow]:
    """Every row of every table, keyed by (owner, table, id): for verify and tests."""
    found: dict[tuple[UUID, str, UUID], ReadRow] = {}
    for table in TABLES.values():
        query = f"SELECT owner, {ROW_COLUMNS} FROM {table}"
        params: list[Any] = []
        if owner is not None:
            query += " WHERE owner = ?"
            params.append(owner)
        for record in sql.fetchall(query, params):
            row_owner = as_uuid(record[0])
            row = row_from(record[1:])
            found[(row_owner, table, row.id)] = row
    return found


def _index_values(table: str, row: ReadRow) -> list[Any]:
    values = []
    for column in INDEX_COLUMNS[table]:
        value = row.data.get(column)
        if column == "show_id" and isinstance(value, str):
            value = UUID(value)
        values.append(value)
    return values


def load_many(sql: Sql, keys: Iterable[OwnedKey], *, suffix: str = "") -> dict[OwnedKey, ReadRow]:
    """The rows that exist among ``keys`` of any owners: one query per table (and chunk, on
    SQLite)."""
    by_table: dict[str, list[tuple[UUID, UUID]]] = {}
    for owner, table, id_ in keys:
        by_table.setdefault(table, []).append((owner, id_))
    columns = ", ".join(f"t.{c}" for c in ROW_COLUMNS.split(", "))
    found: dict[OwnedKey, ReadRow] = {}
    for table, pairs in by_table.items():
        name = physical(table, suffix)
        unique = list(dict.fromkeys(pairs))
        if sql.backend == "postgres":
            # One text parameter, so the statement's text never changes (psycopg converts a
            # statement of hundreds of placeholders in Python each time).
            batches: Iterable[Sequence[tuple[UUID, UUID]]] = [unique]
            wanted = (
                "SELECT split_part(x, '/', 1)::uuid AS o, split_part(x, '/', 2)::uuid AS i "
                "FROM unnest(string_to_array(?, ',')) AS x"
            )
        else:
            batches = chunks(unique, 400)
        for chunk in batches:
            if sql.backend == "postgres":
                params: list[Any] = [",".join(f"{o}/{i}" for o, i in chunk)]
            else:
                wanted = "VALUES " + ",".join("(?, ?)" for _ in chunk)
                params = [value for pair in chunk for value in pair]
            query = (
                f"WITH wanted (o, i) AS ({wanted}) SELECT t.owner, {columns} FROM {name} t "
                "JOIN wanted ON t.owner = wanted.o AND t.id = wanted.i"
            )
            for record in sql.fetchall(query, params):
                owner = as_uuid(record[0])
                row = row_from(record[1:])
                found[(owner, table, row.id)] = row
    return found


def save_rows(
    sql: Sql,
    owner: UUID,
    rows: Mapping[RowKey, ReadRow],
    *,
    suffix: str = "",
    changed_by: Mapping[RowKey, ChangedBy] | None = None,
) -> None:
    """Insert or replace ``rows``: one statement on PostgreSQL, one per table on SQLite.

    ``changed_by``: for the rows it names, ``sync_pos`` is the position of that event (of its
    stream and version: its own position is not known yet), which the database looks up in the
    log as it saves the row; the event must have been appended earlier in the same transaction.
    So a caller that sends its events and its rows without waiting (a pipelined push) never
    waits for positions in between.
    """
    by_table: dict[str, list[tuple[UUID, ReadRow, ChangedBy | None]]] = {}
    for key, row in rows.items():
        by = None if changed_by is None else changed_by.get(key)
        by_table.setdefault(key[0], []).append((owner, row, by))
    _save_tables(sql, by_table, suffix)


def save_many(sql: Sql, rows: Mapping[OwnedKey, ReadRow], *, suffix: str = "") -> None:
    """``save_rows`` for rows of any owners."""
    by_table: dict[str, list[tuple[UUID, ReadRow, ChangedBy | None]]] = {}
    for (owner, table, _), row in rows.items():
        by_table.setdefault(table, []).append((owner, row, None))
    _save_tables(sql, by_table, suffix)


ChangedBy = RecordedEvent
"""The event that last changed a row: its stream and version are what ``save_rows`` reads."""

_Saved = tuple[UUID, ReadRow, ChangedBy | None]
"""A row to save: its owner, the row, and the event that sets its ``sync_pos`` (if not set)."""


def _save_tables(sql: Sql, by_table: Mapping[str, list[_Saved]], suffix: str) -> None:
    if not by_table:
        return
    if sql.backend == "postgres":
        _save_postgres(sql, by_table, suffix)
        return
    for table, table_rows in by_table.items():
        _save_sqlite(sql, table, physical(table, suffix), table_rows)


def insert_new(sql: Sql, rows: Mapping[OwnedKey, ReadRow], *, suffix: str = "") -> None:
    """``save_many`` for rows known not to exist yet (the rows a rebuild's page created): on
    PostgreSQL by a binary COPY, which costs the database a quarter of an upsert's work."""
    if sql.backend != "postgres":
        save_many(sql, rows, suffix=suffix)
        return
    by_table: dict[str, list[list[Any]]] = {}
    for (owner, table, _), row in rows.items():
        by_table.setdefault(table, []).append(_values(table, owner, row))
    for table, values in by_table.items():
        columns = columns_of(table)
        sql.copy(  # type: ignore[attr-defined]
            physical(table, suffix), ", ".join(columns), values, [_PG_TYPES[c] for c in columns]
        )


def columns_of(table: str) -> list[str]:
    """Every column of a read table, in the order rows are written."""
    return [
        "owner", "id", "version", "sync_pos", "created_at", "updated_at", "deleted_at",
        *INDEX_COLUMNS[table], "body", "hidden",
    ]  # fmt: skip


def _values(table: str, owner: UUID, row: ReadRow, by: ChangedBy | None = None) -> list[Any]:
    """The row's column values in ``columns_of`` order (``sync_pos`` None when the event ``by``
    sets it)."""
    return [
        *_short_values(table, owner, row, by), body_of(row).decode(),
        _encoder.encode(row.hidden).decode(),
    ]  # fmt: skip


def _short_values(table: str, owner: UUID, row: ReadRow, by: ChangedBy | None) -> list[Any]:
    """``_values`` but the two JSON texts."""
    return [
        owner, row.id, row.version, row.sync_pos if by is None else None, row.created_at,
        row.updated_at, row.deleted_at, *_index_values(table, row),
    ]  # fmt: skip


# A row's position, or the position of the event that last changed it: ``ChangedBy``.
_SYNC_POS_SQLITE = (
    "COALESCE(?, (SELECT position FROM events WHERE owner = ? AND stream_type = ? "
    "AND stream_id = ? AND version = ?))"
)


def _save_sqlite(sql: Sql, table: str, name: str, rows: list[_Saved]) -> None:
    columns = columns_of(table)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[2:])
    marks = ["?"] * len(columns)
    marks[columns.index("sync_pos")] = _SYNC_POS_SQLITE
    sql.executemany(
        f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({','.join(marks)}) "
        f"ON CONFLICT (owner, id) DO UPDATE SET {updates}",
        [_sqlite_values(table, owner, row, by) for owner, row, by in rows],
    )


def _sqlite_values(table: str, owner: UUID, row: ReadRow, by: ChangedBy | None) -> list[Any]:
    values = _values(table, owner, row, by)
    # sync_pos (fourth in ``columns_of`` order) becomes the five parameters of _SYNC_POS_SQLITE
    values[4:4] = [owner, *_by(by)]
    return values


_PG_TYPES = {
    "owner": "uuid", "id": "uuid", "version": "int4", "sync_pos": "int8",
    "created_at": "timestamptz", "updated_at": "timestamptz", "deleted_at": "timestamptz",
    "status": "text", "date": "text",
    "show_id": "uuid", "sku": "text", "low_stock": "boolean", "body": "text", "hidden": "text",
}  # fmt: skip


# One record type per table, its fields the table's columns but the two JSON texts (``body``
# and ``hidden``, which go as texts of their own: ``_save_postgres``) and the event that sets
# ``sync_pos`` when it is not given (``ChangedBy``): it encodes to the same JSON object as a dict
# of column -> value, and costs a quarter as much to build (gc=False: see ``rows.ReadRow``).
_TEXTS = ("body", "hidden")
_SEPARATOR = b"\x1e"
"""ASCII's record separator: a control character, which JSON text holds only escaped."""
_SPLIT = f"chr({_SEPARATOR[0]})"
"""``_SEPARATOR`` in SQL."""
_BY = ("by_t", "by_i", "by_v")  # the type, id and version of the event: short, in every row
_RECORDS: dict[str, type[msgspec.Struct]] = {
    table: msgspec.defstruct(
        f"{table}_record",
        [(column, Any) for column in (*columns_of(table)[: -len(_TEXTS)], *_BY)],
        gc=False,
    )
    for table in INDEX_COLUMNS
}
_BY_TYPES = "by_t text, by_i uuid, by_v int4"
_SYNC_POS_POSTGRES = (
    "COALESCE(r.sync_pos, (SELECT position FROM events e WHERE (e.owner, e.stream_type, "
    "e.stream_id, e.version) = (r.owner, r.by_t, r.by_i, r.by_v)))"
)
_NO_BY = (None, None, None)


def _by(event: ChangedBy | None) -> tuple[str | None, UUID | None, int | None]:
    return _NO_BY if event is None else (event.stream.type, event.stream.id, event.version)


def _save_postgres(sql: Sql, by_table: Mapping[str, list[_Saved]], suffix: str) -> None:
    # One statement for every table: a statement costs psycopg and PostgreSQL more than hundreds
    # of rows. Per table, the short columns go as one JSON document, which json_to_recordset
    # parses once into typed columns, and the two JSON texts of each row (``body``, ``hidden``)
    # as two texts, every row's joined by a separator that JSON text never holds, which
    # string_to_array splits with a byte search. Inside the document they were strings with
    # every quote escaped, which Python escaped and PostgreSQL unescaped one character at a
    # time: a tenth of the database's work in a push. (Bodies as JSON values rather than
    # strings cost PostgreSQL more to parse than they spared; arrays of text, sent in binary,
    # as much as the separator but for psycopg's Python loop over their elements: measured.)
    # The live tables all exist: one statement names all four whatever a batch touches (one
    # prepared statement). A rebuild's copies exist only for the tables it builds, and it saves
    # rows of those only: its statement names those.
    names = tuple(_RECORDS) if not suffix else tuple(t for t in _RECORDS if t in by_table)
    params: list[Any] = []
    for table in names:
        record = _RECORDS[table]
        rows = by_table.get(table, ())
        records, bodies, hidden = [], [], []
        for owner, row, by in rows:
            records.append(record(*_short_values(table, owner, row, by), *_by(by)))
            bodies.append(body_of(row))
            hidden.append(_encoder.encode(row.hidden))
        # A table with no rows gets empty parameters of the same types: one prepared statement.
        params += [
            _joined(bodies),
            _joined(hidden),
            sql.json(_encoder.encode(records) if records else _NO_ROWS),
        ]
    sql.execute(_upsert_postgres(suffix, names), params)


def _joined(texts: list[bytes]) -> str:
    joined = _SEPARATOR.join(texts)
    if texts and joined.count(_SEPARATOR) != len(texts) - 1:  # a C scan: cheap insurance
        raise ValueError("a JSON text held a raw record separator")
    return joined.decode()


_NO_ROWS = b"[]"


@functools.cache
def _upsert_postgres(suffix: str, names: tuple[str, ...]) -> str:
    """The upsert of the rows of the tables ``names`` (in ``_RECORDS`` order), each from two
    lists of texts and a document of the same length, zipped by ``ROWS FROM``.

    Kept under 4 KiB: psycopg caches the conversion of its placeholders only for a statement
    that short, and parsed a longer one again on every call (with regular expressions, in
    Python). The texts come first so that naming their two columns (``AS r(body, hidden)``)
    leaves the document's columns with the names its definition list gives them."""
    upserts = []
    for table in names:
        columns = columns_of(table)
        short = columns[: -len(_TEXTS)]
        typed = ", ".join(f"{c} {_PG_TYPES[c]}" for c in short)
        selected = ", ".join(_SYNC_POS_POSTGRES if c == "sync_pos" else f"r.{c}" for c in columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[2:])
        upserts.append(
            f"saved_{table} AS (INSERT INTO {physical(table, suffix)} ({', '.join(columns)}) "
            f"SELECT {selected} FROM ROWS FROM (unnest(string_to_array(?, {_SPLIT})), "
            f"unnest(string_to_array(?, {_SPLIT})), "
            f"json_to_recordset(?::json) AS ({typed}, {_BY_TYPES})) AS r({', '.join(_TEXTS)}) "
            f"ON CONFLICT (owner, id) DO UPDATE SET {updates})"
        )
    statement = f"WITH {', '.join(upserts)} SELECT 1"
    assert len(statement) <= 4096, "psycopg would parse it on every call"
    return statement


def _check_table(table: str) -> None:
    if table not in ENTITIES:
        raise ValueError(f"unknown read table {table!r}")


RANKS: dict[str, int] = {table: rank for rank, table in enumerate(TABLES.values())}
"""Where each table's rows stand among the rows that share one sync position, in pull order."""
LAST_RANK = len(RANKS)


class SyncKey(NamedTuple):
    """A place in one owner's sync order: ``(sync_pos, table rank, id)``.

    ``sync_pos`` alone is not a total order: one event can change several rows (a cost and the
    show it weighs on get the same ``sync_pos``), and a page may end between them. The default
    rank and id mean "after every row at ``position``".
    """

    position: int
    rank: int = LAST_RANK
    id: UUID | None = None


class ChangeRecord(msgspec.Struct, frozen=True):
    """One row as a pull reads it: where it is in sync order and its stored public JSON."""

    entity: str
    id: UUID
    version: int
    sync_pos: int
    rank: int
    deleted: bool
    body: str

    @property
    def key(self) -> SyncKey:
        return SyncKey(self.sync_pos, self.rank, self.id)


def changes_after(
    sql: Sql,
    owner: UUID,
    after: SyncKey,
    limit: int,
    tables: Sequence[str] = tuple(TABLES.values()),
) -> list[ChangeRecord]:
    """The owner's rows changed after ``after`` in sync order, at most ``limit``.

    Gap-free: one owner's writes are serialized and take increasing positions (event_store's
    ``store.py``), so a snapshot always holds a prefix of that owner's sync positions.
    """
    branches = []
    params: list[Any] = []
    for table in tables:
        _check_table(table)
        rank = RANKS[table]
        if rank < after.rank:
            condition, values = "sync_pos > ?", [after.position]
        elif rank > after.rank:
            condition, values = "sync_pos >= ?", [after.position]
        else:
            # The same as (sync_pos > p OR (sync_pos = p AND id > i)), spelt so that SQLite
            # searches the (owner, sync_pos) index from p: with the OR alone it walked every
            # row the owner has in this table on each pull.
            condition = "sync_pos >= ? AND (sync_pos > ? OR id > ?)"
            values = [after.position, after.position, after.id]
        branches.append(
            f"SELECT '{ENTITIES[table]}' AS entity, id, version, sync_pos, {rank} AS rank, "
            f"deleted_at, body FROM {table} WHERE owner = ? AND {condition}"
        )
        params += [owner, *values]
    query = " UNION ALL ".join(f"SELECT * FROM ({b}) AS b{i}" for i, b in enumerate(branches))
    records = sql.fetchall(f"{query} ORDER BY sync_pos, rank, id LIMIT ?", [*params, limit])
    return [
        ChangeRecord(
            entity=entity,
            id=as_uuid(id_),
            version=version,
            sync_pos=sync_pos,
            rank=rank,
            deleted=deleted_at is not None,
            body=body,
        )
        for entity, id_, version, sync_pos, rank, deleted_at, body in records
    ]


def head(sql: Sql, owner: UUID) -> int:
    """The highest sync position among the owner's rows (0 when there is none)."""
    parts = " UNION ALL ".join(
        f"SELECT max(sync_pos) AS m FROM {t} WHERE owner = ?" for t in TABLES.values()
    )
    row = sql.fetchone(f"SELECT max(m) FROM ({parts}) AS heads", [owner] * len(TABLES))
    return int(row[0]) if row and row[0] is not None else 0
