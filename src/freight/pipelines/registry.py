"""The pipelines a server runs on their schedule: rows of `pipeline_schedules`.

`freight pipeline schedule FILE` validates the file and stores it here (its spec, its path and the
folder its relative paths start from); the server's pipeline scheduler reads the table on every tick,
so registering, pausing and resuming need no restart and no running server. The file is read again on
every tick when it is still there (an edit applies to the next run), else the stored spec is used.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from freight.db.schema import schedules
from freight.errors import NotFoundError, UserError


@dataclass(frozen=True)
class Registered:
    pipeline: str
    spec: dict[str, Any]
    spec_path: str | None
    base_dir: str
    config_path: str | None
    paused: bool
    created_at: float
    updated_at: float


class ScheduleRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine  # migrated by RunStore, which every caller opens first

    def register(
        self,
        pipeline: str,
        spec: dict[str, Any],
        *,
        spec_path: str | None,
        base_dir: str,
        config_path: str | None,
        now: float | None = None,
    ) -> bool:
        """Store (or replace) the pipeline's schedule; a paused one stays paused. True when new."""
        if not spec.get("schedule"):
            raise UserError(
                f"pipeline {pipeline} has no `schedule`",
                where=spec_path,
                hint='add e.g. schedule: {cron: "0 3 * * *", start: 2026-01-01}',
            )
        now = time.time() if now is None else now
        values = {
            "spec_json": json.dumps(spec, default=str),
            "spec_path": spec_path,
            "base_dir": base_dir,
            "config_path": config_path,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            found = conn.execute(select(schedules.c.pipeline).where(schedules.c.pipeline == pipeline)).first()
            if found is None:
                conn.execute(
                    insert(schedules).values(pipeline=pipeline, paused=False, created_at=now, **values)
                )
                return True
            conn.execute(update(schedules).where(schedules.c.pipeline == pipeline).values(**values))
            return False

    def list(self) -> list[Registered]:
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(select(schedules).order_by(schedules.c.pipeline))]

    def get(self, pipeline: str) -> Registered:
        with self.engine.connect() as conn:
            row = conn.execute(select(schedules).where(schedules.c.pipeline == pipeline)).first()
        if row is None:
            raise NotFoundError(
                f"pipeline {pipeline!r} is not scheduled",
                hint="see `freight pipeline schedules`; register one with `freight pipeline schedule FILE`",
            )
        return _row(row)

    def set_paused(self, pipeline: str, paused: bool) -> None:
        self.get(pipeline)
        with self.engine.begin() as conn:
            conn.execute(
                update(schedules)
                .where(schedules.c.pipeline == pipeline)
                .values(paused=paused, updated_at=time.time())
            )

    def remove(self, pipeline: str) -> None:
        self.get(pipeline)
        with self.engine.begin() as conn:
            conn.execute(delete(schedules).where(schedules.c.pipeline == pipeline))


def _row(row: Any) -> Registered:
    return Registered(
        pipeline=row.pipeline,
        spec=json.loads(row.spec_json),
        spec_path=row.spec_path,
        base_dir=row.base_dir,
        config_path=row.config_path,
        paused=bool(row.paused),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def describe(store: Any, entry: Registered, now: Any = None) -> dict[str, Any]:
    """What `freight pipeline schedules` and GET /pipelines/schedules show of one schedule."""
    import datetime as dt

    from freight.pipelines.schedule import Schedule, next_due

    rule = sched = None
    raw = entry.spec.get("schedule")
    if raw:
        sched = Schedule.model_validate(raw)
        rule = f"{sched.cron or sched.frequency} {sched.timezone}"
    nxt = next_due(sched, now or dt.datetime.now(dt.UTC)) if sched else None
    runs = store.by_interval(entry.pipeline)
    last = runs[max(runs)] if runs else None
    return {
        "pipeline": entry.pipeline,
        "rule": rule,
        "paused": entry.paused,
        "next_due": nxt.isoformat() if nxt else None,
        "last_run": last.id if last else None,
        "last_interval": last.interval_start_iso() if last else None,
        "last_state": last.state if last else None,
        "spec_path": entry.spec_path,
    }


def registered_pipeline(entry: Registered) -> Any:
    """The pipeline to run: its file as it is now when it is still there, else the stored spec."""
    from freight.pipelines.loader import Locator, load_pipeline, validate

    if entry.spec_path and Path(entry.spec_path).is_file():
        return load_pipeline(entry.spec_path)
    return validate(entry.spec, Locator(f"schedule {entry.pipeline}"), Path(entry.base_dir))
