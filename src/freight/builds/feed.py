"""EventFeed: a server-side build's progress events, which a client long-polls.

The build's thread appends events (a `RecordingReporter` writes here) and closes the feed when the
build has ended; a request of the event loop waits, up to a bound, until there is an event past the
ones it has, or the feed is closed. A waiter is woken through its own loop
(`call_soon_threadsafe`), so progress reaches a client as it happens instead of at a poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any


class EventFeed:
    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._closed = False
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def append(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._events.append(event)
        self._wake()

    def close(self) -> None:
        """No event follows: wake every waiter for good."""
        with self._lock:
            self._closed = True
        self._wake()

    @property
    def closed(self) -> bool:
        return self._closed

    def since(self, after: int) -> list[dict[str, Any]]:
        with self._lock:
            return self._events[after:]

    def __len__(self) -> int:
        return len(self._events)

    async def wait(self, after: int, timeout: float) -> None:
        """Return once there are more than `after` events, the feed is closed, or `timeout` passed."""
        if timeout <= 0:
            return
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if len(self._events) > after or self._closed:
                return
            self._waiters.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            with self._lock:
                self._waiters.remove(waiter)

    def _wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits there
                loop.call_soon_threadsafe(event.set)
