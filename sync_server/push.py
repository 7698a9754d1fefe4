"""Push: a batch of ops decided against current state, appended and projected in one transaction.

The shape of one push, all inside one owner transaction (the owner lock is held from the start,
so nothing of this user changes underneath):

1. every op's idempotency key is looked up at once: a known ``op_id`` answers ``duplicate``;
2. every row the batch needs is loaded at once (one query per table, not one per op);
3. ops are decided in order by the pure ``decide``; an accepted op's events are applied to the
   rows in memory straight away, so later ops of the batch see them (a show, then its cost);
4. the accepted events are appended with the ops' keys, and projected into the read tables
   from what the log recorded (real positions and times), by the same code a rebuild runs;
5. refused ops' outcomes are remembered too, so a retried op always answers what it first did.

An ``atomic`` batch with any op that is neither applied nor a duplicate raises out of the
transaction, so that nothing of it (not even the keys of the refused ops) is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

import msgspec

from event_store import AppendRequest, EventMetadata, EventStore, RecordedEvent, StreamId
from event_store.store import Transaction
from projections import tables
from projections.apply import Loader, RowCache, apply_event, load_missing
from projections.project import epoch, project
from projections.rows import TABLES, ReadRow, RowKey
from projections.shows import live_cost_ids
from schemas.entities import DELETE, UPDATE
from schemas.ops import Op, PushRequest, upcast_op
from schemas.results import OpError, OpResult

from . import cursors
from .decide import Accepted, Conflicted, PendingEvent, decide
from .decide import refs as references
from .pull import head_cursor

BATCH_ABORTED: Final = "batch_aborted"
"""Error code of an op of an atomic batch that was sound but not kept because another op failed."""

_encode = msgspec.json.Encoder().encode
_decode_result = msgspec.json.Decoder(OpResult).decode
_SHOWS: Final = TABLES["show"]


@dataclass(frozen=True)
class Origin:
    """Who sends a push and through what: recorded in every event's metadata."""

    owner: UUID
    client_id: UUID
    device: str | None = None
    request_id: str | None = None
    source: str = "sync"


@dataclass(frozen=True)
class Pushed:
    """What a push did: a result per op, in order, and where to pull from to see the writes."""

    results: list[OpResult]
    cursor: cursors.Cursor
    events: list[RecordedEvent]


class _Aborted(Exception):
    """Raised inside the transaction to roll an atomic batch back; carries its results."""

    def __init__(self, results: list[OpResult]) -> None:
        super().__init__("atomic batch aborted")
        self.results = results


def op_key(op_id: UUID) -> str:
    """The idempotency key of an op: scoped by owner in the store, by kind here."""
    return f"op:{op_id}"


def push(
    store: EventStore, request: PushRequest, origin: Origin, *, at_current_version: bool = False
) -> Pushed:
    """Decide, append and project ``request`` for ``origin.owner``; see the module doc.

    ``at_current_version``: an update or delete without ``base_version`` is decided at the
    entity's version inside this transaction, i.e. unconditionally (REST without ``If-Match``).
    Sync clients never get this: for them a missing ``base_version`` stays a malformed op.
    """
    try:
        with store.transaction(origin.owner) as tx:
            return _push(tx, request, origin, at_current_version)
    except _Aborted as aborted:
        return Pushed(aborted.results, head_cursor(store, origin.owner), [])


def _push(
    tx: Transaction, request: PushRequest, origin: Origin, at_current_version: bool
) -> Pushed:
    ops: list[Op | OpError] = [upcast_op(op, request.schema_version) for op in request.ops]
    recalled = tx.recall(op_key(op.op_id) for op in request.ops)
    deciding = [op for op in ops if isinstance(op, Op) and op_key(op.op_id) not in recalled]
    cache = RowCache(lambda keys: tables.load_rows(tx.sql, origin.owner, keys))
    loaded = _load(tx, deciding, cache)
    working: dict[RowKey, ReadRow] = dict(loaded)

    results: list[OpResult] = []
    requests: list[AppendRequest] = []
    remembered: dict[str, bytes] = {}
    first: dict[UUID, OpResult] = {}
    for original, op in zip(request.ops, ops, strict=True):
        key = op_key(original.op_id)
        if original.op_id in first:
            results.append(_duplicate(original.op_id, first[original.op_id]))
            continue
        if key in recalled:
            result = _duplicate(original.op_id, _decode_result(recalled[key].outcome))
        elif isinstance(op, OpError):
            result = OpResult(original.op_id, "rejected", error=op)
            remembered[key] = _encode(result)
        else:
            if at_current_version:
                op = _at_current_version(op, working)
            result, append = _decide(tx, op, working, origin, cache)
            if append is None:
                # Refused, or an update that changed nothing: no event carries the key.
                remembered[key] = _encode(result)
            else:
                requests.append(append)
        results.append(result)
        first[original.op_id] = result

    if request.atomic and any(r.status in ("conflict", "rejected") for r in results):
        raise _Aborted(_aborted(results))

    if requests:
        tx.append_batch(requests)
    tx.remember(remembered)
    project(tx.sql, origin.owner, tx.recorded, dict(loaded), cache)
    head = tx.recorded[0].position - 1 if tx.recorded else tables.head(tx.sql, origin.owner)
    return Pushed(results, cursors.Cursor(head, epoch(tx.sql)), list(tx.recorded))


def _decide(
    tx: Transaction,
    op: Op,
    working: MutableMapping[RowKey, ReadRow],
    origin: Origin,
    load: Loader,
) -> tuple[OpResult, AppendRequest | None]:
    """Decide one op against the rows in memory; apply what it accepts to them."""
    state = references.state_from_rows(op, working)
    decision = decide(op, state, references.references_from_rows(op, working))
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
        actor=str(origin.owner),
        client_id=str(origin.client_id),
        device=origin.device,
        op_id=str(op.op_id),
        request_id=origin.request_id,
        client_ts=op.client_ts,
        source=origin.source,
    )
    expected = _expected(decision.events, working)
    _apply_provisionally(decision.events, working, origin.owner, tx.now, load)
    new_events = [event.new_event(metadata) for event in decision.events]
    return result, AppendRequest(new_events, expected, op_key(op.op_id), _encode(result))


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


def _apply_provisionally(
    events: Sequence[PendingEvent],
    rows: MutableMapping[RowKey, ReadRow],
    owner: UUID,
    now: datetime,
    load: Loader,
) -> None:
    """Apply accepted events to the rows in memory, for the ops after them in the batch.

    Positions are not known before the append; these rows only serve deciding, and the rows
    that are saved are projected again from the recorded events.
    """
    for event in events:
        key = (TABLES[event.stream.type], event.stream.id)
        row = rows.get(key)
        recorded = RecordedEvent(
            position=0,
            tx=0,
            owner=owner,
            stream=event.stream,
            version=(0 if row is None else row.version) + 1,
            type=event.type,
            schema_version=1,
            data=event.data,
            metadata=EventMetadata(),
            recorded_at=now,
        )
        load_missing(recorded, rows, load)
        apply_event(rows, recorded)


def _load(tx: Transaction, ops: Sequence[Op], cache: RowCache) -> dict[RowKey, ReadRow]:
    """Every row deciding and projecting ``ops`` will read, in one query per table and round.

    Round one: each op's own row, the shows cost ops name, products by the skus ops name.
    Round two: what those rows point to (the show a cost is on now, the costs of a show that
    is being deleted). Anything still missing later is loaded on demand by ``load_missing``.
    """
    keys: set[RowKey] = set()
    skus: set[str] = set()
    for op in ops:
        needs = references.references_needed(op)
        keys |= needs.rows
        skus |= needs.skus
    rows = cache(keys)
    if skus:
        by_sku = tables.load_live_by_sku(tx.sql, tx.owner, skus)
        cache.add(by_sku)
        for key, row in by_sku.items():
            rows.setdefault(key, row)
    more: set[RowKey] = set()
    for (table, _), row in rows.items():
        if table == TABLES["cost"] and not row.deleted:
            more.add((_SHOWS, UUID(row.data["show_id"])))
    deleting = {op.id for op in ops if op.entity == "show" and op.action == "delete"}
    for show_id in deleting:
        show = rows.get((_SHOWS, show_id))
        if show is not None:
            more |= {(TABLES["cost"], cost_id) for cost_id in live_cost_ids(show)}
    more -= rows.keys()
    if more:
        rows.update(cache(more))
    return rows


def _duplicate(op_id: UUID, first: OpResult) -> OpResult:
    original = first.original if first.status == "duplicate" and first.original else first
    return OpResult(op_id, "duplicate", version=original.version, original=original)


def _aborted(results: Sequence[OpResult]) -> list[OpResult]:
    """The results of an atomic batch that is not kept: failures as they were, the rest
    (which would have applied) rejected with ``batch_aborted``, duplicates unchanged."""
    failed = [i for i, r in enumerate(results) if r.status in ("conflict", "rejected")]
    message = (
        f"not applied: this batch is atomic and op {failed[0]} "
        f"({results[failed[0]].status}) could not be applied"
    )
    return [
        OpResult(r.op_id, "rejected", error=OpError(BATCH_ABORTED, message))
        if r.status == "applied"
        else r
        for r in results
    ]
