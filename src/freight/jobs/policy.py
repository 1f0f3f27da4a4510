"""What a queue lets its jobs do: the limits a job cannot dodge and the privileges an admin grants.

Applied at submit, before anything is stored, to every job a token or the CLI sends:

- resources: the queue's defaults fill what the spec leaves out (or its maximum, where the spec's
  default is more); cpus and memory must fit the queue's
  maxima and one node's capacity (a job that can never be placed is refused now, not queued for ever);
- `user: root` only on a queue with `allow_root`, `inherit_env: true` only with `allow_inherit_env`;
- no `freight.*` label: those are the platform's own (a service's replicas are found by them).

Jobs the platform itself submits (pipeline steps, build tasks) are checked for limits too; they may
run as the server's user (see docs/reliability.md, "What a job can reach").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from freight.errors import UserError
from freight.jobs.spec import MIN_MEMORY, RESERVED_LABEL, JobSpec
from freight.units import format_bytes


@dataclass(frozen=True)
class QueuePolicy:
    """A queue's grants and limits (the policy columns of the `queues` table)."""

    name: str
    allow_root: bool = False
    allow_inherit_env: bool = False
    max_cpus: float | None = None
    max_memory: int | None = None
    default_cpus: float | None = None
    default_memory: int | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> QueuePolicy:
        return cls(
            name=row["name"],
            allow_root=bool(row.get("allow_root")),
            allow_inherit_env=bool(row.get("allow_inherit_env")),
            max_cpus=row.get("max_cpus"),
            max_memory=row.get("max_memory"),
            default_cpus=row.get("default_cpus"),
            default_memory=row.get("default_memory"),
        )


def check_labels(labels: Mapping[str, str], *, where: str = "spec") -> None:
    """UserError naming the first label a user may not set: the `freight.` ones are the platform's."""
    for key in labels:
        if key.startswith(RESERVED_LABEL):
            raise UserError(
                f"label {key!r} is reserved: {RESERVED_LABEL}* labels are set by freight itself",
                where=f"{where}: labels.{key}",
                hint="pick another name, like app.service",
            )


def admit(
    spec: JobSpec,
    policy: QueuePolicy,
    capacity: tuple[float, int],
    *,
    platform: bool = False,
    where: str = "spec",
) -> JobSpec:
    """`spec` with the queue's defaults applied, or UserError naming the field that breaks a rule."""
    if not platform:
        check_labels(spec.labels, where=where)
    spec = _with_defaults(spec, policy)
    queue = policy.name
    if spec.user == "root" and not (policy.allow_root or platform):
        raise UserError(
            f"queue {queue} does not run jobs as root",
            where=f"{where}: user",
            hint=f"leave `user` out, or ask an admin to run `freight queues set {queue} --allow-root`",
        )
    if spec.pass_env and not (policy.allow_inherit_env or platform):
        raise UserError(
            f"queue {queue} does not pass the server's variables to jobs",
            where=f"{where}: pass_env",
            hint="pass what the job needs in `env` or `secrets`, "
            f"or ask an admin to run `freight queues set {queue} --allow-inherit-env`",
        )
    if spec.inherit_env and not (policy.allow_inherit_env or platform):
        raise UserError(
            f"queue {queue} does not give jobs the server's environment",
            where=f"{where}: inherit_env",
            hint="pass what the job needs in `env` or `secrets`, "
            f"or ask an admin to run `freight queues set {queue} --allow-inherit-env`",
        )
    node_cpus, node_memory = capacity
    res = spec.resources
    if policy.max_cpus is not None and res.cpus > policy.max_cpus:
        raise UserError(
            f"asks for {res.cpus:g} cpus; queue {queue} allows at most {policy.max_cpus:g}",
            where=f"{where}: resources.cpus",
        )
    if res.cpus > node_cpus:
        raise UserError(
            f"asks for {res.cpus:g} cpus; a node here has {node_cpus:g}", where=f"{where}: resources.cpus"
        )
    if policy.max_memory is not None and res.memory > policy.max_memory:
        raise UserError(
            f"asks for {format_bytes(res.memory)} of memory; queue {queue} allows at most "
            f"{format_bytes(policy.max_memory)}",
            where=f"{where}: resources.memory",
        )
    if res.memory > node_memory:
        raise UserError(
            f"asks for {format_bytes(res.memory)} of memory; a node here has {format_bytes(node_memory)}",
            where=f"{where}: resources.memory",
        )
    return spec


def _with_defaults(spec: JobSpec, policy: QueuePolicy) -> JobSpec:
    given = spec.resources.model_fields_set if "resources" in spec.model_fields_set else set()
    update: dict[str, Any] = {}
    for kind, default, most in (
        ("cpus", policy.default_cpus, policy.max_cpus),
        ("memory", policy.default_memory, policy.max_memory),
    ):
        if kind in given:
            continue
        if default is not None:
            update[kind] = default
        elif most is not None and getattr(spec.resources, kind) > most:
            update[kind] = most  # the spec's own default would break the queue's maximum
    if not update:
        return spec
    resources = spec.resources.model_copy(update=update)
    # model_copy keeps which fields were set: the defaults count as given from here on
    resources.model_fields_set.update(update)
    return spec.model_copy(update={"resources": resources})


_FLAGS = ("allow_root", "allow_inherit_env")
_AMOUNTS = ("max_cpus", "max_memory", "default_cpus", "default_memory")


def check_queue_policy(
    values: dict[str, Any], capacity: tuple[float, int], current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validated policy columns to store: flags are bools; amounts are positive numbers, or 0 (or
    None) to clear one; a default never exceeds its maximum (as stored in `current`, or as changed
    now) or the node."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in _FLAGS:
            if not isinstance(value, bool):
                raise UserError("must be true or false", where=key)
            out[key] = value
        elif key in _AMOUNTS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UserError("must be a positive number, or 0 to clear it", where=key)
            if key.endswith("memory") and value and value < MIN_MEMORY:
                raise UserError("must be at least 1M, or 0 to clear it", where=key)
            out[key] = (int(value) if key.endswith("memory") else float(value)) if value else None
        else:
            raise UserError("unknown queue setting", where=key)
    node = {"cpus": capacity[0], "memory": capacity[1]}
    merged = {k: (current or {}).get(k) for k in _AMOUNTS} | {k: v for k, v in out.items() if k in _AMOUNTS}
    for kind in ("cpus", "memory"):
        default, most = merged[f"default_{kind}"], merged[f"max_{kind}"]
        if default is not None and (default > node[kind] or (most is not None and default > most)):
            shown = format_bytes(int(node[kind])) if kind == "memory" else f"{node[kind]:g}"
            raise UserError(
                f"the default {kind} must fit the queue's maximum and a node ({shown} here)",
                where=f"default_{kind}",
            )
    return out
