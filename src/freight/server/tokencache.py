"""A short-lived cache of token lookups, so a busy client's requests do not each read the store.

A hit costs one sha256 and a dict lookup, on the event loop; a miss reads the store in a thread (as
before) and keeps the answer for `ttl` seconds. Only tokens that resolved are kept (an unknown text
is not remembered, so a flood of bad tokens cannot fill memory). Revoking a token through this server
evicts it at once; a revocation written straight to the store (`freight tokens revoke` on the server's
machine, another server on the same PostgreSQL) takes effect within `ttl`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from freight.server.tokens import Principal, authenticate, hash_secret

#: seconds a resolved token is trusted without asking the store again
TOKEN_TTL = 2.0
#: entries kept at most; past it the cache starts over (it refills from the store in one lookup each)
MAX_ENTRIES = 10_000


class TokenCache:
    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float = TOKEN_TTL,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._lock = threading.Lock()
        #: sha256 of the token text -> (principal, expiry on `clock`)
        self._entries: dict[str, tuple[Principal, float]] = {}
        #: bumped by every eviction: a lookup that began before one must not store what it read
        self._generation = 0
        #: store lookups under way, by digest (event-loop side only): one per token at a time
        self._inflight: dict[str, asyncio.Future[Principal | None]] = {}

    def cached(self, text: str) -> Principal | None:
        """The principal if a fresh entry holds it; None means: ask `authenticate`."""
        digest = hash_secret(text)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry[1] <= self._clock():
                del self._entries[digest]
                return None
            return entry[0]

    def authenticate(self, text: str) -> Principal | None:
        """The principal a token stands for (from the cache when fresh, else from the store)."""
        hit = self.cached(text)
        if hit is not None:
            return hit
        with self._lock:
            generation = self._generation
        principal = authenticate(self.engine, text)
        if principal is not None:
            digest = hash_secret(text)
            with self._lock:
                if generation != self._generation:
                    return principal  # a revocation may have landed after our read: do not keep it
                if len(self._entries) >= self._max:
                    self._entries.clear()
                self._entries[digest] = (principal, self._clock() + self.ttl)
        return principal

    async def lookup(self, text: str) -> Principal | None:
        """`authenticate` from the event loop, in a worker thread, once per token at a time: when an
        entry expires under load, every request in flight with that token misses at once, and
        without this each would read the store (and queue for its connections) in a thread of its
        own, holding all of them up together."""
        hit = self.cached(text)
        if hit is not None:
            return hit
        digest = hash_secret(text)
        pending = self._inflight.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(run_in_threadpool(self.authenticate, text))
            self._inflight[digest] = pending
            pending.add_done_callback(lambda _done: self._inflight.pop(digest, None))
        return await asyncio.shield(pending)

    def evict(self, token_id: str) -> None:
        """Forget every entry of this token (it was just revoked)."""
        with self._lock:
            self._generation += 1
            stale = [d for d, (p, _) in self._entries.items() if p.token_id == token_id]
            for digest in stale:
                del self._entries[digest]
