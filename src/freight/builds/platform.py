"""The embedded job platform, opened only when a build first needs it.

A build whose every task is a cache hit submits no job: it should not pay for opening the job store,
migrating it and starting (or borrowing) a scheduler. `LazyPlatform` is a `JobClient` that does all of
that on its first call, then passes every call through; `close()` stops what it started.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from freight.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from freight.jobs.client import JobView
    from freight.jobs.service import JobService
    from freight.jobs.spec import JobSpec


class LazyPlatform:
    """A JobClient over `JobService.open(settings)` + `running()`, opened on first use.

    `engine`: an engine on the same store that is already migrated (the build store's), so opening
    the platform does not run the migrations a second time."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self._lock = threading.Lock()
        self._stack = contextlib.ExitStack()
        self._service: JobService | None = None

    @property
    def opened(self) -> bool:
        return self._service is not None

    def service(self) -> JobService:
        with self._lock:
            if self._service is None:
                from freight.jobs.service import JobService

                with contextlib.ExitStack() as stack:
                    svc = stack.enter_context(
                        JobService(self.settings, self.engine)
                        if self.engine is not None
                        else JobService.open(self.settings)
                    )
                    stack.enter_context(svc.running())
                    self._stack = stack.pop_all()
                self._service = svc
            return self._service

    def close(self) -> None:
        with self._lock:
            self._service = None
            stack, self._stack = self._stack, contextlib.ExitStack()
        stack.close()

    def __enter__(self) -> LazyPlatform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # JobClient -------------------------------------------------------------------------------------

    def submit(self, spec: JobSpec | dict[str, Any], *, definition: str | None = None) -> JobView:
        return self.service().submit(spec, definition=definition)

    def submit_many(self, specs: Sequence[JobSpec]) -> list[JobView]:
        return self.service().submit_many(specs)

    def get(self, job_id: str) -> JobView:
        return self.service().get(job_id)

    def list_jobs(
        self,
        *,
        state: str | None = None,
        queue: str | None = None,
        label: dict[str, str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[JobView]:
        return self.service().list_jobs(state=state, queue=queue, label=label, limit=limit, cursor=cursor)

    def wait(self, job_ids: Sequence[str], timeout: float | None = None) -> list[JobView]:
        return self.service().wait(job_ids, timeout)

    def cancel(self, job_id: str) -> JobView:
        return self.service().cancel(job_id)

    def retry(self, job_id: str) -> JobView:
        return self.service().retry(job_id)

    def logs(self, job_id: str, *, attempt: int | None = None, follow: bool = False) -> Iterator[bytes]:
        return self.service().logs(job_id, attempt=attempt, follow=follow)
