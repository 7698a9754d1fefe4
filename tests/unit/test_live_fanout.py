"""Live updates inside one process: what a poke announces, how the hub fans notices out and
coalesces them, the event stream's lifecycle, and the long poll (sync_server/live/)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from event_store.changes import Committed
from sync_server.live import Hub, HubClosed, Poke, announce
from sync_server.live.hub import IDLE, REPLACED, SHUTDOWN
from sync_server.live.longpoll import long_poll
from sync_server.live.stream import HEARTBEAT, OPEN, Timing, event, events
from sync_server.pull import WireChange, WirePage
from sync_server.pull_cursors import ALL, Cursor

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(30):  # only bounds a broken run
            return await main()

    return asyncio.run(bounded())


# -- what a poke announces --------------------------------------------------------------------


def test_a_poke_points_before_its_commits_and_the_stream_moves_past_them() -> None:
    announced = Cursor(10, 1, frozenset({"show"}), (2, uuid.uuid4()))
    send, after = announce(announced, Poke(11, 14))
    assert send == announced  # a pull from it returns the commits at 11..14
    assert after == Cursor(14, 1, frozenset({"show"}))
    send, after = announce(after, Poke(20, 20))
    assert send == Cursor(14, 1, frozenset({"show"})) and after.position == 20


def test_a_commit_the_announcement_already_counted_is_announced_again() -> None:
    # The stream read the head (12) after a commit at 11..12 that is also notified.
    send, after = announce(Cursor(12, 1), Poke(11, 12))
    assert send == Cursor(10, 1) and after == Cursor(12, 1)


def test_after_missed_notices_a_poke_points_at_the_last_announcement() -> None:
    announced = Cursor(10, 3, ALL, (1, uuid.uuid4()))
    assert announce(announced, Poke(None, None)) == (announced, announced)
    assert announce(announced, Poke(None, None).merge(Poke(15, 16))) == (
        announced,
        Cursor(16, 3),
    )


def test_pokes_merge_into_the_widest_range() -> None:
    assert Poke(5, 6).merge(Poke(8, 9)) == Poke(5, 9)
    assert Poke(8, 9).merge(Poke(5, 6)) == Poke(5, 9)
    assert Poke(5, 6).merge(Poke.of(None)) == Poke(None, 6)
    assert Poke.of(Committed(uuid.uuid4(), 3, 4)) == Poke(3, 4)


# -- the hub ----------------------------------------------------------------------------------


def notice(owner: uuid.UUID, first: int, last: int | None = None) -> Committed:
    return Committed(owner, first, first if last is None else last)


def test_a_notice_reaches_every_subscriber_of_its_owner_and_no_one_else() -> None:
    async def main() -> None:
        hub = Hub(max_per_owner=5)
        alice, bob = uuid.uuid4(), uuid.uuid4()
        phone, laptop, other = hub.subscribe(alice), hub.subscribe(alice), hub.subscribe(bob)
        hub.deliver(notice(alice, 7))
        assert await phone.next(0) == Poke(7, 7)
        assert await laptop.next(0) == Poke(7, 7)
        assert await other.next(0) is None
        hub.deliver(None)  # notices may have been missed: everyone is poked
        assert [await s.next(0) for s in (phone, laptop, other)] == [Poke(None, None)] * 3

    run(main)


def test_a_slow_subscriber_holds_one_coalesced_poke() -> None:
    async def main() -> None:
        hub = Hub(max_per_owner=5)
        owner = uuid.uuid4()
        slow = hub.subscribe(owner)
        for position in range(1, 10_001):
            hub.deliver(notice(owner, position))
        assert await slow.next(0) == Poke(1, 10_000)
        assert await slow.next(0) is None

    run(main)


def test_a_waiting_subscriber_wakes_on_a_notice() -> None:
    async def main() -> None:
        hub = Hub(max_per_owner=5)
        owner = uuid.uuid4()
        waiting = hub.subscribe(owner)
        task = asyncio.create_task(waiting.next(60))
        await asyncio.sleep(0)
        hub.deliver(notice(owner, 3, 4))
        assert await task == Poke(3, 4)

    run(main)


def test_the_oldest_subscriber_of_an_owner_is_closed_past_the_cap() -> None:
    async def main() -> None:
        hub = Hub(max_per_owner=2)
        owner = uuid.uuid4()
        first, second, third = (hub.subscribe(owner) for _ in range(3))
        assert first.closed == REPLACED and await first.next(60) is None
        assert second.closed is None and third.closed is None
        assert hub.count(owner) == 2
        hub.deliver(notice(owner, 1))
        assert await first.next(0) is None and await third.next(0) == Poke(1, 1)
        hub.unsubscribe(second)
        hub.unsubscribe(third)
        assert hub.count() == 0

    run(main)


def test_closing_the_hub_closes_everyone_and_refuses_newcomers() -> None:
    async def main() -> None:
        hub = Hub(max_per_owner=2)
        subscribers = [hub.subscribe(uuid.uuid4()) for _ in range(3)]
        hub.close_all(SHUTDOWN)
        assert all(s.closed == SHUTDOWN for s in subscribers)
        assert hub.count() == 0
        with pytest.raises(HubClosed):
            hub.subscribe(uuid.uuid4())

    run(main)


# -- the event stream -------------------------------------------------------------------------


def encode(cursor: Cursor) -> str:
    return f"{cursor.position}"


def test_the_stream_pokes_with_cursors_that_follow_on_and_says_bye_when_replaced() -> None:
    async def main() -> list[bytes]:
        hub = Hub(max_per_owner=1)
        owner = uuid.uuid4()
        subscriber = hub.subscribe(owner)
        stream = events(subscriber, Cursor(4, 1), encode, Timing(60, 600))
        assert await anext(stream) == OPEN
        hub.deliver(notice(owner, 5, 6))
        hub.deliver(notice(owner, 8))
        got = [await anext(stream)]
        hub.deliver(notice(owner, 9, 12))
        got.append(await anext(stream))
        hub.subscribe(owner)  # a newer connection of the same user replaces this one
        got.append(await anext(stream))
        got.extend([chunk async for chunk in stream])
        return got

    assert run(main) == [
        event("poke", {"cursor": "4"}),
        event("poke", {"cursor": "8"}),
        event("bye", {"reason": REPLACED}),
    ]


def test_the_stream_beats_while_quiet_and_closes_when_idle() -> None:
    async def main() -> list[bytes]:
        subscriber = Hub(max_per_owner=1).subscribe(uuid.uuid4())
        stream = events(subscriber, Cursor(0, 1), encode, Timing(0.02, 0.1))
        return [chunk async for chunk in stream]

    got = run(main)
    assert got[0] == OPEN and got[-1] == event("bye", {"reason": IDLE})
    assert set(got[1:-1]) == {HEARTBEAT}


def test_a_stream_opened_behind_is_poked_at_once() -> None:
    async def main() -> bytes:
        subscriber = Hub(max_per_owner=1).subscribe(uuid.uuid4())
        stream = events(subscriber, Cursor(9, 1), encode, Timing(60, 600), first=Cursor(2, 1))
        assert await anext(stream) == OPEN
        return await anext(stream)

    assert run(main) == event("poke", {"cursor": "2"})


# -- the long poll ----------------------------------------------------------------------------


def page(*ids: uuid.UUID) -> WirePage:
    return WirePage([WireChange("show", i, "delete", 2) for i in ids], "c", has_more=False)


class Log:
    """A fake store seen through pull: pages of what was 'committed' so far."""

    def __init__(self) -> None:
        self.ids: list[uuid.UUID] = []
        self.fetches = 0

    async def fetch(self) -> WirePage:
        self.fetches += 1
        return page(*self.ids)


def test_a_long_poll_answers_at_once_when_a_change_is_already_there() -> None:
    async def main() -> None:
        hub, log, owner = Hub(5), Log(), uuid.uuid4()
        log.ids.append(uuid.uuid4())  # committed between the client's last pull and this one
        assert (await long_poll(hub, owner, log.fetch, 60)).changes
        assert log.fetches == 1 and hub.count() == 0

    run(main)


def test_a_long_poll_wakes_on_its_owners_change_only() -> None:
    async def main() -> None:
        hub, log, owner = Hub(5), Log(), uuid.uuid4()
        task = asyncio.create_task(long_poll(hub, owner, log.fetch, 60))
        while hub.count(owner) == 0 or log.fetches == 0:
            await asyncio.sleep(0)
        hub.deliver(notice(uuid.uuid4(), 1))  # someone else's change
        await asyncio.sleep(0.05)
        assert not task.done()
        hub.deliver(notice(owner, 2))  # a poke with nothing for this pull: it waits on
        await asyncio.sleep(0.05)
        assert not task.done() and log.fetches == 2
        log.ids.append(uuid.uuid4())
        hub.deliver(notice(owner, 3))
        answered = await task
        assert [c.id for c in answered.changes] == log.ids
        assert hub.count() == 0

    run(main)


def test_a_long_poll_answers_the_empty_page_when_the_wait_ends_or_the_server_stops() -> None:
    async def main() -> None:
        hub, log, owner = Hub(5), Log(), uuid.uuid4()
        assert (await long_poll(hub, owner, log.fetch, 0.05)) == page()
        task = asyncio.create_task(long_poll(hub, owner, log.fetch, 60))
        while hub.count(owner) == 0:
            await asyncio.sleep(0)
        hub.close_all(SHUTDOWN)
        assert await task == page()
        # Once closing, a long poll is a plain pull.
        assert await long_poll(hub, owner, log.fetch, 60) == page()

    run(main)
