"""What the caller must load before deciding an op, and how to turn loaded rows into inputs.

Everything here reads rows, never the database: the push layer keeps the batch's rows in memory
(loaded, then changed by ``projections.apply.apply_event`` after each accepted op), so an op sees
what the ops before it in the same batch did, e.g. a show created two ops earlier.

The caller's part, per op:

1. ``needs = references_needed(op)``;
2. load into ``rows`` each key of ``needs.rows`` not already there, and every live ``inventory``
   row of the owner whose sku is in ``needs.skus`` and whose key is not already there (never
   replace a row in memory: it holds the batch's newer state);
3. ``decide(op, state_from_rows(op, rows), references_from_rows(op, rows))``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from uuid import UUID

import msgspec

from projections import shows
from projections.rows import TABLES, ReadRow, RowKey
from schemas.entities import CREATE, DELETE, UPDATE
from schemas.ops import Op

from .decisions import EntityState, References

_SHOWS = TABLES["show"]
_INVENTORY = TABLES["product"]


# gc=False: made by the thousand in a push and never part of a reference cycle, so the
# cyclic garbage collector need not track them (msgspec's option).
class Needs(msgspec.Struct, frozen=True, gc=False):
    rows: frozenset[RowKey] = frozenset()
    """Rows to load by key: the op's own row, and the show a cost op names."""
    skus: frozenset[str] = frozenset()
    """Load the owner's live products with these skus (uniqueness of a product's sku)."""


def references_needed(op: Op) -> Needs:
    table = TABLES.get(op.entity)
    if table is None:
        return Needs()
    keys: set[RowKey] = {(table, op.id)}
    skus: set[str] = set()
    if op.action in (CREATE, UPDATE):
        show_id = _uuid(op.data.get("show_id")) if op.entity == "cost" else None
        if show_id is not None:
            keys.add((_SHOWS, show_id))
        sku = op.data.get("sku") if op.entity == "product" else None
        # Looked up before the op is validated: a NUL (which validation refuses) must not even
        # reach the query, PostgreSQL fails on it.
        if isinstance(sku, str) and "\x00" not in sku:
            skus.add(sku)
    # A show's deletion cascades to its live costs, which its own row lists: nothing more to load.
    return Needs(frozenset(keys), frozenset(skus))


def state_from_rows(op: Op, rows: Mapping[RowKey, ReadRow]) -> EntityState | None:
    """The op's entity as ``rows`` hold it, or None if it does not exist."""
    table = TABLES.get(op.entity)
    row = None if table is None else rows.get((table, op.id))
    return None if row is None else EntityState.from_row(op.entity, row)


def references_from_rows(
    op: Op,
    rows: Mapping[RowKey, ReadRow],
    products: Callable[[str], Iterable[RowKey]] | None = None,
    needs: Needs | None = None,
) -> References:
    """``products``: the keys among ``rows`` of the product rows that may hold a given sku
    (those loaded by sku, and those changed since); by default every row is looked at, which
    for a batch of hundreds of ops made each product op walk every row of the batch.
    ``needs``: ``references_needed(op)``, when the caller has it already."""
    needs = references_needed(op) if needs is None else needs
    cascade = op.entity == "show" and op.action == DELETE
    if len(needs.rows) == 1 and not needs.skus and not cascade:
        return _NO_REFERENCES  # the op's own row is all it reads: most ops
    referenced_shows = {
        key[1]: EntityState.from_row("show", row)
        for key in needs.rows
        if key[0] == _SHOWS and (row := rows.get(key)) is not None
    }
    by_sku = {}
    for sku in needs.skus:
        for key in rows.keys() if products is None else products(sku):
            row = rows.get(key)
            if key[0] != _INVENTORY or row is None or row.deleted:
                continue
            if row.data["sku"] == sku:
                by_sku[sku] = row.id
    costs_by_show: dict[UUID, list[UUID]] = {}
    if cascade:
        show = rows.get((_SHOWS, op.id))
        if show is not None:
            costs_by_show[op.id] = shows.live_cost_ids(show)
    return References(shows=referenced_shows, products_by_sku=by_sku, costs_by_show=costs_by_show)


_NO_REFERENCES = References()


def _uuid(value: object) -> UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return UUID(value)
    except ValueError:
        return None
