"""Any sequence of appends and reads behaves like a simple in-memory model of the log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_store import ConcurrencyError, EventStore, NewEvent, StreamId


@dataclass
class Model:
    streams: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # -> payloads
    keys: dict[tuple[int, str], dict[str, int]] = field(default_factory=dict)  # -> versions
    order: dict[int, list[int]] = field(default_factory=dict)  # owner -> payloads in log order


# One step: (owner, stream, how many events, expected: None | "right" | a version, key | None)
steps = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.integers(0, 2),
        st.integers(1, 3),
        st.one_of(st.none(), st.just("right"), st.integers(0, 4)),
        st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3"])),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=steps)
def test_appends_and_reads_match_the_model(store: EventStore, steps: list) -> None:  # type: ignore[type-arg]
    owners = [uuid.uuid4(), uuid.uuid4()]
    ids = [uuid.uuid4() for _ in range(3)]
    model = Model()
    payload = 0
    for owner_i, stream_i, count, expected, key in steps:
        s = StreamId("show", ids[stream_i])
        current = len(model.streams.get((owner_i, stream_i), []))
        want = current if expected == "right" else expected
        events = []
        for _ in range(count):
            payload += 1
            events.append(NewEvent(s, "show.updated", {"p": payload}))
        kwargs = {"expected": {s: want} if want is not None else None, "idempotency_key": key}
        if key is not None and (owner_i, key) in model.keys:
            result = store.append(owners[owner_i], events, **kwargs)  # type: ignore[arg-type]
            assert result.duplicate
            assert result.versions == model.keys[(owner_i, key)]
            continue
        if want is not None and want != current:
            try:
                store.append(owners[owner_i], events, **kwargs)  # type: ignore[arg-type]
            except ConcurrencyError as error:
                assert (error.expected, error.actual) == (want, current)
            else:
                raise AssertionError("a stale expected version was accepted")
            continue
        result = store.append(owners[owner_i], events, **kwargs)  # type: ignore[arg-type]
        assert not result.duplicate
        payloads = [e.data["p"] for e in events]
        model.streams.setdefault((owner_i, stream_i), []).extend(payloads)
        model.order.setdefault(owner_i, []).extend(payloads)
        assert result.version_of(s) == current + count
        if key is not None:
            model.keys[(owner_i, key)] = result.versions

    for (owner_i, stream_i), payloads in model.streams.items():
        recorded = store.read_stream(owners[owner_i], StreamId("show", ids[stream_i]))
        assert [e.data["p"] for e in recorded] == payloads
        assert [e.version for e in recorded] == list(range(1, len(payloads) + 1))
    for owner_i, payloads in model.order.items():
        assert [e.data["p"] for e in store.read_owner(owners[owner_i])] == payloads
