"""One sync: push the outbox, then pull until the server has nothing more.

Push, in rounds of at most ``batch_size`` ops, in the order they were made:

1. (local transaction) take the next ops and mark them ``sent``: from now on their op_id is
   bound to their content, because the server may have seen them;
2. send them; a lost answer raises out of the sync with the ops still queued, and the next
   sync sends them again: the server answers ``duplicate`` with the first outcome;
3. settle conflicts by the entity's policy (``conflicts.py``; callbacks run here, outside any
   transaction);
4. (local transaction) record every outcome at once: applied ops are marked with their version
   (they keep showing until a pull brings it), resolutions take the place of their op with a
   new op_id, refused ops leave the outbox for the rejections list.

Pull, page by page, each page with its cursor in one local transaction, so a crash between
pages resumes where it stopped and a page is never applied twice. ``reset`` (or a cursor the
server no longer accepts) drops the local copy and starts again from the beginning; queued ops
are kept and show again on the fresh copy. Once the server has nothing more, the ops it had
applied before the pull began are all reflected by the rows, and leave the outbox.

Conflict resolutions are pushed in the same sync; an op that conflicts again and again (another
device keeps editing the same fields) waits for the next sync after ``MAX_RESENDS`` tries.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final
from uuid import UUID

from schemas.entities import DELETE, UPDATE
from schemas.ops import Op, PushRequest
from schemas.pull import PullPage
from schemas.results import OpResult

from . import conflicts
from .api import Api
from .conflicts import Policy, Settlement
from .errors import ApiError, SyncError
from .local import LocalData, rejection_of
from .records import Rejection, SyncReport
from .store import LocalStore, QueuedOp, StoredRejection, StoredRow
from .wire import utc_now

CURSOR: Final = "cursor"
MAX_RESENDS: Final = 3
MAX_RESETS: Final = 3

RejectionListener = Callable[[Rejection], None]


@dataclass
class SyncSettings:
    client_id: UUID
    batch_size: int = 200
    """Ops per push; halved for the rest of the session whenever the server answers 413."""
    page_size: int = 500
    default_policy: Policy = "merge"
    policies: Mapping[str, Policy] | None = None
    """Conflict policy per entity (``show``, ``cost``, ``workout``, ``product``)."""


class SyncEngine:
    def __init__(
        self,
        local: LocalData,
        api: Api,
        settings: SyncSettings,
        on_rejection: Sequence[RejectionListener] = (),
    ) -> None:
        self.local = local
        self.store: LocalStore = local.store
        self.api = api
        self.settings = settings
        self.on_rejection = list(on_rejection)
        self._running = threading.Lock()
        self._syncing: int | None = None

    def sync(self) -> SyncReport:
        """Push everything queued so far, then pull everything new. One sync at a time: a
        second caller waits for the first to finish."""
        if self._syncing == threading.get_ident():
            # From a listener of this very sync: waiting for itself would never end.
            raise SyncError("sync() called from a listener of the sync in progress")
        with self._running:
            self._syncing = threading.get_ident()
            try:
                report = SyncReport()
                self.push(report)
                self.pull(report)
                with self.store.transaction():
                    report.pending = sum(1 for op in self.store.ops() if not op.acked)
                return report
            finally:
                self._syncing = None

    def cursor(self) -> str | None:
        """Where the next pull starts (None: from the beginning)."""
        with self.store.transaction():
            return self.store.get_meta(CURSOR)

    # -- push ------------------------------------------------------------------------------------

    def push(self, report: SyncReport) -> None:
        with self.store.transaction():
            last = self.store.last_seq()
        resends: Counter[int] = Counter()
        while batch := self._next_batch(last, resends):
            request = PushRequest(self.settings.client_id, [_wire(op) for op in batch])
            try:
                response = self.api.push(request)
            except ApiError as error:
                if error.status != 413:
                    raise
                self._shrink(batch, error, report)
                continue
            if [r.op_id for r in response.results] != [op.op_id for op in batch]:
                raise SyncError("the push answer does not match the ops sent")
            settlements = [
                self._settle(op, result) for op, result in zip(batch, response.results, strict=True)
            ]
            self._record(batch, response.results, settlements, resends, report)

    def _next_batch(self, last: int, resends: Counter[int]) -> list[QueuedOp]:
        with self.store.transaction():
            queued = self.store.ops(unacked_only=True, limit=self.settings.batch_size, max_seq=last)
            batch: list[QueuedOp] = []
            for op in queued:
                if resends[op.seq] >= MAX_RESENDS:
                    break  # the rest waits behind it, keeping the order
                batch.append(op)
            self.store.mark_sent(op.seq for op in batch if not op.sent)
        return batch

    def _shrink(self, batch: list[QueuedOp], error: ApiError, report: SyncReport) -> None:
        if len(batch) > 1:
            self.settings.batch_size = max(1, min(self.settings.batch_size, len(batch)) // 2)
            return
        # A single op the server will never take: report it rather than block the queue.
        (op,) = batch
        with self.store.transaction():
            added = self._reject(op, "rejected", error.code, error.detail or str(error), {})
            self.store.remove_ops([op.seq])
        self._announce([added], report)

    def _settle(self, op: QueuedOp, result: OpResult) -> Settlement | None:
        outcome = _first(result)
        if outcome.status != "conflict" or outcome.conflict is None:
            return None
        return conflicts.settle(op, outcome.conflict, self._policy(op.entity))

    def _policy(self, entity: str) -> Policy:
        return (self.settings.policies or {}).get(entity, self.settings.default_policy)

    def _record(
        self,
        batch: Sequence[QueuedOp],
        results: Sequence[OpResult],
        settlements: Sequence[Settlement | None],
        resends: Counter[int],
        report: SyncReport,
    ) -> None:
        added: list[StoredRejection] = []
        with self.store.transaction():
            for op, result, settlement in zip(batch, results, settlements, strict=True):
                outcome = _first(result)
                if outcome.status == "applied":
                    report.applied += 1
                    self._applied(op, outcome.version)
                elif outcome.status == "conflict" and settlement is not None:
                    if settlement.loss is not None:
                        added.append(self._lost(op, outcome, settlement.loss))
                    if settlement.resend is None:
                        self.store.remove_ops([op.seq])
                    else:
                        resends[op.seq] += 1
                        report.resent += 1
                        self.store.replace_op(_resent(op, settlement.resend))
                else:
                    added.append(self._refused(op, outcome))
                    self.store.remove_ops([op.seq])
        self.local.notify(((op.entity, op.id) for op in batch), "sync")
        self._announce(added, report)

    def _applied(self, op: QueuedOp, version: int | None) -> None:
        row = self.store.row(op.entity, op.id)
        if version is None or (row is not None and row.version >= version):
            self.store.remove_ops([op.seq])  # the pulled row holds it already
        else:
            self.store.mark_acked(op.seq, version)

    def _refused(self, op: QueuedOp, outcome: OpResult) -> StoredRejection:
        error = outcome.error
        if error is None:  # not in the protocol; kept rather than dropped all the same
            return self._reject(op, "rejected", outcome.status, "refused by the server", {})
        errors = [{"path": e.path, "message": e.message} for e in error.errors or []]
        return self._reject(op, "rejected", error.code, error.message, {"errors": errors})

    def _lost(self, op: QueuedOp, outcome: OpResult, loss: conflicts.Loss) -> StoredRejection:
        assert outcome.conflict is not None
        details = {
            "errors": loss.errors,
            "lost_fields": list(loss.lost_fields),
            "server_version": outcome.conflict.server_version,
            "server_data": outcome.conflict.server_data,
        }
        return self._reject(op, "conflict", loss.code, loss.message, details)

    def _reject(
        self, op: QueuedOp, kind: str, code: str, message: str, details: Mapping[str, Any]
    ) -> StoredRejection:
        rejection = StoredRejection(
            0,
            op.op_id,
            op.entity,
            op.id,
            op.action,
            op.data,
            kind,
            code,
            message,
            details,
            utc_now(),
        )
        return replace(rejection, seq=self.store.add_rejection(rejection))

    def _announce(self, added: Sequence[StoredRejection], report: SyncReport) -> None:
        for stored in added:
            rejection = rejection_of(stored)
            report.rejections.append(rejection)
            for listener in self.on_rejection:
                listener(rejection)

    # -- pull ------------------------------------------------------------------------------------

    def pull(self, report: SyncReport) -> None:
        with self.store.transaction():
            applied_before = [op.op_id for op in self.store.ops() if op.acked]
        resets = 0
        while True:
            cursor = self.cursor()
            try:
                page = self.api.pull(cursor, self.settings.page_size)
            except ApiError as error:
                if error.status != 400 or cursor is None:
                    raise
                # The server no longer accepts this cursor (e.g. a new secret): start over.
                page = PullPage([], "", has_more=True, reset=True)
            if page.reset:
                resets += 1
                if resets > MAX_RESETS:
                    raise SyncError("the server keeps asking for the local copy to be reset")
                self._reset(report)
                continue
            self._apply(page, applied_before, report)
            if not page.has_more:
                return

    def _reset(self, report: SyncReport) -> None:
        with self.store.transaction():
            keys = [(row.entity, row.id) for row in self.store.rows()]
            self.store.clear_rows()
            self.store.set_meta(CURSOR, None)
        report.resets += 1
        self.local.notify(keys, "sync")

    def _apply(self, page: PullPage, applied_before: Sequence[UUID], report: SyncReport) -> None:
        with self.store.transaction():
            for change in page.changes:
                deleted = change.op == "delete"
                data = None if deleted else change.data
                self.store.put_row(
                    StoredRow(change.entity, change.id, change.version, deleted, data)
                )
                self.store.remove_acked_covered(change.entity, change.id, change.version)
            self.store.set_meta(CURSOR, page.cursor)
            if not page.has_more:
                self.store.remove_acked(applied_before)
        report.pulled += len(page.changes)
        self.local.notify(((c.entity, c.id) for c in page.changes), "sync")


def _first(result: OpResult) -> OpResult:
    """The outcome that counts: for a ``duplicate``, the op's first outcome."""
    if result.status == "duplicate":
        if result.original is not None:
            return result.original
        return OpResult(result.op_id, "applied", version=result.version)
    return result


def _wire(op: QueuedOp) -> Op:
    base = op.base_version if op.action in (UPDATE, DELETE) else None
    return Op(op.op_id, op.entity, op.id, op.action, base, op.data, op.client_ts)


def _resent(op: QueuedOp, resend: conflicts.Resend) -> QueuedOp:
    """The op that takes ``op``'s place: a new op_id, since the server answers a reused one
    with its first outcome."""
    return QueuedOp(
        op.seq,
        uuid.uuid4(),
        op.entity,
        op.id,
        resend.action,
        resend.base_version,
        resend.data,
        resend.seen,
        utc_now(),
        False,
        None,
    )
