"""The local SQLite file: the user's copy of the read tables, the outbox, the rejections, and
the small facts a client keeps (tokens, pull cursor, client id).

Everything that must stay consistent changes in one transaction (``LocalStore.transaction``):
a page of pulled rows together with the cursor that follows it, a push's outcomes together with
the outbox rows they settle. A process killed at any moment therefore leaves either the state
before or the state after, never a queued op lost or applied twice.

One connection per store, shared by the app's threads and the sync loop behind a lock. Another
process opening the same file is refused (``StoreInUse``) where the OS offers advisory locks,
because two writers of one outbox would send the same ops under one client id at once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Final
from uuid import UUID

import msgspec

from .errors import ClientError, StoreInUse

try:  # advisory file locks: POSIX only; elsewhere one process per file is on the app
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None  # type: ignore[assignment]

MEMORY: Final = ":memory:"

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode

# Each entry brings the schema from the version before it (statement by statement); never edit
# one once released, add the next.
_MIGRATIONS: Final = (
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        # The server's rows as last pulled, derived fields included; tombstones keep no data.
        """CREATE TABLE rows (
            entity  TEXT NOT NULL,
            id      TEXT NOT NULL,
            version INTEGER NOT NULL,
            deleted INTEGER NOT NULL,
            data    TEXT,
            PRIMARY KEY (entity, id)
        ) WITHOUT ROWID""",
        # Ops in the order they were made (AUTOINCREMENT: a seq is never given twice). ``sent``
        # freezes an op: once it may have reached the server, its op_id is bound to its content
        # for good. ``acked_version`` is set when the server applied it: the op keeps showing
        # over the rows until a pull brings that version.
        """CREATE TABLE outbox (
            seq           INTEGER PRIMARY KEY AUTOINCREMENT,
            op_id         TEXT NOT NULL UNIQUE,
            entity        TEXT NOT NULL,
            id            TEXT NOT NULL,
            action        TEXT NOT NULL,
            base_version  INTEGER,
            data          TEXT NOT NULL,
            seen          TEXT,
            client_ts     TEXT NOT NULL,
            sent          INTEGER NOT NULL DEFAULT 0,
            acked_version INTEGER
        )""",
        "CREATE INDEX outbox_by_entity ON outbox (entity, id, seq)",
        # Ops the server refused, and conflicts in which some of the user's values were lost.
        """CREATE TABLE rejections (
            seq         INTEGER PRIMARY KEY AUTOINCREMENT,
            op_id       TEXT NOT NULL,
            entity      TEXT NOT NULL,
            id          TEXT NOT NULL,
            action      TEXT NOT NULL,
            data        TEXT NOT NULL,
            kind        TEXT NOT NULL,
            code        TEXT NOT NULL,
            message     TEXT NOT NULL,
            details     TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        )""",
    ),
)


@dataclass(frozen=True)
class StoredRow:
    entity: str
    id: UUID
    version: int
    deleted: bool
    data: dict[str, Any] | None


@dataclass(frozen=True)
class QueuedOp:
    """One outbox entry. ``seen`` holds, for an update or delete, the values the user saw for
    the fields the op is about: the base of the three-way comparison on conflict."""

    seq: int
    op_id: UUID
    entity: str
    id: UUID
    action: str
    base_version: int | None
    data: dict[str, Any]
    seen: dict[str, Any] | None
    client_ts: str
    sent: bool
    acked_version: int | None

    @property
    def acked(self) -> bool:
        return self.acked_version is not None


@dataclass(frozen=True)
class StoredRejection:
    seq: int
    op_id: UUID
    entity: str
    id: UUID
    action: str
    data: dict[str, Any]
    kind: str
    code: str
    message: str
    details: Mapping[str, Any]
    recorded_at: str


_OP_COLUMNS: Final = (
    "seq, op_id, entity, id, action, base_version, data, seen, client_ts, sent, acked_version"
)
_REJECTION_COLUMNS: Final = (
    "seq, op_id, entity, id, action, data, kind, code, message, details, recorded_at"
)


def _op(record: Sequence[Any]) -> QueuedOp:
    seq, op_id, entity, id_, action, base, data, seen, ts, sent, acked = record
    return QueuedOp(
        seq,
        UUID(op_id),
        entity,
        UUID(id_),
        action,
        base,
        _decode(data),
        None if seen is None else _decode(seen),
        ts,
        bool(sent),
        acked,
    )


class LocalStore:
    """The SQLite file of one client. Use ``transaction()`` around every read or write."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._depth = 0
        self._lock_file = None if self.path == MEMORY else _exclusive(self.path)
        new = self.path == MEMORY or not os.path.exists(self.path)
        try:
            # Autocommit mode: transactions are opened explicitly, so their bounds are ours.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if new and self.path != MEMORY:
                # It holds a refresh token: readable by its owner only.
                os.chmod(self.path, 0o600)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed transaction survives a power cut too, not only a killed process.
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the file. An open transaction is rolled back, as a crash would."""
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _migrate(self) -> None:
        with self.transaction():
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version > len(_MIGRATIONS):
                raise ClientError(
                    f"{self.path} was written by a newer version of the SDK (schema {version})"
                )
            for number, statements in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One local transaction (nested calls join the outer one); rolled back on error."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._db.execute("ROLLBACK")
                raise
            self._depth = 0
            self._db.execute("COMMIT")

    def _all(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._db.execute(query, params).fetchall()

    def _one(self, query: str, params: Sequence[Any] = ()) -> Any:
        return self._db.execute(query, params).fetchone()

    # -- meta ------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        found = self._one("SELECT value FROM meta WHERE key = ?", [key])
        return None if found is None else str(found[0])

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", [key])
        else:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )

    # -- the copy of the read tables -------------------------------------------------------------

    def row(self, entity: str, id_: UUID) -> StoredRow | None:
        found = self._one(
            "SELECT version, deleted, data FROM rows WHERE entity = ? AND id = ?",
            [entity, str(id_)],
        )
        if found is None:
            return None
        version, deleted, data = found
        return StoredRow(
            entity, id_, version, bool(deleted), None if data is None else _decode(data)
        )

    def rows(self, entity: str | None = None) -> list[StoredRow]:
        query = "SELECT entity, id, version, deleted, data FROM rows"
        params: list[Any] = []
        if entity is not None:
            query += " WHERE entity = ?"
            params.append(entity)
        return [
            StoredRow(e, UUID(i), v, bool(d), None if data is None else _decode(data))
            for e, i, v, d, data in self._all(query + " ORDER BY entity, id", params)
        ]

    def put_row(self, row: StoredRow) -> None:
        self._db.execute(
            "INSERT INTO rows (entity, id, version, deleted, data) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (entity, id) DO UPDATE SET version = excluded.version, "
            "deleted = excluded.deleted, data = excluded.data",
            [
                row.entity,
                str(row.id),
                row.version,
                int(row.deleted),
                None if row.data is None else _encode(row.data).decode(),
            ],
        )

    def clear_rows(self) -> None:
        self._db.execute("DELETE FROM rows")

    # -- the outbox ------------------------------------------------------------------------------

    def ops(
        self,
        entity: str | None = None,
        id_: UUID | None = None,
        *,
        unacked_only: bool = False,
        limit: int | None = None,
        max_seq: int | None = None,
    ) -> list[QueuedOp]:
        """Outbox entries in order, optionally of one entity type or one entity."""
        conditions: list[str] = []
        params: list[Any] = []
        if entity is not None:
            conditions.append("entity = ?")
            params.append(entity)
        if id_ is not None:
            conditions.append("id = ?")
            params.append(str(id_))
        if unacked_only:
            conditions.append("acked_version IS NULL")
        if max_seq is not None:
            conditions.append("seq <= ?")
            params.append(max_seq)
        query = f"SELECT {_OP_COLUMNS} FROM outbox"
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        query += " ORDER BY seq"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        return [_op(record) for record in self._all(query, params)]

    def last_op(self) -> QueuedOp | None:
        found = self._one(f"SELECT {_OP_COLUMNS} FROM outbox ORDER BY seq DESC LIMIT 1")
        return None if found is None else _op(found)

    def last_seq(self) -> int:
        return int(self._one("SELECT coalesce(max(seq), 0) FROM outbox")[0])

    def add_op(self, op: QueuedOp) -> int:
        """Append ``op`` (its ``seq`` is ignored unless positive: then it takes that place)."""
        cursor = self._db.execute(
            "INSERT INTO outbox (seq, op_id, entity, id, action, base_version, data, seen, "
            "client_ts, sent, acked_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                op.seq if op.seq > 0 else None,
                str(op.op_id),
                op.entity,
                str(op.id),
                op.action,
                op.base_version,
                _encode(op.data).decode(),
                None if op.seen is None else _encode(op.seen).decode(),
                op.client_ts,
                int(op.sent),
                op.acked_version,
            ],
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def replace_op(self, op: QueuedOp) -> None:
        """Put ``op`` in place of the entry at ``op.seq`` (a resolution keeps its place)."""
        self.remove_ops([op.seq])
        self.add_op(op)

    def mark_sent(self, seqs: Iterable[int]) -> None:
        self._db.executemany("UPDATE outbox SET sent = 1 WHERE seq = ?", [[s] for s in seqs])

    def mark_acked(self, seq: int, version: int) -> None:
        self._db.execute("UPDATE outbox SET acked_version = ? WHERE seq = ?", [version, seq])

    def remove_ops(self, seqs: Iterable[int]) -> None:
        self._db.executemany("DELETE FROM outbox WHERE seq = ?", [[s] for s in seqs])

    def remove_acked(self, op_ids: Iterable[UUID]) -> None:
        self._db.executemany(
            "DELETE FROM outbox WHERE op_id = ? AND acked_version IS NOT NULL",
            [[str(op_id)] for op_id in op_ids],
        )

    def remove_acked_covered(self, entity: str, id_: UUID, version: int) -> None:
        """Drop acknowledged ops on an entity whose pulled row has reached their version."""
        self._db.execute(
            "DELETE FROM outbox WHERE entity = ? AND id = ? AND acked_version <= ?",
            [entity, str(id_), version],
        )

    # -- rejections ------------------------------------------------------------------------------

    def add_rejection(self, rejection: StoredRejection) -> int:
        cursor = self._db.execute(
            f"INSERT INTO rejections ({_REJECTION_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?)",
            [
                str(rejection.op_id),
                rejection.entity,
                str(rejection.id),
                rejection.action,
                _encode(rejection.data).decode(),
                rejection.kind,
                rejection.code,
                rejection.message,
                _encode(rejection.details).decode(),
                rejection.recorded_at,
            ],
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def rejections(self) -> list[StoredRejection]:
        records = self._all(f"SELECT {_REJECTION_COLUMNS} FROM rejections ORDER BY seq")
        return [_rejection(record) for record in records]

    def remove_rejections(self, seqs: Iterable[int] | None = None) -> None:
        if seqs is None:
            self._db.execute("DELETE FROM rejections")
        else:
            self._db.executemany("DELETE FROM rejections WHERE seq = ?", [[s] for s in seqs])


def _rejection(record: Sequence[Any]) -> StoredRejection:
    seq, op_id, entity, id_, action, data, kind, code, message, details, recorded_at = record
    return StoredRejection(
        seq,
        UUID(op_id),
        entity,
        UUID(id_),
        action,
        _decode(data),
        kind,
        code,
        message,
        _decode(details),
        recorded_at,
    )


def _exclusive(path: str) -> IO[bytes] | None:
    """Hold an advisory lock on ``<path>.lock`` for as long as the store is open. The OS drops
    it when the process dies, so a killed client can be reopened at once."""
    if fcntl is None:  # pragma: no cover
        return None
    handle = open(path + ".lock", "ab")  # noqa: SIM115 - held open for the store's lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreInUse(f"{path} is open in another process (or another Client)") from None
    return handle
