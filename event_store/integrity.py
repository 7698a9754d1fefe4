"""The hash chains of a whole store: check them, and seal events recorded before they existed.

``chain.py`` holds the rule (what a hash covers, what a break is); this module walks the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from uuid import UUID

from . import chain
from .chain import CHAIN_COLUMNS, Break, Head, StoredLink
from .rows import as_uuid
from .store import EventStore, Sql

Progress = Callable[[int], None]
"""Called with the number of events checked so far, every few thousand events."""

_EVERY = 5000


def links(sql: Sql, owner: UUID | None = None) -> Iterator[StoredLink]:
    """Every event (or one owner's) as stored, in (owner, position) order, streamed."""
    where, params = ("WHERE owner = ? ", [owner]) if owner is not None else ("", [])
    query = f"SELECT {CHAIN_COLUMNS} FROM events {where}ORDER BY owner, position"
    for row in sql.stream(query, params):
        yield StoredLink.from_row(row)


def heads(sql: Sql) -> Iterator[Head]:
    """Every owner's chain head, in owner order, streamed."""
    for owner, position, hash_ in sql.stream(
        "SELECT owner, position, hash FROM event_chains ORDER BY owner"
    ):
        yield Head(as_uuid(owner), position, bytes(hash_))


def verify_chains(store: EventStore, progress: Progress | None = None) -> Iterator[Break]:
    """The first broken link of every owner whose chain is broken, from one snapshot (so that
    appends running meanwhile are simply not seen, never taken for a break)."""
    with store.snapshot() as sql:
        counted = _counting(links(sql), progress)
        yield from chain.check_chains(counted, heads(sql))


def _counting(items: Iterator[StoredLink], progress: Progress | None) -> Iterator[StoredLink]:
    done = 0
    for item in items:
        yield item
        done += 1
        if progress is not None and done % _EVERY == 0:
            progress(done)
    if progress is not None:
        progress(done)


def seal(store: EventStore) -> int:
    """Hash the events recorded before the chain existed (migration 0003); return how many
    owners were sealed. Each owner's whole chain is computed again under its owner lock, from
    the first event, so that events appended since the migration follow the sealed ones."""
    with store.snapshot() as sql:
        owners = [
            row[0] for row in sql.fetchall("SELECT DISTINCT owner FROM events WHERE hash IS NULL")
        ]
    for owner in owners:
        owner_id = as_uuid(owner)
        with store.transaction(owner_id) as tx:
            stored = list(links(tx.sql, owner_id))
            hashes = chain.chain(chain.GENESIS, [link.content for link in stored])
            tx.sql.executemany(
                "UPDATE events SET hash = ? WHERE position = ?",
                [
                    (h, link.position)
                    for link, h in zip(stored, hashes, strict=True)
                    if link.hash != h
                ],
            )
            if stored:
                tx.sql.execute(chain.UPSERT_HEAD, [owner_id, stored[-1].position, hashes[-1]])
    return len(owners)
