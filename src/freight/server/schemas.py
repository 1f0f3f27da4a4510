"""Request and response models of the REST API (they are what /openapi.json documents).

Responses are built from `JobView.to_dict()` and friends and sent as JSON directly; these models
describe them for the schema (and schemathesis checks that they tell the truth). A job, a capacity
sample and a token are described by the dataclasses the server sends (`JobView`, `Sample`,
`TokenInfo`), so their fields are listed once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from freight.jobs.client import JobView
from freight.server.sampler import Sample
from freight.server.tokens import TokenInfo


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Finite = Annotated[float, AfterValidator(_finite)]
_QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


def _queue_name(value: str) -> str:
    if not re.match(_QUEUE_PATTERN, value):
        raise ValueError(f"queue name {value!r} must be letters, digits, '.', '_' or '-'")
    return value


# the pattern is for the schema; the check says it in words
QueueName = Annotated[str, AfterValidator(_queue_name), Field(json_schema_extra={"pattern": _QUEUE_PATTERN})]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobPage(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class JobList(BaseModel):
    jobs: list[JobView]


class BatchIn(_Body):
    jobs: list[dict[str, Any]] = Field(min_length=1, max_length=1000, description="Job specs")


class WaitIn(_Body):
    ids: list[Annotated[str, Field(max_length=64)]] = Field(min_length=1, max_length=1000)
    timeout: Annotated[Finite, Field(ge=0, le=30)] = 30.0


class GcIn(_Body):
    older_than: Annotated[
        str | Finite, Field(description="Jobs that ended longer ago than this: seconds, or a text like 30d")
    ] = "30d"
    dry_run: StrictBool = Field(default=False, description="Only list what would go")


class GcOut(BaseModel):
    ids: list[str] = Field(description="The finished jobs deleted (or that would be, with dry_run)")
    dry_run: bool


class UsageOut(BaseModel):
    live: bool = Field(description="Measured now from the running attempt (else the last attempt's peak)")
    memory: int | None
    cpu_seconds: float | None


class EventOut(BaseModel):
    id: int
    job_id: str
    attempt: int | None
    from_state: str | None
    to_state: str
    at: float
    detail: str | None


class QueueUse(BaseModel):
    cpus: float
    memory: int = Field(description="Bytes")


class QueueOut(BaseModel):
    name: str
    priority: int
    weight: float
    paused: bool
    created_at: float
    jobs: dict[str, int] = Field(description="Job counts by state")
    in_use: QueueUse = Field(description="What its running jobs hold now (its fair share)")
    allow_root: bool = Field(default=False, description="Jobs may ask for `user: root`")
    allow_inherit_env: bool = Field(default=False, description="Jobs may ask for `inherit_env: true`")
    max_cpus: float | None = Field(default=None, description="The most one job may ask for")
    max_memory: int | None = Field(default=None, description="Bytes; the most one job may ask for")
    default_cpus: float | None = Field(default=None, description="What a job gets when it does not say")
    default_memory: int | None = Field(
        default=None, description="Bytes; what a job gets when it does not say"
    )


class QueueIn(_Body):
    weight: Annotated[Finite, Field(gt=0, le=1_000_000)] | None = None
    priority: Annotated[int, Field(ge=-1000, le=1000)] | None = None
    paused: StrictBool | None = None
    #: the queue's policy (admin only): grants, and per-job maxima and defaults (0 clears one)
    allow_root: StrictBool | None = None
    allow_inherit_env: StrictBool | None = None
    max_cpus: Annotated[Finite, Field(ge=0, le=1_000_000)] | None = None
    max_memory: Annotated[int, Field(ge=0)] | None = None
    default_cpus: Annotated[Finite, Field(ge=0, le=1_000_000)] | None = None
    default_memory: Annotated[int, Field(ge=0)] | None = None

    def policy(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in POLICY_FIELDS if getattr(self, k) is not None}


POLICY_FIELDS = (
    "allow_root",
    "allow_inherit_env",
    "max_cpus",
    "max_memory",
    "default_cpus",
    "default_memory",
)


class DefinitionOut(BaseModel):
    name: str
    version: int
    spec: dict[str, Any]
    description: str | None
    created_at: float
    problem: str | None = Field(
        default=None, description="Why a stored version cannot be used (its spec is shown empty)"
    )


class DefinitionDeleted(BaseModel):
    name: str
    deleted: int = Field(description="How many versions were removed")


class DefinitionIn(_Body):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    spec: dict[str, Any] = Field(description="A job spec template; submissions may override fields")
    description: Annotated[str, Field(max_length=2000)] | None = None


class DefinitionCreated(BaseModel):
    name: str
    version: int


class NodeOut(BaseModel):
    id: str = Field(description="The node's id: the host name embedded, the Ray node id on a cluster")
    name: str = Field(description="What people read: the id, or its first 12 digits")
    address: str
    cpus: float
    memory: int
    used_cpus: float = Field(description="What the jobs placed here reserved")
    used_memory: int
    running: int
    queued: int | None = Field(description="Jobs waiting in the store (embedded only)")
    labels: dict[str, str] = Field(description="What jobs constrain on (`constraints: {node.zone: eu}`)")
    state: Literal["alive", "unreachable", "returning", "dead"] = Field(
        description="alive; unreachable (its agent does not answer: takes no new jobs, its jobs run on); "
        "returning (answers again after it was lost: what ran there is stopped first); dead (lost)"
    )
    reason: str | None = Field(default=None, description="Why it takes no new jobs")
    isolation: str | None


class NodesOut(BaseModel):
    scheduler: str | None = Field(description="Who holds the scheduler lease; null if none runs")
    nodes: list[NodeOut]


class ScalingEventOut(BaseModel):
    id: int
    at: float
    kind: str = Field(description="request (a new shape asked of the autoscaler), node_added, node_removed")
    node: str | None = None
    bundles: int | None = Field(default=None, description="request: bundles asked for")
    cpus: float | None = Field(default=None, description="request: CPUs asked for in all")
    memory: int | None = Field(default=None, description="request: bytes of memory asked for in all")
    nodes: int | None = Field(default=None, description="alive nodes after the event")
    detail: str | None = None


class DemandOut(BaseModel):
    autoscale: bool = Field(description="Whether the scheduler asks a Ray autoscaler for nodes")
    requested: dict[str, float] | None = Field(
        default=None, description="The standing request: bundles, cpus, memory"
    )
    unplaced: int | None = Field(default=None, description="Queued jobs no node has room for now")
    unfit: int | None = Field(default=None, description="Queued jobs no node could ever hold")
    reason: str | None = None


class CapacityOut(BaseModel):
    interval: float = Field(description="Seconds between samples")
    now: Sample
    series: list[Sample]
    nodes: list[dict[str, Any]] = Field(description="The nodes jobs are placed on (as GET /nodes)")
    demand: DemandOut
    scaling_events: list[ScalingEventOut] = Field(description="Latest first (at most 50)")


@dataclass(frozen=True)
class TokenCreated(TokenInfo):
    token: Annotated[str, Field(description="The token itself; shown this once and never stored")]


class TokenIn(_Body):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    queues: list[QueueName] | None = Field(default=None, max_length=100)
    admin: StrictBool = False


class WhoAmI(BaseModel):
    token_id: str
    name: str
    admin: bool
    queues: list[str] | None
