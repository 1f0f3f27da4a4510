"""TokenCache: lookups are kept briefly, an eviction is immediate, unknown tokens are not kept."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from freight.config import Settings
from freight.jobs.service import JobService
from freight.server.tokencache import TokenCache
from freight.server.tokens import Principal, create_token, revoke_token


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def service(settings: Settings) -> Iterator[JobService]:
    with JobService.open(settings) as svc:
        yield svc


def test_a_fresh_entry_answers_without_the_store_until_it_expires(service: JobService) -> None:
    clock = Clock()
    cache = TokenCache(service.engine, ttl=2.0, clock=clock)
    info, text = create_token(service.engine, "ci", queues=["q"])
    assert cache.cached(text) is None
    first = cache.authenticate(text)
    assert first is not None and first.token_id == info.id and first.queues == frozenset({"q"})
    # revoked behind the cache's back (straight in the store): the entry still answers while fresh...
    revoke_token(service.engine, info.id)
    clock.now += 1.9
    assert cache.authenticate(text) == first
    # ...and the store decides once it is stale
    clock.now += 0.2
    assert cache.cached(text) is None
    assert cache.authenticate(text) is None


def test_evicting_a_token_refuses_it_on_the_next_lookup(service: JobService) -> None:
    clock = Clock()
    cache = TokenCache(service.engine, clock=clock)
    info, text = create_token(service.engine, "ci")
    _, other = create_token(service.engine, "other")
    assert cache.authenticate(text) is not None and cache.authenticate(other) is not None
    revoke_token(service.engine, info.id)
    cache.evict(info.id)
    assert cache.cached(text) is None
    assert cache.authenticate(text) is None
    assert cache.cached(other) is not None  # other tokens stay cached


def test_unknown_tokens_are_not_kept_and_the_cache_is_bounded(service: JobService) -> None:
    cache = TokenCache(service.engine, clock=Clock(), max_entries=2)
    assert cache.authenticate("frt_nothing_here") is None
    assert cache.cached("frt_nothing_here") is None
    texts = [create_token(service.engine, f"t{i}")[1] for i in range(3)]
    for text in texts:
        assert cache.authenticate(text) is not None
    assert len(cache._entries) <= 2


def test_concurrent_misses_of_one_token_read_the_store_once(service: JobService) -> None:
    from sqlalchemy import event

    cache = TokenCache(service.engine, clock=Clock())
    info, text = create_token(service.engine, "busy")
    reads: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM tokens" in statement:
            reads.append(statement)

    async def main() -> list[Principal | None]:
        return list(await asyncio.gather(*(cache.lookup(text) for _ in range(20))))

    event.listen(service.engine, "before_cursor_execute", count)
    try:
        found = asyncio.run(main())
    finally:
        event.remove(service.engine, "before_cursor_execute", count)
    assert all(p is not None and p.token_id == info.id for p in found)
    assert len(reads) == 1
