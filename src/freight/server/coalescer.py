"""Group commit for API submissions: submits that arrive together are written in one transaction.

Each request hands its (already validated) specs to `SubmitCoalescer.submit` and awaits the answer.
One commit is in flight at a time, on a thread of its own; what arrives while it runs waits and goes
into the next one, so under load a commit carries every request of the last commit's duration, and a
lone request waits for nothing but `window`. SQLite takes one writer at a time anyway: one
transaction for fifty submits costs little more than one for a single submit (the WAL append and the
lock hand-over are per transaction), where fifty threads queueing on the write lock each pay both and
the tail of the queue waits for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

from freight.errors import FreightError
from freight.jobs.client import JobView
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec

Group = list[tuple[JobSpec, str | None]]
#: seconds a commit waits for company once the first submit of a batch arrives; 0 keeps a lone
#: request's latency lowest (batching comes from the commit in flight, not from waiting)
WINDOW = 0.0
#: submissions (groups) per transaction at most; the rest go into the next one
MAX_GROUPS = 500


class SubmitCoalescer:
    def __init__(
        self,
        service: JobService,
        *,
        writes: AbstractContextManager[object] | None = None,
        window: float = WINDOW,
        max_groups: int = MAX_GROUPS,
    ) -> None:
        self.service = service
        self.window = window
        self.max_groups = max_groups
        self._writes = writes if writes is not None else contextlib.nullcontext()
        self._pending: list[tuple[Group, asyncio.Future[list[JobView]]]] = []
        self._flushing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="freight-submit")
        self._lock = threading.Lock()
        #: transactions committed and groups they carried (for tests and the benchmark's notes)
        self.commits = 0
        self.groups = 0

    async def submit(self, group: Sequence[tuple[JobSpec, str | None]]) -> list[JobView]:
        """Queue one submission (all of it or none) and wait for its views, or raise its error."""
        future: asyncio.Future[list[JobView]] = asyncio.get_running_loop().create_future()
        self._pending.append((list(group), future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self.window > 0:
                await asyncio.sleep(self.window)
            while self._pending:
                batch = self._pending[: self.max_groups]
                del self._pending[: self.max_groups]
                try:
                    results = await loop.run_in_executor(
                        self._executor, self._commit, [group for group, _ in batch]
                    )
                except BaseException as exc:  # the store failed: every waiter hears it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # the request went away (client disconnected)
                        continue
                    if isinstance(result, FreightError):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._flushing = False

    def _commit(self, groups: list[Group]) -> list[list[JobView] | FreightError]:
        with self._writes:
            results = self.service.submit_groups(groups)
        with self._lock:
            self.commits += 1
            self.groups += len(groups)
        return results

    def close(self) -> None:
        """Wait for the commit in flight. The coalescer stays usable (an app may be started again, as
        tests do): a new thread is made on the next commit."""
        self._executor.shutdown(wait=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="freight-submit")
