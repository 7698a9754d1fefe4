"""Tamper evidence: each owner's events form a hash chain, closed by a head (both backends).

Any event edited or deleted in the database, the last one included, is caught by verify and
named by owner and position; events recorded before the chain existed are sealed by migrate.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from conftest import RunCli
from domain_harness import show_data
from histories import History
from op_strategies import PRELUDE

from event_store import EventStore, NewEvent, Sql, StreamId
from event_store.integrity import seal, verify_chains


def chain_of(store: EventStore, owner: uuid.UUID, events: int = 4) -> list[int]:
    """``events`` events of one show for ``owner``, in two appends; their positions."""
    stream = StreamId("show", uuid.uuid4())
    first = store.append(owner, [NewEvent(stream, "show.created", show_data())])
    more = [NewEvent(stream, "show.updated", {"fee": f"{n}.00"}) for n in range(events - 1)]
    rest = store.append(owner, more)
    return list(range(first.first_position, first.last_position + 1)) + list(
        range(rest.first_position, rest.last_position + 1)
    )


def breaks(store: EventStore) -> dict[uuid.UUID, tuple[int | None, str]]:
    return {b.owner: (b.position, b.problem) for b in verify_chains(store)}


@pytest.fixture
def owners(store: EventStore) -> tuple[uuid.UUID, uuid.UUID, list[int]]:
    """A victim with a chain of 4 events, and a bystander whose chain stays whole."""
    victim, bystander = uuid.uuid4(), uuid.uuid4()
    positions = chain_of(store, victim)
    chain_of(store, bystander)
    assert breaks(store) == {}
    return victim, bystander, positions


Tamper = Callable[[Sql, list[int]], None]

CASES: dict[str, tuple[Tamper, int | None, str]] = {
    # name: (what is done to the victim's events at these positions, where it breaks, says)
    "edited data": (
        lambda sql, p: sql.execute(
            "UPDATE events SET data = ? WHERE position = ?", ['{"fee":"9.99"}', p[2]]
        ),
        2, "this event was edited",
    ),
    "edited metadata": (
        lambda sql, p: sql.execute(
            "UPDATE events SET metadata = ? WHERE position = ?", ['{"actor":"mallory"}', p[1]]
        ),
        1, "this event was edited",
    ),
    "edited time": (
        lambda sql, p: sql.execute(
            "UPDATE events SET recorded_at = ? WHERE position = ?", ["2020-01-01T00:00:00Z", p[0]]
        ),
        0, "this event was edited",
    ),
    "deleted in the middle": (
        lambda sql, p: sql.execute("DELETE FROM events WHERE position = ?", [p[1]]),
        2, "an event before it was deleted",
    ),
    "deleted last": (
        lambda sql, p: sql.execute("DELETE FROM events WHERE position = ?", [p[3]]),
        3, "the events after position",
    ),
    "deleted last two and head rewound by hand to a wrong hash": (
        lambda sql, p: [
            sql.execute("DELETE FROM events WHERE position IN (?, ?)", [p[2], p[3]]),
            sql.execute("UPDATE event_chains SET position = ? WHERE position = ?", [p[1], p[3]]),
        ],
        None, "does not match the last event",
    ),
    "deleted all": (
        lambda sql, p: sql.execute("DELETE FROM events WHERE position >= ? AND position <= ?",
                                   [p[0], p[3]]),
        3, "no events left",
    ),
    "head deleted": (
        lambda sql, p: sql.execute("DELETE FROM event_chains WHERE position = ?", [p[3]]),
        None, "no head record",
    ),
    "hash wiped": (
        lambda sql, p: sql.execute("UPDATE events SET hash = NULL WHERE position = ?", [p[1]]),
        1, "no hash",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_any_edit_or_deletion_is_caught_and_named(
    store: EventStore, owners: tuple[uuid.UUID, uuid.UUID, list[int]], case: str
) -> None:
    victim, _, positions = owners
    tamper, index, says = CASES[case]
    with store.sql() as sql:
        tamper(sql, positions)
    found = breaks(store)
    assert list(found) == [victim], found  # the bystander's chain still holds
    position, problem = found[victim]
    assert position == (None if index is None else positions[index])
    assert says in problem


def test_verify_prints_the_first_broken_link(run_cli: RunCli, cli_env: EventStore) -> None:
    history = History(cli_env)
    history.push(list(PRELUDE))
    owner, position = history.owner, cli_env.read_owner(history.owner)[1].position
    with cli_env.sql() as sql:
        sql.execute(
            "UPDATE events SET metadata = ? WHERE position = ?", ['{"actor":"x"}', position]
        )
    status, out, _ = run_cli("verify")
    assert status == 1
    assert f"owner {owner}, position {position}: the hash does not match" in out
    assert "hash chains: 1 broken" in out


def test_events_from_before_the_chain_are_sealed_and_appends_follow_them(
    store: EventStore,
) -> None:
    owner = uuid.uuid4()
    chain_of(store, owner)
    with store.sql() as sql:  # what a store migrated from before 0003 holds
        sql.execute("UPDATE events SET hash = NULL")
        sql.execute("DELETE FROM event_chains")
    assert breaks(store)[owner][1] == "the event has no hash (never sealed)"
    assert seal(store) == 1
    assert breaks(store) == {}
    chain_of(store, owner)  # later appends extend the sealed chain
    assert breaks(store) == {}
    assert seal(store) == 0
