"""EventFeed: a waiter wakes when another thread appends or closes, not at an interval."""

from __future__ import annotations

import asyncio
import threading

from freight.builds.feed import EventFeed


def test_a_waiter_wakes_on_an_event_from_another_thread() -> None:
    feed = EventFeed()

    async def scenario() -> list[dict[str, object]]:
        waiting = asyncio.create_task(feed.wait(0, 600))
        await asyncio.sleep(0)  # the waiter is registered
        threading.Thread(target=feed.append, args=({"kind": "info", "message": "hi"},)).start()
        await waiting  # would take 600 s if nothing woke it
        return feed.since(0)

    assert asyncio.run(scenario()) == [{"kind": "info", "message": "hi"}]
    assert len(feed) == 1 and feed.since(1) == []


def test_closing_wakes_waiters_and_later_waits_return_at_once() -> None:
    feed = EventFeed()
    feed.append({"kind": "started", "total": 1})

    async def scenario() -> None:
        waiting = asyncio.create_task(feed.wait(1, 600))
        await asyncio.sleep(0)
        threading.Thread(target=feed.close).start()
        await waiting
        await feed.wait(1, 600)  # closed: no waiting at all
        await feed.wait(0, 600)  # an event past 0 is there

    asyncio.run(scenario())
    assert feed.closed


def test_a_wait_without_news_ends_at_its_bound() -> None:
    feed = EventFeed()
    asyncio.run(feed.wait(0, 0.01))
    asyncio.run(feed.wait(0, 0))
    assert feed.since(0) == []
