"""Replay: entities as they were at a past moment, rebuilt from the log, on both backends.

A replay to the present equals the live read rows (the same code built both); a replay to a
moment between two pushes gives the state after the first; ``sync-server replay`` prints it for
one entity, one owner or everyone.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

from conftest import RunCli
from domain_harness import op
from histories import History, live_rows
from op_strategies import IDS, PRELUDE

from event_store import EventStore, StreamId
from projections import replay
from projections.rows import ENTITIES

SHOW = IDS["show"][0]


def pushed(store: EventStore) -> tuple[History, datetime]:
    """A user's prelude, then the first show's fee changed; and a moment between the two."""
    history = History(store)
    assert history.push(list(PRELUDE)) == ["applied"] * len(PRELUDE)
    between = store.read_owner(history.owner)[-1].recorded_at
    assert history.push([op("show", SHOW, "update", {"fee": "950.00"}, base=1)]) == ["applied"]
    return history, between


def test_replay_to_now_equals_the_live_rows_and_to_a_moment_the_rows_then(
    store: EventStore,
) -> None:
    history, between = pushed(store)
    live = live_rows(store, history.owner)
    future = datetime.now().astimezone() + timedelta(days=1)
    assert replay.owner_at(store, history.owner, future) == live
    for key, row in live.items():
        stream = StreamId(ENTITIES[key[0]], key[1])
        assert replay.entity_at(store, history.owner, stream) == row
    then = replay.owner_at(store, history.owner, between)
    assert then[("shows", SHOW)].data["fee"] == "900.00"
    assert then[("shows", SHOW)].data["net"] == "820.00"  # its cost of 80 counted in
    assert replay.owner_at(store, history.owner, between - timedelta(days=1)) == {}
    assert replay.entity_at(store, uuid.uuid4(), StreamId("show", SHOW)) is None


def test_the_replay_command(run_cli: RunCli, cli_env: EventStore) -> None:
    history, between = pushed(cli_env)
    moment = between.isoformat()
    status, out, _ = run_cli("replay", "--as-of", moment, "--entity", "shows", "--id", str(SHOW))
    assert status == 0
    line = json.loads(out)
    assert line["owner"] == str(history.owner) and line["entity"] == "show"
    assert line["data"]["fee"] == "900.00" and line["data"]["version"] == 1

    status, out, _ = run_cli("replay", "--as-of", moment, "--owner", str(history.owner))
    lines = [json.loads(text) for text in out.splitlines()]
    assert status == 0 and len(lines) == len(PRELUDE)
    assert {entry["entity"] for entry in lines} == {"show", "cost", "product", "workout"}

    status, out, _ = run_cli("replay", "--as-of", (between + timedelta(days=1)).isoformat())
    assert status == 0 and len(out.splitlines()) == len(PRELUDE)
    assert '"fee":"950.00"' in out

    status, _, err = run_cli("replay", "--as-of", "2000-01-01T00:00:00Z", "--entity", "show",
                             "--id", str(SHOW))  # fmt: skip
    assert status == 1 and "no show" in err
    status, _, err = run_cli("replay", "--as-of", moment, "--entity", "shoe", "--id", str(SHOW))
    assert status == 2 and "unknown entity 'shoe'" in err
    status, _, err = run_cli("replay", "--as-of", moment, "--entity", "show")
    assert status == 2 and "go together" in err
