"""What happened to each task in a run, and the run summary built from it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from freight.units import format_duration

#: built: ran as a job; cached: restored; noop: no script; failed; skipped: not started; cancelled.
STATUSES = ("built", "cached", "noop", "failed", "skipped", "cancelled")


@dataclass
class TaskResult:
    task: str
    package: str
    hash: str
    status: str
    cache: str | None = None
    #: Seconds the task took this time: the job's run time, or the restore time for a hit.
    duration: float = 0.0
    #: Seconds a hit saved: the original build's duration.
    saved: float = 0.0
    #: Offsets from the start of the run.
    start: float = 0.0
    end: float = 0.0
    job_id: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    outputs: int = 0
    log: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status in ("built", "cached", "noop")

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "package": self.package,
            "hash": self.hash,
            "status": self.status,
            "cache": self.cache,
            "duration": round(self.duration, 4),
            "saved": round(self.saved, 4),
            "start": round(self.start, 4),
            "end": round(self.end, 4),
            "job_id": self.job_id,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "outputs": self.outputs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskResult:
        """The inverse of to_dict() (durations as rounded there); a `log` text is kept when present."""
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "log"}
        return cls(**fields, log=str(data.get("log") or "").encode())


@dataclass
class RunSummary:
    id: str
    workspace: str
    commit: str | None
    started_at: float
    ended_at: float
    results: dict[str, TaskResult]
    critical_path: list[str]
    critical_seconds: float
    deps: dict[str, Any] | None = None
    releases: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    trigger: str = "cli"
    #: task -> the tasks it waited for (drawn as the build page's task graph)
    graph: dict[str, list[str]] = field(default_factory=dict)
    #: The run was cancelled (Ctrl-C, the API): what had not finished was stopped or not started.
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not self.cancelled and all(r.ok for r in self.results.values())

    @property
    def status(self) -> str:
        """ok | failed | cancelled"""
        return "cancelled" if self.cancelled else "ok" if self.ok else "failed"

    def count(self, status: str) -> int:
        return sum(1 for r in self.results.values() if r.status == status)

    def totals(self) -> dict[str, Any]:
        runnable = [r for r in self.results.values() if r.status != "noop"]
        built = [r for r in runnable if r.status in ("built", "failed")]
        task_seconds = sum(r.duration for r in built)
        wall = self.ended_at - self.started_at
        hits = self.count("cached")
        return {
            "tasks": len(self.results),
            **{s: self.count(s) for s in STATUSES},
            "wall_seconds": round(wall, 4),
            "task_seconds": round(task_seconds, 4),
            "saved_seconds": round(sum(r.saved for r in runnable if r.status == "cached"), 4),
            "cache_hit_rate": round(hits / len(runnable), 4) if runnable else None,
            "parallelism": round(task_seconds / wall, 3) if wall > 0 else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workspace": self.workspace,
            "commit": self.commit,
            "trigger": self.trigger,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "totals": self.totals(),
            "critical_path": {"tasks": self.critical_path, "seconds": round(self.critical_seconds, 4)},
            "deps": self.deps,
            "releases": self.releases,
            "warnings": self.warnings,
            "tasks": [r.to_dict() for r in self.results.values()],
            "graph": self.graph,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        """The inverse of to_dict(), for a summary that came over the API (task logs are not in it)."""
        results = [TaskResult.from_dict(t) for t in data["tasks"]]
        return cls(
            id=data["id"],
            workspace=data["workspace"],
            commit=data.get("commit"),
            started_at=float(data["started_at"]),
            ended_at=float(data["ended_at"]),
            results={r.task: r for r in results},
            critical_path=list(data["critical_path"]["tasks"]),
            critical_seconds=float(data["critical_path"]["seconds"]),
            deps=data.get("deps"),
            releases=list(data.get("releases") or []),
            warnings=list(data.get("warnings") or []),
            graph={k: list(v) for k, v in (data.get("graph") or {}).items()},
            trigger=data.get("trigger", "cli"),
            cancelled=data.get("status") == "cancelled",
        )

    def table(self) -> str:
        """A plain-text table, for terminals and logs."""
        rows = [("TASK", "STATUS", "CACHE", "TIME", "SAVED", "HASH")]
        for r in sorted(self.results.values(), key=lambda r: (r.start, r.task)):
            rows.append(
                (
                    r.task,
                    r.status + (f" ({r.reason})" if r.reason and not r.ok else ""),
                    r.cache or "-",
                    format_duration(r.duration) if r.status != "noop" else "-",
                    format_duration(r.saved) if r.saved else "-",
                    r.hash[:12],
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        t = self.totals()
        lines.append("")
        lines.append(
            f"{t['tasks']} tasks: {t['built']} built, {t['cached']} cached, {t['failed']} failed, "
            f"{t['skipped'] + t['cancelled']} not run, {t['noop']} without a script"
        )
        lines.append(
            f"wall {format_duration(t['wall_seconds'])}, task time {format_duration(t['task_seconds'])}, "
            f"saved by cache {format_duration(t['saved_seconds'])}"
        )
        if self.critical_path:
            lines.append(
                f"critical path ({format_duration(self.critical_seconds)}): "
                + " -> ".join(self.critical_path)
            )
        if self.deps:
            status = self.deps.get("status")
            saved = self.deps.get("saved_seconds")
            extra = f", saved {format_duration(saved)}" if status == "restored" and saved else ""
            lines.append(f"dependencies: {status} in {format_duration(self.deps.get('seconds'))}{extra}")
        for warning in self.warnings:
            lines.append(f"warning: {warning}")
        if self.cancelled:
            lines.append("the build was cancelled")
        return "\n".join(lines)


def longest_chain(
    order: Sequence[str], deps: Mapping[str, Sequence[str]], durations: Mapping[str, float]
) -> tuple[list[str], float]:
    """The chain of dependent tasks with the largest total duration (`order`: dependencies first)."""
    best: dict[str, tuple[float, str | None]] = {}
    for tid in order:
        own = durations.get(tid, 0.0)
        prev = max(((best[d][0], d) for d in deps[tid]), default=(0.0, None))
        best[tid] = (prev[0] + own, prev[1])
    if not best:
        return [], 0.0
    end = max(best, key=lambda t: (best[t][0], t))
    total = best[end][0]
    chain: list[str] = []
    cursor: str | None = end
    while cursor is not None:
        chain.append(cursor)
        cursor = best[cursor][1]
    return chain[::-1], total


def critical_path(
    order: Sequence[str], deps: Mapping[str, Sequence[str]], results: dict[str, TaskResult]
) -> tuple[list[str], float]:
    durations = {tid: r.duration for tid, r in results.items() if r.status != "noop"}
    chain, seconds = longest_chain(order, deps, durations)
    return [t for t in chain if results.get(t) and results[t].status != "noop"], seconds
