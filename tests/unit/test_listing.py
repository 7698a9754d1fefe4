"""Keyset listings pinned to their first page (projections/listing.py), on both backends.

Between pages, writes move rows across the cursor (their sort key changes), change whether they
match a filter, delete them, and create new ones: the walk must still list exactly the rows that
were live and matching when it began and are still live, each once, in their order back then.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest

from event_store import EventStore
from projections import listing
from schemas.ops import Op, PushRequest
from sync_server.push import Origin, push

OWNER = UUID("00000000-0000-4000-8000-00000000000a")
CLIENT = UUID("00000000-0000-4000-8000-00000000000b")


def write(store: EventStore, *ops: Op) -> None:
    results = push(store, PushRequest(CLIENT, list(ops)), Origin(OWNER, CLIENT)).results
    assert all(result.status == "applied" for result in results), results


def create(id_: UUID, day: int, status: str = "draft") -> Op:
    data = {"date": f"2026-12-{day:02d}", "city": "Madrid", "country": "ES", "fee": "100"}
    return Op(uuid4(), "show", id_, "create", data={**data, "status": status})


def update(store: EventStore, id_: UUID, **data: Any) -> Op:
    with store.snapshot() as sql:
        (version,) = sql.fetchone("SELECT version FROM shows WHERE id = ?", [id_]) or (0,)
    return Op(uuid4(), "show", id_, "update", base_version=version, data=data)


def delete(store: EventStore, id_: UUID) -> Op:
    with store.snapshot() as sql:
        (version,) = sql.fetchone("SELECT version FROM shows WHERE id = ?", [id_]) or (0,)
    return Op(uuid4(), "show", id_, "delete", base_version=version)


def walk(
    store: EventStore,
    order: listing.Order,
    limit: int,
    conditions: list[listing.Condition] | None = None,
    between: Callable[[int, set[UUID]], None] = lambda page, seen: None,
    table: str = "shows",
) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = []
    after = None
    for page_number in range(1000):
        with store.snapshot() as sql:
            page = listing.list_page(
                sql, OWNER, table, conditions or [], order, limit, after, store.registry
            )
        listed += [msgspec.json.decode(item.body) for item in page.items]
        assert len(page.items) <= limit
        if not page.has_more:
            return listed
        last = page.items[-1]
        after = listing.After(page.pinned, last.key, last.id)
        between(page_number, {UUID(row["id"]) for row in listed})
    raise AssertionError("the walk never ended")


def order_key(row: dict[str, Any], column: str) -> tuple[str, UUID]:
    return (row[column], UUID(row["id"]))


@pytest.mark.parametrize("descending", [False, True])
def test_a_walk_lists_each_row_once_while_rows_move_appear_and_vanish(
    store: EventStore, descending: bool
) -> None:
    rng = random.Random(7)
    ids = [uuid4() for _ in range(30)]
    # Several rows per date, so that the id breaks ties inside a page and across pages.
    write(store, *(create(id_, 1 + i % 12) for i, id_ in enumerate(ids)))
    with store.snapshot() as sql:
        start = listing.list_page(
            sql, OWNER, "shows", [], listing.Order("date", descending), 1000, None, store.registry
        )
    initial = [msgspec.json.decode(item.body) for item in start.items]
    deleted: set[UUID] = set()

    def churn(page: int, seen: set[UUID]) -> None:
        unseen = [id_ for id_ in ids if id_ not in seen and id_ not in deleted]
        seen_live = [id_ for id_ in ids if id_ in seen and id_ not in deleted]
        ops = [create(uuid4(), rng.randint(1, 28))]  # new rows are not part of the walk
        if unseen:
            # An unseen row jumps behind the cursor (a naive keyset walk would skip it)…
            ops.append(
                update(
                    store, rng.choice(unseen), date="2026-11-01" if not descending else "2027-01-31"
                )
            )
        if seen_live:
            # …and a seen one jumps ahead of it (a naive walk would list it twice).
            ops.append(
                update(
                    store,
                    rng.choice(seen_live),
                    date="2027-01-31" if not descending else "2026-11-01",
                )
            )
        write(store, *ops)
        still = [id_ for id_ in ids if id_ not in seen and id_ not in deleted]
        if page % 2 == 0 and still:
            gone = rng.choice(still)
            deleted.add(gone)
            write(store, delete(store, gone))
        if seen_live:
            write(store, update(store, rng.choice(seen_live), city="Bilbao"))

    listed = walk(store, listing.Order("date", descending), 4, between=churn)
    listed_ids = [UUID(row["id"]) for row in listed]
    assert len(listed_ids) == len(set(listed_ids)), "a row was listed twice"
    expected = [UUID(row["id"]) for row in initial if UUID(row["id"]) not in deleted]
    assert listed_ids == expected  # every survivor once, in the order it had when the walk began


def test_rows_are_shown_as_they_are_now_but_sorted_as_they_were(store: EventStore) -> None:
    first, second, third = uuid4(), uuid4(), uuid4()
    write(store, create(first, 1), create(second, 2), create(third, 3))
    with store.snapshot() as sql:
        page = listing.list_page(
            sql, OWNER, "shows", [], listing.Order("date"), 1, None, store.registry
        )
    write(store, update(store, third, date="2026-11-30", city="Sevilla"))
    after = listing.After(page.pinned, page.items[0].key, page.items[0].id)
    with store.snapshot() as sql:
        rest = listing.list_page(
            sql, OWNER, "shows", [], listing.Order("date"), 10, after, store.registry
        )
    bodies = [msgspec.json.decode(item.body) for item in rest.items]
    assert [row["id"] for row in bodies] == [str(second), str(third)]
    assert bodies[1]["date"] == "2026-11-30" and bodies[1]["city"] == "Sevilla"
    assert not rest.has_more


def test_membership_of_a_filtered_walk_is_decided_when_it_began(store: EventStore) -> None:
    confirmed = [uuid4() for _ in range(6)]
    drafts = [uuid4() for _ in range(6)]
    write(store, *(create(id_, i + 1, "confirmed") for i, id_ in enumerate(confirmed)))
    write(store, *(create(id_, i + 1, "draft") for i, id_ in enumerate(drafts)))
    only = [listing.Condition("status", "eq", "confirmed")]

    def flip(page: int, seen: set[UUID]) -> None:
        if page == 0:
            write(store, update(store, confirmed[-1], status="canceled"))
            write(store, update(store, drafts[-1], status="confirmed"))

    listed = walk(store, listing.Order("date"), 2, only, flip)
    assert [UUID(row["id"]) for row in listed] == confirmed
    assert listed[-1]["status"] == "canceled"  # matched when the walk began: shown as it is now


def test_sorting_by_sku_is_byte_order_on_both_backends(store: EventStore) -> None:
    skus = ["b", "B", "a", "Z", "é", "e", "10", "9"]
    ops = [
        Op(uuid4(), "product", uuid4(), "create", data={"sku": sku, "name": f"product {sku}"})
        for sku in skus
    ]
    write(store, *ops)
    listed = walk(store, listing.Order("sku"), 3, table="inventory")
    assert [row["sku"] for row in listed] == sorted(skus)
    with store.snapshot() as sql:
        pinned = listing.head(sql, OWNER)
    assert pinned > 0


def shows_by_date(store: EventStore, limit: int, after: listing.After | None) -> listing.ListPage:
    with store.snapshot() as sql:
        return listing.list_page(
            sql, OWNER, "shows", [], listing.Order("date"), limit, after, store.registry
        )


def begin_walk(store: EventStore, shows: int) -> tuple[list[UUID], listing.After]:
    """``shows`` shows written, and where a walk of one item a page stands after its first."""
    ids = [uuid4() for _ in range(shows)]
    write(store, *(create(id_, i + 1) for i, id_ in enumerate(ids)))
    page = shows_by_date(store, 1, None)
    return ids, listing.After(page.pinned, page.items[0].key, page.items[0].id)


def test_too_many_changes_since_the_walk_began_expire_it(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "MAX_CHANGED", 2)
    ids, after = begin_walk(store, 5)
    write(store, *(update(store, id_, city="Lugo") for id_ in ids[:3]))
    with pytest.raises(listing.ListingExpired):
        shows_by_date(store, 1, after)


def test_rows_created_since_the_walk_began_do_not_expire_it(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "MAX_CHANGED", 2)
    ids, after = begin_walk(store, 3)
    write(store, *(create(uuid4(), 28) for _ in range(5)))  # a bulk upload meanwhile
    write(store, update(store, ids[2], city="Lugo"))
    rest = shows_by_date(store, 5, after)
    # The listing as it was when it began: the two other shows, the changed one in its new
    # state; none of the new ones.
    assert [item.id for item in rest.items] == ids[1:]
    assert msgspec.json.decode(rest.items[1].body)["city"] == "Lugo"
