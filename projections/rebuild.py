"""Rebuild and verify the four read tables from the log, while the server keeps running.

How a rebuild stays invisible to pulls and loses no push
--------------------------------------------------------
1. **Aside.** Each read table gets an empty copy with the same columns and key
   (``shows__aside_<id>``…), made for this run only.
2. **Fill.** The global feed is read from the start a page at a time, and each page is projected
   for the copies by ``project.project``, the very code a push runs inline; the rows it changed
   are written in a short transaction of its own: pushes go on meanwhile (on SQLite they wait
   at most one page's write).
   Rows carry the positions of the events that made them, so they get the same ``sync_pos`` as
   the live rows. On PostgreSQL a large log is filled by several processes at once, one per
   core, each reading and projecting the events of its part of the owners (``FeedPart``):
   owners' rows are independent, and one Python process projecting every event was a
   rebuild's limit.
3. **Catch up, then swap, under a short lock.** One transaction takes ``hold_appends`` (it waits
   for the owner transactions in flight and holds new ones at their start), projects what was
   appended since the last page of each part (every event is final now, so the feed is read to
   its end), and then writes into the live tables only the rows that differ from the copies
   (insert, update, delete), and drops the copies. It commits, and pushes resume: none was
   lost, since every event committed before the lock is in the copies and none could commit
   during it.

The swap writes rows in place rather than renaming tables because PostgreSQL's DDL is not MVCC
safe: a pull whose REPEATABLE READ snapshot was taken just before a rename committed would read
the renamed table with its old snapshot, and find rows missing. Rows written in place are
ordinary MVCC writes: a pull sees the tables wholly before or wholly after the swap, never a
half-built one. And when the live tables already equal the log, which is the usual case, the
swap writes nothing.

Clients keep their cursors when nothing changed. When rows did change (the live tables had
drifted from the log) or the projector code changed (``project.DEFINITION``), the epoch moves
on, so that every client is told to ``reset`` on its next pull: their copies hold the wrong
rows, and with the same positions a cursor would never send them the right ones.

``verify`` does steps 1 to 3 but compares instead of swapping, and writes nothing live. One rebuild
or verify runs at a time (a lease on ``read_tables`` in ``projection_state``).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import pickle
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypeVar
from uuid import UUID

import msgspec

from event_store import (
    START,
    Checkpoint,
    EventStore,
    FeedPart,
    Page,
    RecordedEvent,
    Sql,
    Timeouts,
    UpcasterRegistry,
    as_uuid,
    open_store,
)
from event_store.events import part_of

from . import projection_state, tables
from .apply import keys_needed
from .project import DEFINITION, READ_TABLES, project
from .rows import ENTITIES, TABLES, ReadRow, RowKey, key_of

PAGE: Final = 5000
"""Events per fill transaction."""
CACHE_ROWS: Final = 200_000
"""Rows kept in memory between pages; beyond, the cache is dropped (rows are read again)."""

NEEDS: Final[Mapping[str, tuple[str, ...]]] = {
    "shows": ("shows", "costs"),
    "costs": ("costs",),
    "workouts": ("workouts",),
    "inventory": ("inventory",),
}
"""What must be built to rebuild a table: a show's totals follow its costs' events, and a cost
event needs the cost row to know which show it leaves."""

ASIDE: Final = "__aside_"

PARALLEL_FROM: Final = 200_000
"""Events from which a PostgreSQL rebuild fills the copies in several processes: below, starting
them costs more than they save."""
MAX_WORKERS: Final = 4
"""Fill processes at most (measured with two, on two cores: PostgreSQL shares them)."""

Progress = Callable[[int, int], None]
"""Called with (events done, events in the log when the run started) after every page."""

OwnedKey = tables.OwnedKey


class RebuildError(Exception):
    """The request cannot be carried out (an unknown table, …); nothing was changed."""


@dataclass(frozen=True)
class Rebuilt:
    tables: list[str]
    events: int
    """Events projected."""
    changed: int
    """Live rows inserted, updated or deleted by the swap (0 when live equalled the log)."""
    epoch: int
    reset: bool
    """Whether the epoch moved on (clients will be told to reset)."""


@dataclass(frozen=True)
class Difference:
    """One field of one row where the live tables and the log disagree."""

    table: str
    owner: UUID
    id: UUID
    field: str
    live: Any
    replayed: Any


# -- the copies aside ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Aside:
    """Copies of some read tables, for one run."""

    tables: tuple[str, ...]
    suffix: str

    @classmethod
    def new(cls, names: Iterable[str]) -> Aside:
        return cls(tuple(names), f"{ASIDE}{uuid.uuid4().hex[:8]}")

    def name(self, table: str) -> str:
        return tables.physical(table, self.suffix)

    def create(self, sql: Sql) -> None:
        for table in self.tables:
            name = self.name(table)
            if sql.backend == "postgres":
                # Unlogged: a copy that a crash loses is simply built again.
                sql.execute(f"CREATE UNLOGGED TABLE {name} (LIKE {table} INCLUDING DEFAULTS)")
                sql.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (owner, id)")
            else:
                row = sql.fetchone(
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
                )
                if row is None:
                    raise RebuildError(f"no table {table}: run sync-server migrate")
                ddl, count = re.subn(
                    rf'^CREATE TABLE\s+"?{table}"?\s*\(', f"CREATE TABLE {name} (", row[0]
                )
                if count != 1:
                    raise RebuildError(f"cannot read the definition of {table}")
                sql.execute(ddl)

    def drop(self, sql: Sql) -> None:
        for table in self.tables:
            sql.execute(f"DROP TABLE IF EXISTS {self.name(table)}")


def drop_leftovers(sql: Sql) -> list[str]:
    """Drop copies left by runs that died (call only while holding the lease)."""
    pattern = f"%{ASIDE.replace('_', '!_')}%"
    if sql.backend == "postgres":
        query = (
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename LIKE ? ESCAPE '!'"
        )
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ? ESCAPE '!'"
    names = [str(row[0]) for row in sql.fetchall(query, [pattern])]
    for name in names:
        sql.execute(f"DROP TABLE IF EXISTS {name}")
    return names


# -- projecting pages into the copies --------------------------------------------------------


class Replay:
    """Projects pages of the feed (many owners) for the copies aside.

    ``project`` runs once per owner of a page; as its ``RowIO`` this class serves rows from a
    cache and collects every row a page changed, to be written in one statement per table at
    the end of the page. The copies start empty and only this object's rows go into them, so
    while the cache has never been dropped it holds every row there is: a key it lacks has no
    row, and nothing is read back. Past ``CACHE_ROWS`` the cache is dropped (memory stays
    bounded); from then on the rows a page needs are loaded for the whole page at once, one
    query per table, and keys found to have no row are remembered, so that a creation costs no
    query.
    """

    def __init__(self, aside: Aside, cache_rows: int = CACHE_ROWS) -> None:
        self.cache_rows = cache_rows
        self.suffix = aside.suffix
        self.tables = frozenset(aside.tables)
        self.entities = frozenset(ENTITIES[table] for table in aside.tables)
        self.rows: dict[UUID, dict[RowKey, ReadRow]] = {}
        self.absent: set[OwnedKey] = set()
        self.changed: dict[OwnedKey, ReadRow] = {}
        self.complete = True
        """The cache holds every row of the copies (it was never dropped)."""
        self.events = 0
        self._sql: Sql | None = None

    def apply(self, sql: Sql, events: Sequence[RecordedEvent]) -> None:
        """Project a page and write the rows it changed, in ``sql``'s transaction."""
        self.project(sql, events).write(sql, self.suffix)
        if self.full:
            self.drop_cache()

    def project(self, sql: Sql, events: Sequence[RecordedEvent]) -> PageRows:
        """Project a page, reading what the cache lacks through ``sql``; return the rows it
        changed, which must be in the copies before the cache is dropped."""
        self._sql = sql
        wanted = [event for event in events if event.stream.type in self.entities]
        by_owner: dict[UUID, list[RecordedEvent]] = {}
        for event in wanted:
            by_owner.setdefault(event.owner, []).append(event)
        if not self.complete:
            self._prefetch(sql, wanted)
        for owner, owned in by_owner.items():
            held = self.rows.setdefault(owner, {})
            project(sql, owner, owned, held, io=self, complete=self.complete)
        self.events += len(events)
        changed, self.changed = self.changed, {}
        created: dict[OwnedKey, ReadRow] = {}
        for event in wanted:
            # A row is made by its stream's first event, and by no other: none is in the
            # copies before the page that holds that event.
            if event.version == 1:
                key = (event.owner, TABLES[event.stream.type], event.stream.id)
                if (row := changed.pop(key, None)) is not None:
                    created[key] = row
        return PageRows(created, changed)

    @property
    def full(self) -> bool:
        return sum(len(held) for held in self.rows.values()) > self.cache_rows

    def drop_cache(self) -> None:
        """Forget every row: call only once the copies hold every row projected so far."""
        self.rows.clear()
        self.absent.clear()
        self.complete = False

    def _prefetch(self, sql: Sql, events: Sequence[RecordedEvent]) -> None:
        # One round: what the loaded rows point to in turn (the show a cost was on) is nearly
        # always held already, and ``load`` fetches the rest. A stream's first event finds no
        # row (rows are made only by their own stream's events), and neither does any later
        # event of the page about that stream: most of a log's streams begin near where they
        # are changed, so most pages need no query at all.
        wanted: set[OwnedKey] = set()
        new: set[OwnedKey] = set()
        for event in events:
            owner = event.owner
            own = key_of(event.stream)
            if event.version == 1 and own is not None:
                new.add((owner, *own))
            held = self.rows.get(owner, {})
            for table, id_ in keys_needed(event, held):
                if (table, id_) not in held and table in self.tables:
                    wanted.add((owner, table, id_))
        self.absent |= new
        wanted -= self.absent
        if not wanted:
            return
        found = tables.load_many(sql, wanted, suffix=self.suffix)
        for key in wanted:
            row = found.get(key)
            if row is None:
                self.absent.add(key)
            else:
                self.rows.setdefault(key[0], {})[(key[1], key[2])] = row

    # RowIO, for what the prefetch did not foresee:
    def load(self, owner: UUID, keys: set[RowKey]) -> Mapping[RowKey, ReadRow]:
        assert self._sql is not None
        if self.complete:
            return {}
        # A table not being built is not there: a cost event leaves an absent show alone.
        wanted = {key for key in keys if key[0] in self.tables and (owner, *key) not in self.absent}
        found = tables.load_rows(self._sql, owner, wanted, suffix=self.suffix) if wanted else {}
        self.absent.update((owner, *key) for key in wanted - found.keys())
        return found

    def save(self, owner: UUID, rows: Mapping[RowKey, ReadRow]) -> None:
        # ``project`` runs once per owner and page and hands each changed row once.
        self.changed.update({(owner, table, id_): row for (table, id_), row in rows.items()})


class PageRows(NamedTuple):
    """The rows a page changed."""

    created: dict[OwnedKey, ReadRow]
    """Those it made: not in the copies yet."""
    updated: dict[OwnedKey, ReadRow]
    """The others (in the copies, or written by a page still being written)."""

    def write(self, sql: Sql, suffix: str) -> None:
        tables.insert_new(sql, self.created, suffix=suffix)
        tables.save_many(sql, self.updated, suffix=suffix)


def fill(
    store: EventStore,
    replay: Replay,
    lease: projection_state.Lease,
    after: Checkpoint = START,
    progress: Progress | None = None,
    total: int = 0,
    part: FeedPart | None = None,
    page: int | None = None,
) -> Checkpoint:
    """Project the feed after ``after`` (only ``part`` of it, if given) into the copies, a page
    at a time, until a page comes back short; return where it stopped. Each page is written in
    a transaction of its own that renews the lease. ``page``: events per page (``PAGE``)."""
    checkpoint = after
    with _collector_paused(), _Writer(store, lease, replay.suffix) as writer:
        for read in _read_ahead(store, after, part, page or PAGE):
            if read.events:
                with store.snapshot() as sql:  # the cache may lack rows the copies hold
                    changed = replay.project(sql, read.events)
                writer.write(changed)
                if replay.full:
                    writer.wait()
                    replay.drop_cache()
                checkpoint = read.checkpoint
                if progress is not None:
                    progress(replay.events, total)
    return checkpoint


class _Writer:
    """Writes each page's rows into the copies, in a transaction of its own that renews the
    lease (so no page is written by a process that lost it).

    On PostgreSQL a thread writes, one page behind: the database stores page N while Python
    projects page N+1, instead of one waiting for the other (the writes were about a third of
    a rebuild's time). Pages are written in order, so a row changed by two pages ends as the
    later one made it; and reading the copies while a write is in flight is safe, because the
    rows being written are all still in ``Replay``'s cache, which is dropped only after
    ``wait``. On SQLite the caller writes: the gain is PostgreSQL's (a second process, on
    another core), and an in-memory SQLite database's shared cache would not let the copies be
    read while another connection writes them.
    """

    def __init__(self, store: EventStore, lease: projection_state.Lease, suffix: str) -> None:
        self._store = store
        self._lease = lease
        self._suffix = suffix
        self._thread = (
            ThreadPoolExecutor(1, thread_name_prefix="rebuild-write")
            if store.backend == "postgres"
            else None
        )
        self._pending: Future[None] | None = None

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, error: type[BaseException] | None, *_: object) -> None:
        try:
            if error is None:
                self.wait()
            else:  # the caller's error comes first; the aside tables are dropped next
                with contextlib.suppress(Exception):
                    self.wait()
        finally:
            if self._thread is not None:
                self._thread.shutdown()

    def write(self, rows: PageRows) -> None:
        """Write ``rows`` (maybe later); raise what the previous write raised."""
        self.wait()
        if self._thread is None:
            self._write(rows)
        else:
            self._pending = self._thread.submit(self._write, rows)

    def wait(self) -> None:
        """Until every row handed to ``write`` is committed; raise what a write raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _write(self, rows: PageRows) -> None:
        with self._store.sql() as sql:
            rows.write(sql, self._suffix)
            # Renewed last, so that the lease's row is locked only for the commit: the fill
            # processes of a run renew the same lease, and each waited for the other's writes.
            self._lease.renew(sql)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection while a fill runs (unless it is off already).

    A fill keeps hundreds of thousands of rows (and their dicts, lists and UUIDs) and makes
    more on every page, so CPython's collections ran every few hundred allocations and its full
    ones walked every row again and again: a quarter to a third of a rebuild's CPU time, for
    objects that reference counting frees (a fill makes next to no reference cycles: a few
    dozen objects over 100,000 events). What cyclic garbage it makes waits for the end.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if not gc.get_freeze_count():
            # What the fill made and still holds goes straight to the oldest generation, as if
            # it had been collected: else the first young collection would walk it all at once.
            gc.freeze()
            gc.unfreeze()
        gc.enable()


def _read_ahead(
    store: EventStore, after: Checkpoint, part: FeedPart | None, size: int
) -> Iterator[Page]:
    """The feed's pages after ``after``, up to the first short one, each read by a thread
    while the page before it is being projected (the database works while Python does)."""
    pages: queue.Queue[Page | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def read() -> None:
        checkpoint = after
        try:
            while not stop.is_set():
                page = store.read_all(checkpoint, size, part=part)
                pages.put(page)
                if len(page.events) < size:
                    break
                checkpoint = page.checkpoint
        except BaseException as error:  # handed to the consumer, which raises it
            pages.put(error)
            return
        pages.put(None)

    reader = threading.Thread(target=read, name="rebuild-read-ahead", daemon=True)
    reader.start()
    try:
        while (item := pages.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # let a reader blocked on a full queue finish
            with contextlib.suppress(queue.Empty):
                pages.get(timeout=0.1)
        reader.join()


def _catch_up_held(store: EventStore, sql: Sql, replay: Replay, filled: Filled) -> None:
    """Inside the locked transaction: project every event the fill did not."""
    store.hold_appends(sql)
    checkpoint = filled.after
    while True:
        page = store.read_feed(sql, checkpoint, PAGE, appends_held=True)
        events = [event for event in page.events if not filled.holds(event)]
        if events:
            replay.apply(sql, events)
        checkpoint = page.checkpoint
        if len(page.events) < PAGE:
            return


@dataclass(frozen=True)
class Filled:
    """How far the fill went: part ``i`` of the feed split ``len(parts)`` ways, up to
    ``parts[i]`` (a single part when one process filled)."""

    parts: tuple[Checkpoint, ...]

    @property
    def after(self) -> Checkpoint:
        return min(self.parts)

    def holds(self, event: RecordedEvent) -> bool:
        """Whether the fill projected ``event``."""
        return event.checkpoint <= self.parts[part_of(event.owner, len(self.parts))]


def workers_for(store: EventStore, events: int) -> int:
    """How many processes fill the copies for a log of ``events``.

    Python projecting every event is a rebuild's limit (PostgreSQL keeps up on another core),
    and owners are independent: each process projects the events of its part of the owners.
    Only on PostgreSQL, where the processes write at once (SQLite writes one at a time).
    """
    if store.backend != "postgres" or events < PARALLEL_FROM:
        return 1
    try:  # the processes are given the registry: upcasters defined in place (lambdas) cannot be
        pickle.dumps(store.registry)
    except Exception:
        return 1
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


@dataclass(frozen=True)
class _Job:
    """What one fill process is given (pickled: it is a new interpreter)."""

    url: str
    timeouts: Timeouts
    registry: UpcasterRegistry
    aside: Aside
    holder: str
    part: FeedPart
    cache_rows: int
    page: int
    parent: int
    """The pid of the process that runs the rebuild: its fill processes stop if it is gone."""


_Report = tuple[int, int, Checkpoint | BaseException | None]
"""(part, events projected so far, then where it stopped, or what it raised; None before)."""


def _fill_part(job: _Job, reports: multiprocessing.queues.Queue[_Report]) -> None:
    """The body of a fill process: ``fill`` with its part of the feed, on its own store."""
    try:
        store = open_store(job.url, registry=job.registry, pool_max=3, timeouts=job.timeouts)
        try:
            replay = Replay(job.aside, job.cache_rows)
            lease = projection_state.Lease(store, READ_TABLES, job.holder)

            def progress(events: int, _: int) -> None:
                if os.getppid() != job.parent:  # nobody would swap what this writes
                    raise RebuildError("the rebuild that started this process is gone")
                reports.put((job.part.index, events, None))

            checkpoint = fill(store, replay, lease, START, progress, part=job.part, page=job.page)
            reports.put((job.part.index, replay.events, checkpoint))
        finally:
            store.close()
    except BaseException as error:
        reports.put((job.part.index, -1, _sendable(error)))


def _sendable(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RebuildError(f"{type(error).__name__}: {error}")
    return error


def _fill_in_processes(
    store: EventStore,
    aside: Aside,
    lease: projection_state.Lease,
    count: int,
    progress: Progress | None,
    total: int,
    cache_rows: int,
) -> tuple[Filled, int]:
    """``fill`` in ``count`` processes, each its part of the feed; returns how far they went
    and the events they projected. A process that fails fails the run (the others are
    stopped: the copies are dropped anyway)."""
    from event_store.postgres import PostgresStore  # the feed is split only on PostgreSQL

    assert isinstance(store, PostgresStore)
    context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
    reports: multiprocessing.queues.Queue[_Report] = context.Queue()
    jobs = [
        _Job(
            store.url,
            store.timeouts,
            store.registry,
            aside,
            lease.holder,
            FeedPart(index, count),
            max(1, cache_rows // count),
            PAGE,
            os.getpid(),
        )
        for index in range(count)
    ]
    processes = [
        context.Process(
            target=_fill_part,
            args=(job, reports),
            name=f"rebuild-fill-{job.part.index}",
            daemon=True,
        )
        for job in jobs
    ]
    done: dict[int, Checkpoint] = {}
    events = [0] * count
    try:
        for process in processes:
            process.start()
        while len(done) < count:
            try:
                index, projected, result = reports.get(timeout=1.0)
            except queue.Empty:
                # A process puts its last report before it exits: one gone without it died.
                for index, process in enumerate(processes):
                    if index not in done and not process.is_alive():
                        raise RebuildError(
                            f"fill process {index} died (exit code {process.exitcode})"
                        ) from None
                continue
            if isinstance(result, BaseException):
                raise result
            events[index] = projected
            if result is not None:
                done[index] = result
            if progress is not None:
                progress(sum(events), total)
    finally:
        for process in processes:
            if process.is_alive():  # only after an error: the others have finished
                process.terminate()
            process.join()
        reports.close()
    return Filled(tuple(done[index] for index in range(count))), sum(events)


# -- comparing and swapping -------------------------------------------------------------------


def _same(sql: Sql, table: str, left: str, right: str) -> str:
    """SQL: row ``left`` equals row ``right`` in every column (nulls equal). The key is
    compared with ``=`` (it is never null), so that the planner joins on it."""
    op = "IS NOT DISTINCT FROM" if sql.backend == "postgres" else "IS"
    columns = tables.columns_of(table)
    key = [f"{left}.{c} = {right}.{c}" for c in columns[:2]]
    rest = [f"{left}.{c} {op} {right}.{c}" for c in columns[2:]]
    return " AND ".join(key + rest)


def merge(sql: Sql, table: str, aside: str) -> int:
    """Make the live ``table`` equal its copy ``aside``, writing only the rows that differ;
    return how many rows were inserted, updated or deleted."""
    columns = tables.columns_of(table)
    names = ", ".join(columns)
    if sql.fetchone(f"SELECT 1 FROM {table} LIMIT 1") is None:
        # Nothing live (the first rebuild of an imported log): every row goes in, without the
        # comparison and the conflict check, which cost a quarter of PostgreSQL's time for
        # 400,000 rows. Nothing can write the live rows meanwhile: appends are held.
        return max(sql.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {aside}"), 0)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[2:])
    changed = sql.execute(
        f"INSERT INTO {table} ({names}) SELECT {', '.join(f'a.{c}' for c in columns)} "
        f"FROM {aside} a WHERE NOT EXISTS (SELECT 1 FROM {table} l "
        f"WHERE {_same(sql, table, 'l', 'a')}) "
        f"ON CONFLICT (owner, id) DO UPDATE SET {updates}"
    )
    changed += sql.execute(
        f"DELETE FROM {table} WHERE NOT EXISTS (SELECT 1 FROM {aside} a "
        f"WHERE a.owner = {table}.owner AND a.id = {table}.id)"
    )
    return max(changed, 0)


def compare(sql: Sql, table: str, aside: str) -> list[Difference]:
    """Every field where the live ``table`` and its copy ``aside`` disagree."""
    columns = tables.columns_of(table)
    picks = ", ".join(columns)
    records = sql.fetchall(
        f"SELECT 'live', {picks} FROM {table} l WHERE NOT EXISTS "
        f"(SELECT 1 FROM {aside} a WHERE {_same(sql, table, 'l', 'a')}) "
        f"UNION ALL SELECT 'replayed', {picks} FROM {aside} a WHERE NOT EXISTS "
        f"(SELECT 1 FROM {table} l WHERE {_same(sql, table, 'l', 'a')})"
    )
    sides: dict[tuple[UUID, UUID], dict[str, dict[str, Any]]] = {}
    for side, *values in records:
        row = dict(zip(columns, values, strict=True))
        key = (as_uuid(row["owner"]), as_uuid(row["id"]))
        sides.setdefault(key, {})[side] = row
    found: list[Difference] = []
    for (owner, id_), pair in sorted(
        sides.items(), key=lambda item: (str(item[0][0]), str(item[0][1]))
    ):
        found += row_differences(table, owner, id_, pair.get("live"), pair.get("replayed"))
    return found


_decode = msgspec.json.decode


def row_differences(
    table: str,
    owner: UUID,
    id_: UUID,
    live: Mapping[str, Any] | None,
    replayed: Mapping[str, Any] | None,
) -> list[Difference]:
    """Field by field: the columns, then each key of the public JSON (``data.<key>``) and of
    the projector's private state (``hidden.<key>``). A row only one side has is one
    difference on ``(row)``."""
    if live is None or replayed is None:
        return [
            Difference(
                table, owner, id_, "(row)",
                "absent" if live is None else "present",
                "absent" if replayed is None else "present",
            )
        ]  # fmt: skip
    found = []
    for column in tables.columns_of(table)[2:]:
        if column in ("body", "hidden"):
            prefix = "data" if column == "body" else "hidden"
            left, right = _json_of(live[column]), _json_of(replayed[column])
            for key in dict.fromkeys([*left, *right]):
                if left.get(key, _MISSING) != right.get(key, _MISSING):
                    found.append(
                        Difference(
                            table, owner, id_, f"{prefix}.{key}",
                            left.get(key, "(absent)"), right.get(key, "(absent)"),
                        )
                    )  # fmt: skip
        elif live[column] != replayed[column]:
            found.append(Difference(table, owner, id_, column, live[column], replayed[column]))
    return found


_MISSING = object()


def _json_of(text: Any) -> dict[str, Any]:
    try:
        decoded = _decode(text)
    except (msgspec.DecodeError, TypeError):
        return {"(unreadable)": text}
    return decoded if isinstance(decoded, dict) else {"(not an object)": decoded}


# -- the two jobs -------------------------------------------------------------------------------


def _tables(requested: Iterable[str] | None) -> list[str]:
    names = list(dict.fromkeys(requested or TABLES.values()))
    unknown = [name for name in names if name not in NEEDS]
    if unknown:
        raise RebuildError(
            f"unknown read table {unknown[0]!r}; the read tables are {', '.join(NEEDS)}"
        )
    return names


def _built(names: Iterable[str]) -> tuple[str, ...]:
    needed = {table for name in names for table in NEEDS[name]}
    return tuple(table for table in TABLES.values() if table in needed)


T = TypeVar("T")


def _run_aside(
    store: EventStore,
    aside: Aside,
    finish: Callable[[Sql], T],
    progress: Progress | None,
    holder: str | None,
    cache_rows: int,
    workers: int | None,
) -> tuple[T, int]:
    """Steps 1 to 3 of the module doc: build ``aside``, then, in the locked transaction, catch it
    up and call ``finish`` with that transaction. Returns what ``finish`` returned and the
    number of events projected. The copies are dropped whatever happens."""
    with projection_state.Lease(
        store, READ_TABLES, holder or projection_state.holder_id()
    ) as lease:
        total = store.count_events()
        replay = Replay(aside, cache_rows)
        with store.sql() as sql:
            drop_leftovers(sql)
            aside.create(sql)
        try:
            count = workers_for(store, total) if workers is None else workers
            if count > 1:
                filled, replay.events = _fill_in_processes(
                    store, aside, lease, count, progress, total, cache_rows
                )
                replay.drop_cache()  # the processes' rows are in the copies, not in this cache
            else:
                filled = Filled((fill(store, replay, lease, START, progress, total),))
            with store.sql() as sql:
                lease.renew(sql)
                _catch_up_held(store, sql, replay, filled)
                result = finish(sql)
                aside.drop(sql)
            if progress is not None:  # never called under the lock: it may take its time
                progress(replay.events, total)
        except BaseException:
            with store.sql() as sql:
                aside.drop(sql)
            raise
    return result, replay.events


def rebuild(
    store: EventStore,
    requested: Iterable[str] | None = None,
    *,
    progress: Progress | None = None,
    holder: str | None = None,
    cache_rows: int = CACHE_ROWS,
    workers: int | None = None,
) -> Rebuilt:
    """Rebuild ``requested`` read tables (all by default) from the log; see the module doc."""
    names = _tables(requested)
    with store.snapshot() as sql:
        current = projection_state.read(sql, READ_TABLES)
    if current is None:
        raise RebuildError("no projection state: run sync-server migrate")
    if current.definition != DEFINITION:
        names = list(TABLES.values())  # every table is built under the new definition
    aside = Aside.new(_built(names))

    def swap(sql: Sql) -> tuple[int, int, bool]:
        changed = sum(merge(sql, name, aside.name(name)) for name in names)
        latest = projection_state.read(sql, READ_TABLES)
        assert latest is not None
        reset = bool(changed) or latest.definition != DEFINITION
        epoch = projection_state.new_epoch(sql, READ_TABLES, DEFINITION) if reset else latest.epoch
        return changed, epoch, reset

    (changed, epoch, reset), events = _run_aside(
        store, aside, swap, progress, holder, cache_rows, workers
    )
    return Rebuilt(names, events, changed, epoch, reset)


def verify(
    store: EventStore,
    *,
    progress: Progress | None = None,
    holder: str | None = None,
    cache_rows: int = CACHE_ROWS,
    workers: int | None = None,
) -> list[Difference]:
    """Rebuild every read table aside and compare it with the live one; nothing live is
    written. Every difference, table by table."""
    aside = Aside.new(TABLES.values())

    def differences(sql: Sql) -> list[Difference]:
        return [found for table in aside.tables for found in compare(sql, table, aside.name(table))]

    found, _ = _run_aside(store, aside, differences, progress, holder, cache_rows, workers)
    return found
