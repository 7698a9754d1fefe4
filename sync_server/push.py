"""Push: a batch of ops decided against current state, appended and projected in one transaction.

The shape of one push, all inside one owner transaction (the owner lock is held from the start,
so nothing of this user changes underneath):

1. every op's idempotency key is looked up at once: a known ``op_id`` answers ``duplicate``;
2. every row the batch needs is loaded at once (one query per table, not one per op); the ops'
   payloads are checked (pure, ``check_payload``) while the database looks them up;
3. ops are decided in order by the pure ``decide``; an accepted op's events are applied to the
   rows in memory straight away, so later ops of the batch see them (a show, then its cost);
4. the accepted events are appended with the ops' keys, and the rows they changed are saved,
   each naming the event that last changed it, whose position the database puts in the row
   (``_Provisional``): projected once, by the same ``apply_event`` a rebuild runs. On
   PostgreSQL the transaction is pipelined: every ``SEND_EVERY`` accepted ops, their events
   and the rows changed before them are sent, and the database writes them while the next ops
   are decided (``_send``); nothing waits for the database until the last piece is sent;
5. refused ops' outcomes are remembered too, so a retried op always answers what it first did.

An ``atomic`` batch with any op that is neither applied nor a duplicate raises out of the
transaction, so that nothing of it (not even the keys of the refused ops) is kept.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

import msgspec

from event_store import AppendRequest, EventMetadata, EventStore, RecordedEvent, StreamId
from event_store.store import Transaction
from projections import tables
from projections.apply import RowCache, apply_event, load_missing
from projections.project import epoch_later
from projections.rows import TABLES, ReadRow, RowKey
from projections.shows import live_cost_ids
from schemas.entities import DELETE, UPDATE, is_entity
from schemas.ops import Op, PushRequest, prepare_op
from schemas.results import Conflict, OpError, OpResult

from . import pull_cursors
from .decide import Accepted, Conflicted, Payload, PendingEvent, check_payload, decide, inputs
from .pull import head_cursor

BATCH_ABORTED: Final = "batch_aborted"
"""Error code of an op of an atomic batch that was sound but not kept because another op failed."""

SEND_EVERY: Final = 100
"""Accepted ops whose events are sent to the log together while the rest are decided."""

_encode = msgspec.json.Encoder().encode
_decode_result = msgspec.json.Decoder(OpResult).decode
_SHOWS: Final = TABLES["show"]
_INVENTORY: Final = TABLES["product"]


@dataclass(frozen=True)
class Origin:
    """Who sends a push and through what: recorded in every event's metadata."""

    owner: UUID
    client_id: UUID
    device: str | None = None
    request_id: str | None = None
    source: str = "sync"

    # Written into every event's metadata: made once per push, not once per op.
    @functools.cached_property
    def actor(self) -> str:
        return str(self.owner)

    @functools.cached_property
    def client_str(self) -> str:
        return str(self.client_id)


@dataclass(frozen=True)
class Pushed:
    """What a push did: a result per op, in order, and where to pull from to see the writes."""

    results: list[OpResult]
    cursor: pull_cursors.Cursor
    events: list[RecordedEvent]


class _Aborted(Exception):
    """Raised inside the transaction to roll an atomic batch back; carries its results."""

    def __init__(self, results: list[OpResult]) -> None:
        super().__init__("atomic batch aborted")
        self.results = results


OP_KEY_PREFIX: Final = "op:"
"""An op's idempotency key is this and its ``op_id``: scoped by owner in the store, by kind
here."""


def push(
    store: EventStore,
    request: PushRequest,
    origin: Origin,
    *,
    at_current_version: bool = False,
    unreadable: Mapping[int, OpError] | None = None,
) -> Pushed:
    """Decide, append and project ``request`` for ``origin.owner``; see the module doc.

    ``unreadable``: by index, the answer of each op that could not be read as one (its place
    holds a stand-in, ``schemas.ops.read_ops``); it is answered that, never decided.

    ``at_current_version``: an update or delete without ``base_version`` is decided at the
    entity's version inside this transaction, i.e. unconditionally (REST without ``If-Match``).
    Sync clients never get this: for them a missing ``base_version`` stays a malformed op.
    """
    try:
        with store.transaction(origin.owner, pipelined=True) as tx:
            return _push(tx, request, origin, at_current_version, unreadable or {})
    except _Aborted as aborted:
        return Pushed(aborted.results, head_cursor(store, origin.owner), [])


def _push(
    tx: Transaction,
    request: PushRequest,
    origin: Origin,
    at_current_version: bool,
    unreadable: Mapping[int, OpError],
) -> Pushed:
    keys = [OP_KEY_PREFIX + str(op.op_id) for op in request.ops]
    # Everything the batch reads is asked for at once, before any write is sent (in the
    # pipelined transaction a read waits for every statement sent before it), and before the
    # ops are even checked, so that the database looks up while Python checks: the keys with
    # the streams' versions (so that ``send`` needs no lookup), the rows, the epoch (it cannot
    # move while the owner lock is held: a rebuild's swap waits for owner transactions). Rows of
    # ops that turn out to be duplicates or malformed are loaded for nothing; both are rare.
    # Only an entity has a stream: a name that is none (one holding a NUL, which PostgreSQL
    # cannot even compare) never reaches the log; deciding answers it ``unknown_entity``.
    recall = tx.recall_later(
        keys, (StreamId(op.entity, op.id) for op in request.ops if is_entity(op.entity))
    )
    needs = [inputs.references_needed(op) for op in request.ops]
    cache = RowCache(lambda keys: tables.load_rows(tx.sql, origin.owner, keys))
    loaded = _load(tx, request.ops, needs, cache)
    cursor_epoch = epoch_later(tx.sql)
    tx.ask_now()
    ops: list[Op | OpError] = [
        unreadable.get(index) or prepare_op(op, request.schema_version)
        for index, op in enumerate(request.ops)
    ]
    payloads = [check_payload(op) if isinstance(op, Op) else None for op in ops]
    projected = _Provisional(loaded(), cache, origin.owner, tx.now)
    working = projected.rows
    recalled = recall()

    results: list[OpResult] = []
    requests: list[AppendRequest] = []
    remembered: dict[str, bytes] = {}
    first: dict[UUID, OpResult] = {}
    # Ops answered from an earlier push's outcome (not a repeat within this batch, whose events
    # are among this push's own).
    resent: list[tuple[Op, OpResult]] = []
    # Each accepted op's index and the provisional position of its first event, in order; and,
    # in an atomic batch, by index, what each conflict met on a row an earlier op of this batch
    # changed would be should the batch not be kept (``_aborted``): the conflict with the row
    # the database keeps, or, when there is none, the index of the op that made the row's last
    # change.
    accepted: list[int] = []
    starts: list[int] = []
    kept: dict[int, Conflict] = {}
    clashes: dict[int, int] = {}
    for index, (original, op, key, op_needs, payload) in enumerate(
        zip(request.ops, ops, keys, needs, payloads, strict=True)
    ):
        if original.op_id in first:
            results.append(_duplicate(original.op_id, first[original.op_id]))
            continue
        if key in recalled:
            result = _duplicate(original.op_id, _decode_result(recalled[key].outcome))
            resent.append((original, result))
        elif isinstance(op, OpError):
            result = OpResult(original.op_id, "rejected", error=op)
            remembered[key] = _encode(result)
        else:
            if at_current_version:
                op = _at_current_version(op, working)
            result, append = _decide(op, op_needs, payload, key, projected, origin)
            if append is None:
                # Refused, or an update that changed nothing: no event carries the key.
                remembered[key] = _encode(result)
                if (
                    request.atomic
                    and result.status == "conflict"
                    and (by := projected.changed_by(op)) is not None
                ):
                    conflict = _kept_conflict(op, op_needs, payload, projected)
                    if conflict is not None:
                        kept[index] = conflict
                    else:
                        clashes[index] = accepted[bisect.bisect_right(starts, by) - 1]
            else:
                accepted.append(index)
                starts.append(projected.applied - len(append.events) + 1)
                requests.append(append)
                if len(requests) == SEND_EVERY and tx.sql.pipelining:
                    _send(tx, requests, projected)
                    requests = []
        results.append(result)
        first[original.op_id] = result

    if request.atomic and any(_refused(r) for r in results):
        raise _Aborted(_aborted(results, kept, clashes))

    _send(tx, requests, projected, last=True)
    tx.remember(remembered)
    recorded = tx.recorded
    if len(recorded) != projected.applied:
        raise AssertionError(f"{projected.applied} events applied, {len(recorded)} recorded")
    firsts = [recorded[0].position] if recorded else []
    firsts += _first_positions(tx, origin.owner, resent)
    head = min(firsts) - 1 if firsts else tables.head(tx.sql, origin.owner)
    return Pushed(results, pull_cursors.Cursor(head, cursor_epoch()), list(recorded))


def _first_positions(
    tx: Transaction, owner: UUID, resent: Sequence[tuple[Op, OpResult]]
) -> list[int]:
    """Where the events of the ``resent`` ops (answered from an earlier push's outcome) that had
    applied begin: a resent batch (its first answer lost) wrote them when it was first sent, and
    the push's cursor must show them too (PROTOCOL.md: "where the client may resume pulling to
    see at least its own writes"). An op's first event is its own stream's at the version it
    answered (a cascade comes after it); for an op that applied without an event, that event is
    an earlier one, which only makes the cursor show more. None of this runs unless the batch
    holds such an op."""
    written = {
        (op.entity, op.id, result.original.version)
        for op, result in resent
        if result.original is not None
        and result.original.status == "applied"
        and result.original.version
    }
    if not written:
        return []
    ordered = list(written)
    positions: list[int] = []
    for start in range(0, len(ordered), _LOOKUPS_PER_QUERY):
        chunk = ordered[start : start + _LOOKUPS_PER_QUERY]
        which = " OR ".join(["(stream_type = ? AND stream_id = ? AND version = ?)"] * len(chunk))
        row = tx.sql.fetchone(
            f"SELECT min(position) FROM events WHERE owner = ? AND ({which})",
            [owner, *(value for stream in chunk for value in stream)],
        )
        if row is not None and row[0] is not None:
            positions.append(int(row[0]))
    return positions


_LOOKUPS_PER_QUERY: Final = 200
"""Ops looked up per query: three parameters each, well under SQLite's limit."""


def _send(
    tx: Transaction, requests: list[AppendRequest], projected: _Provisional, *, last: bool = False
) -> None:
    """Send ``requests`` to the log, then the rows changed before them (``last``: every row
    changed).

    Nothing waits: each row names the event that last changed it (``changed_by``) and the
    database, which has those events by then, puts its position in the row. On PostgreSQL it
    writes them while the next ops are decided. The rows ``requests`` changed wait for the next
    send: a row changed again meanwhile (a show getting costs) is then written once, not twice.
    """
    sent_before = projected.applied - sum(len(request.events) for request in requests)
    if requests:
        tx.send(requests)
    rows, changed_by = projected.take_changed(None if last else sent_before)
    tables.save_rows(tx.sql, projected.owner, rows, changed_by=changed_by)


def _decide(
    op: Op,
    needs: inputs.Needs,
    payload: Payload,
    key: str,
    projected: _Provisional,
    origin: Origin,
) -> tuple[OpResult, AppendRequest | None]:
    """Decide one op against the rows in memory; apply what it accepts to them."""
    working = projected.rows
    state = inputs.state_from_rows(op, working)
    references = inputs.references_from_rows(op, working, projected.with_sku, needs)
    decision = decide(op, state, references, payload)
    if isinstance(decision, Conflicted):
        return OpResult(op.op_id, "conflict", conflict=decision.conflict), None
    if not isinstance(decision, Accepted):
        return OpResult(op.op_id, "rejected", error=decision.error), None
    current = 0 if state is None else state.version
    version = decision.version_after(StreamId(op.entity, op.id), current)
    result = OpResult(op.op_id, "applied", version=version)
    if not decision.events:
        return result, None
    metadata = EventMetadata(
        actor=origin.actor,
        client_id=origin.client_str,
        device=origin.device,
        op_id=key.removeprefix(OP_KEY_PREFIX),
        request_id=origin.request_id,
        client_ts=op.client_ts,
        source=origin.source,
    )
    expected = _expected(decision.events, working)
    projected.apply(decision.events)
    new_events = [event.new_event(metadata) for event in decision.events]
    return result, AppendRequest(new_events, expected, key, _encode(result))


def _kept_conflict(
    op: Op, needs: inputs.Needs, payload: Payload, projected: _Provisional
) -> Conflict | None:
    """``op``'s conflict with its row as the database keeps it (before this batch), if it has
    one: what its conflict is should the batch not be kept."""
    key = (TABLES[op.entity], op.id)
    stored = projected.load.stored(key)
    state = inputs.state_from_rows(op, {} if stored is None else {key: stored})
    references = inputs.references_from_rows(op, projected.rows, projected.with_sku, needs)
    decision = decide(op, state, references, payload)
    return decision.conflict if isinstance(decision, Conflicted) else None


def _at_current_version(op: Op, rows: Mapping[RowKey, ReadRow]) -> Op:
    if op.base_version is not None or op.action not in (UPDATE, DELETE):
        return op
    table = TABLES.get(op.entity)
    row = None if table is None else rows.get((table, op.id))
    return msgspec.structs.replace(op, base_version=0 if row is None else row.version)


def _expected(
    events: Sequence[PendingEvent], rows: Mapping[RowKey, ReadRow]
) -> dict[StreamId, int]:
    """The version each touched stream is at, as the rows say: the store checks them again
    against the log, so a read row that drifted from the log can never be written over."""
    expected: dict[StreamId, int] = {}
    for event in events:
        key = (TABLES[event.stream.type], event.stream.id)
        row = rows.get(key)
        expected.setdefault(event.stream, 0 if row is None else row.version)
    return expected


class _Provisional:
    """The batch's rows in memory, with each accepted event applied as soon as it is decided.

    Later ops are decided on these rows, so they see what earlier ops of the batch did. The
    events are applied with provisional positions 1, 2, 3… in the order they will be appended;
    a row saved from here names the event that last changed it instead (``take_changed``), and
    the database puts that event's position in the row's ``sync_pos``, the one field of a row a
    position reaches (``projections/rows.py``). So every event is projected once, by the same
    ``apply_event`` a rebuild runs, and the rows saved are those a rebuild gives (the property
    tests check it).
    """

    def __init__(
        self, rows: dict[RowKey, ReadRow], load: RowCache, owner: UUID, now: datetime
    ) -> None:
        self.rows = rows
        self.load = load
        self.owner = owner
        self.now = now
        self.changed: dict[RowKey, None] = {}
        # The events applied, in order: the one at provisional position p is at index p - 1.
        self.events: list[RecordedEvent] = []
        # sku -> the product rows that held it when loaded (by key or by sku, ``_load``) or
        # changed since: the only rows in which an op can find a sku it names.
        self._skus: dict[str, list[RowKey]] = {}
        for key, row in rows.items():
            if key[0] == _INVENTORY:
                self._skus.setdefault(row.data["sku"], []).append(key)

    @property
    def applied(self) -> int:
        return len(self.events)

    def changed_by(self, op: Op) -> int | None:
        """The provisional position of the last event of this batch that changed ``op``'s
        row, if any did (a row no event changed is still the very one the database gave)."""
        table = TABLES.get(op.entity)
        if table is None:
            return None
        key = (table, op.id)
        row = self.rows.get(key)
        return None if row is None or row is self.load.stored(key) else row.sync_pos

    def with_sku(self, sku: str) -> list[RowKey]:
        """Keys of the rows that may hold ``sku`` now (whoever reads them checks)."""
        return self._skus.get(sku, [])

    def apply(self, events: Sequence[PendingEvent]) -> None:
        rows = self.rows
        for event in events:
            stream = event.stream
            key = (TABLES[stream.type], stream.id)
            # The stream's own row gives its version, so it must be held before anything else.
            # (A membership test, not ``{key} - rows.keys()``: that walks every row held.)
            if key not in rows:
                rows.update(self.load({key}))
            row = rows.get(key)
            recorded = RecordedEvent(
                position=len(self.events) + 1,
                tx=0,
                owner=self.owner,
                stream=stream,
                version=(0 if row is None else row.version) + 1,
                type=event.type,
                schema_version=1,
                data=event.data,
                metadata=_NO_METADATA,
                recorded_at=self.now,
            )
            self.events.append(recorded)
            load_missing(recorded, rows, self.load)
            for changed in apply_event(rows, recorded):
                self.changed[changed] = None
                if changed[0] == _INVENTORY:
                    holders = self._skus.setdefault(rows[changed].data["sku"], [])
                    if changed not in holders:
                        holders.append(changed)

    def take_changed(
        self, upto: int | None = None
    ) -> tuple[dict[RowKey, ReadRow], dict[RowKey, RecordedEvent]]:
        """The rows changed since last taken, and the event that last changed each (their
        ``sync_pos`` is that event's provisional position); with ``upto``, only the rows whose
        last change is at or before that provisional position."""
        rows: dict[RowKey, ReadRow] = {}
        waiting: dict[RowKey, None] = {}
        for key in self.changed:
            row = self.rows[key]
            if upto is None or row.sync_pos <= upto:
                rows[key] = row
            else:
                waiting[key] = None
        self.changed = waiting
        return rows, {key: self.events[row.sync_pos - 1] for key, row in rows.items()}


_NO_METADATA: Final = EventMetadata()
"""A provisional event's metadata: projectors never read it."""


def _load(
    tx: Transaction, ops: Sequence[Op], needs: Sequence[inputs.Needs], cache: RowCache
) -> Callable[[], dict[RowKey, ReadRow]]:
    """Every row deciding and projecting ``ops`` will read, in one query per table and round;
    round one is sent now, the rest when the result is called.

    Round one: each op's own row, the shows cost ops name, products by the skus ops name.
    Round two: what those rows point to (the show a cost is on now, the costs of a show that
    is being deleted). Anything still missing later is loaded on demand by ``load_missing``.
    """
    keys: set[RowKey] = set()
    skus: set[str] = set()
    for op_needs in needs:
        keys |= op_needs.rows
        skus |= op_needs.skus
    by_key = tables.load_rows_later(tx.sql, tx.owner, keys)
    by_sku = tables.load_live_by_sku_later(tx.sql, tx.owner, skus) if skus else dict

    def loaded() -> dict[RowKey, ReadRow]:
        found = by_key()
        cache.add(found, keys)
        with_sku = by_sku()
        cache.add(with_sku)
        for key, row in with_sku.items():
            found.setdefault(key, row)
        more: set[RowKey] = set()
        for (table, _), row in found.items():
            if table == TABLES["cost"] and not row.deleted:
                more.add((_SHOWS, UUID(row.data["show_id"])))
        deleting = {op.id for op in ops if op.entity == "show" and op.action == "delete"}
        for show_id in deleting:
            show = found.get((_SHOWS, show_id))
            if show is not None:
                more |= {(TABLES["cost"], cost_id) for cost_id in live_cost_ids(show)}
        more -= found.keys()
        if more:
            found.update(cache(more))
        return found

    return loaded


def _duplicate(op_id: UUID, first: OpResult) -> OpResult:
    original = first.original if first.status == "duplicate" and first.original else first
    return OpResult(op_id, "duplicate", version=original.version, original=original)


def _refused(result: OpResult) -> bool:
    """Not applied, now or (for a duplicate) the first time: an atomic batch cannot hold it."""
    first = result.original if result.status == "duplicate" and result.original else result
    return first.status in ("conflict", "rejected")


def _aborted(
    results: Sequence[OpResult], kept: Mapping[int, Conflict], clashes: Mapping[int, int]
) -> list[OpResult]:
    """The results of an atomic batch that is not kept: failures as they were, the rest
    (which would have applied) rejected with ``batch_aborted``, repeats of an earlier push
    unchanged, repeats within the batch answering what their first copy now does.

    A conflict on a row an earlier op of the batch changed was decided against that op's work,
    which is not kept: a client rebasing on it would send a version the server never had. It is
    answered against the row the database keeps (``kept``), if it conflicts with that too;
    otherwise it clashed with the batch itself (``clashes``: with which op), and is rejected
    with ``batch_aborted``, naming that op (resending the batch unchanged cannot help).
    """
    answers = list(results)
    decided: dict[UUID, OpResult] = {}
    for index, r in enumerate(results):
        if index in kept:
            answers[index] = decided[r.op_id] = OpResult(r.op_id, "conflict", conflict=kept[index])
        elif index in clashes and r.conflict is not None:
            clash = (
                f"not applied: this batch is atomic, and this op conflicts "
                f"({r.conflict.reason}) with what op {clashes[index]} of the same batch did, "
                "which is not kept either"
            )
            error = OpError(BATCH_ABORTED, clash)
            answers[index] = decided[r.op_id] = OpResult(r.op_id, "rejected", error=error)
    failed = next(i for i, r in enumerate(answers) if _refused(r))
    cause = answers[failed]
    what = cause.status if cause.error is None else f"{cause.status}, {cause.error.code}"
    message = f"not applied: this batch is atomic and op {failed} ({what}) could not be applied"
    for index, r in enumerate(answers):
        if r.status == "applied":
            error = OpError(BATCH_ABORTED, message)
            answers[index] = decided[r.op_id] = OpResult(r.op_id, "rejected", error=error)
        elif r.status == "duplicate" and r.op_id in decided:
            answers[index] = _duplicate(r.op_id, decided[r.op_id])
    return answers
