"""The one door to the job platform for workloads (pipelines, builds) and entry points (CLI, API).

`JobClient` is implemented by `freight.jobs.service.JobService` (embedded: the local store and an
in-process scheduler) and, for a remote server, by an HTTP client. Workloads depend on this Protocol
only, never on the scheduler's internals.

`JobView` is also the API's job resource: /openapi.json documents it from these fields, the server
sends `to_dict()` and RemoteJobClient reads it back with `JobView.from_dict`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Protocol

from pydantic import ConfigDict, Field, TypeAdapter

from freight.errors import NotFoundError
from freight.jobs.spec import JobSpec
from freight.jobs.states import JobState


@dataclass(frozen=True)
class AttemptView:
    number: int
    state: str
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    signal: int | None
    oom_killed: bool
    peak_memory: int | None
    cpu_seconds: float | None
    error: str | None
    log_path: str | None
    #: the node it ran on: this machine's name embedded, the Ray node's id on a cluster
    node: str | None = None


@dataclass(frozen=True)
class JobView:
    # the API always sends every field, so its schema marks them all required
    __pydantic_config__ = ConfigDict(json_schema_serialization_defaults_required=True)

    id: str
    name: str | None
    queue: str
    state: JobState
    priority: int
    spec: JobSpec
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    attempts: int
    exit_code: int | None
    #: One plain sentence on how it ended or why it waits ("out of memory: peak 64.0M of limit 64.0M").
    reason: Annotated[str | None, Field(description="How it ended, or why it is still waiting (placement)")]
    labels: dict[str, str] = field(default_factory=dict)
    definition: str | None = None
    attempt_list: tuple[AttemptView, ...] = ()

    @property
    def terminal(self) -> bool:
        return self.state.terminal

    def to_dict(self) -> dict[str, Any]:
        """The JSON the API sends (and `--json` prints)."""
        return _adapter().dump_python(self, mode="json")  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobView:
        """The inverse of `to_dict` (a pydantic ValidationError if `data` is not that shape)."""
        return _adapter().validate_python(data)


def check_attempt(view: JobView, attempt: int | None, *, follow: bool = False) -> None:
    """Reject an attempt number `view` does not have; following may name the next one, to wait for
    it (a retry)."""
    if attempt is None:
        return
    if attempt < 1 or attempt > view.attempts + (1 if follow else 0):
        raise NotFoundError(
            f"job {view.id} has no attempt {attempt} (it has {view.attempts})", where="attempt"
        )


@cache
def _adapter() -> TypeAdapter[JobView]:
    # built on first use: the CLI's start-up does not pay for it
    return TypeAdapter(JobView)


class JobClient(Protocol):
    def submit(
        self,
        spec: JobSpec | dict[str, Any],
        *,
        definition: str | None = None,
        platform: bool = False,
    ) -> JobView:
        """Queue a job. With `definition`, `spec` holds overrides of that definition's template.
        The same idempotency_key returns the existing job instead of a new one. `platform`: the
        platform's own job (a pipeline step, a build task), which an embedded service lets run as
        the server's user; over HTTP it grants nothing."""
        ...

    def submit_many(self, specs: Sequence[JobSpec]) -> list[JobView]:
        """Queue several jobs in one transaction (they may depend on each other by id order)."""
        ...

    def get(self, job_id: str) -> JobView: ...

    def list_jobs(
        self,
        *,
        state: str | None = None,
        queue: str | None = None,
        label: dict[str, str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[JobView]: ...

    def wait(self, job_ids: Sequence[str], timeout: float | None = None) -> list[JobView]:
        """Block until every job is terminal (or timeout); returns their latest views."""
        ...

    def cancel(self, job_id: str) -> JobView: ...

    def retry(self, job_id: str) -> JobView: ...

    def logs(self, job_id: str, *, attempt: int | None = None, follow: bool = False) -> Iterator[bytes]:
        """The attempt's combined stdout/stderr (default: the latest attempt). With follow, keeps
        yielding until the job is terminal."""
        ...
