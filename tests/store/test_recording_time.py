"""One owner's events are recorded in position order, whatever the clocks say.

Several server processes may disagree about the time, and a clock may step back; pulls since a
moment, ``as_of`` and the 30-day sales window all read "recorded after a moment" as "after a
position", which holds only if one owner's ``recorded_at`` never goes down with its positions.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from event_store import EventStore, NewEvent, StreamId, utc_now
from event_store import store as store_module


def test_a_clock_that_steps_back_does_not_reorder_an_owner_s_events(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    stream = StreamId("show", uuid.uuid4())
    ahead = utc_now() + timedelta(hours=1)
    monkeypatch.setattr(store_module, "utc_now", lambda: ahead)
    store.append(owner, [NewEvent(stream, "show.created", {})])
    monkeypatch.setattr(store_module, "utc_now", lambda: ahead - timedelta(minutes=30))
    store.append(owner, [NewEvent(stream, "show.updated", {})])
    store.append(other, [NewEvent(StreamId("show", uuid.uuid4()), "show.created", {})])

    first, second = store.read_stream(owner, stream)
    assert second.position > first.position
    assert second.recorded_at >= first.recorded_at
    # Another owner's events keep their own clock: the bound is per owner.
    [theirs] = store.read_owner(other)
    assert theirs.recorded_at == ahead - timedelta(minutes=30)
    assert [e.position for e in store.read_recorded_after(owner, ahead - timedelta(seconds=1))] == [
        first.position,
        second.position,
    ]
