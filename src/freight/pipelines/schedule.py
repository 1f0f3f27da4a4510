"""When a pipeline runs: its `schedule:` and the data intervals it cuts time into (pure; no clock reads).

A schedule is a cron expression (or Dataduct's `frequency` + `load_time`, turned into one) read in a
timezone from `start` on. Consecutive cron ticks bound the data intervals, as in Airflow: the run of
[a, b) is due once `now >= b` (the data of the interval is complete). Every function here takes `now`
from its caller, so the tests never wait for a clock.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from freight.unitfields import Seconds

#: Dataduct's frequencies, and N-hours / N-days
FREQUENCY = re.compile(r"^(one-time|hourly|daily|weekly|(\d+)-(hours|days))$")
LOAD_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
#: A backfill or a grid never walks more intervals than this (a cron of every minute over a year).
MAX_INTERVALS = 10_000


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str | None = Field(default=None, description='A cron expression, e.g. "0 3 * * *"')
    frequency: str | None = Field(
        default=None, description="Dataduct's: one-time, hourly, daily, weekly, N-hours, N-days"
    )
    load_time: str | None = Field(default=None, description="HH:MM the run starts at (with `frequency`)")
    timezone: str = Field(default="UTC", description="IANA name, e.g. Europe/Paris")
    start: dt.datetime | dt.date = Field(description="The first interval starts at the first tick from here")
    end: dt.datetime | dt.date | None = Field(default=None, description="No interval starts at or after it")
    catchup: bool = Field(default=True, description="Run every missed interval (false: only the latest)")
    max_active_runs: int = Field(default=1, ge=1, le=64)
    late_after: Seconds | None = Field(
        default=None, description="A run not done this long after its interval ended is late (on_late)"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name, e.g. Europe/Paris)") from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from croniter import croniter

        if value is not None and not croniter.is_valid(value):
            raise ValueError(f'{value!r} is not a cron expression (e.g. "0 3 * * *")')
        return value

    @field_validator("frequency")
    @classmethod
    def _frequency(cls, value: str | None) -> str | None:
        if value is not None and not FREQUENCY.match(value):
            raise ValueError(
                f"unknown frequency {value!r} (one-time, hourly, daily, weekly, N-hours, N-days)"
            )
        return value

    @field_validator("load_time")
    @classmethod
    def _load_time(cls, value: str | None) -> str | None:
        m = LOAD_TIME.match(value or "00:00")
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise ValueError(f"load_time {value!r} is not HH:MM")
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> Schedule:
        if (self.cron is None) == (self.frequency is None):
            raise ValueError("give exactly one of `cron` or `frequency`")
        return self

    # --- derived ---------------------------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def one_time(self) -> bool:
        return self.frequency == "one-time"

    def cron_expr(self) -> str:
        """The cron this schedule ticks on (Dataduct's frequency turned into one)."""
        if self.cron is not None:
            return self.cron
        hour, minute = (int(x) for x in (self.load_time or "00:00").split(":"))
        freq = self.frequency or "daily"
        m = FREQUENCY.match(freq)
        assert m is not None
        if freq == "hourly":
            return f"{minute} * * * *"
        if freq == "weekly":
            return f"{minute} {hour} * * {self.start_at().isoweekday() % 7}"
        if m.group(2):
            n, unit = int(m.group(2)), m.group(3)
            return f"{minute} */{n} * * *" if unit == "hours" else f"{minute} {hour} */{n} * *"
        return f"{minute} {hour} * * *"  # daily, and one-time (only its first interval runs)

    def start_at(self) -> dt.datetime:
        return _aware(self.start, self.zone)

    def end_at(self) -> dt.datetime | None:
        return None if self.end is None else _aware(self.end, self.zone)


@dataclass(frozen=True, order=True)
class Interval:
    """A run's data interval [start, end), as aware datetimes in the schedule's timezone."""

    start: dt.datetime
    end: dt.datetime

    @property
    def ds(self) -> str:
        return self.start.strftime("%Y-%m-%d")

    def key(self) -> float:
        """How the store knows the interval: its start as a UNIX timestamp."""
        return self.start.timestamp()

    def context(self) -> dict[str, Any]:
        """The values steps see as `{{ interval_start }}`, `{{ ds }}` … (ISO 8601 text)."""
        return {
            "interval_start": self.start.isoformat(),
            "interval_end": self.end.isoformat(),
            "ds": self.ds,
            "ds_nodash": self.ds.replace("-", ""),
        }


def intervals(schedule: Schedule, since: dt.datetime, until: dt.datetime) -> Iterator[Interval]:
    """Intervals that start in [since, until) and fall inside the schedule's start/end, in order."""
    from croniter import croniter

    zone = schedule.zone
    first = max(_aware(since, zone), schedule.start_at())
    end = schedule.end_at()
    # the tick at `first` itself counts: croniter's get_next is strictly after its base
    it = croniter(schedule.cron_expr(), first - dt.timedelta(seconds=1))
    tick: dt.datetime = it.get_next(dt.datetime)
    count = 0
    while tick < until and (end is None or tick < end) and count < MAX_INTERVALS:
        nxt: dt.datetime = it.get_next(dt.datetime)
        yield Interval(tick, nxt)
        count += 1
        if schedule.one_time:
            return
        tick = nxt


def due(schedule: Schedule, now: dt.datetime) -> list[Interval]:
    """Every interval of the schedule that has ended by `now` (the runs it should have had)."""
    return [i for i in intervals(schedule, schedule.start_at(), now) if i.end <= now]


def next_due(schedule: Schedule, now: dt.datetime) -> dt.datetime | None:
    """When the next interval not yet due becomes due (its end), or None when the schedule is over.
    Starts from the latest tick at or before `now`, not from `start`: a cheap question at any age."""
    from croniter import croniter

    since = schedule.start_at()
    if not schedule.one_time:
        prev: dt.datetime = croniter(schedule.cron_expr(), now.astimezone(schedule.zone)).get_prev(
            dt.datetime
        )
        since = max(since, prev)
    for interval in intervals(schedule, since, now + dt.timedelta(days=400)):
        if interval.end > now:
            return interval.end
    return None


def due_after(schedule: Schedule, known: list[Interval], now: dt.datetime) -> list[Interval]:
    """`due(schedule, now)`, given `known`, the due intervals of an earlier `now` (oldest first): only
    the intervals since the last known one are cut (croniter costs ~0.1-1 ms a tick)."""
    if not known:
        return due(schedule, now)
    more = [i for i in intervals(schedule, known[-1].end, now) if i.end <= now and i.start >= known[-1].end]
    return [*known, *more]


def to_run(
    schedule: Schedule, now: dt.datetime, done: set[float], *, found: list[Interval] | None = None
) -> list[Interval]:
    """The due intervals without a run yet, oldest first; without catch-up only the latest due one
    (when it has none). `found`: the due intervals, when the caller has them."""
    found = due(schedule, now) if found is None else found
    if not schedule.catchup:
        found = found[-1:]
    return [i for i in found if i.key() not in done]


def manual_interval(schedule: Schedule | None, now: dt.datetime) -> Interval:
    """The interval of a run started by hand: the latest complete one of the schedule, else the
    instant now (a pipeline without a schedule)."""
    if schedule is not None:
        found = due(schedule, now)
        if found:
            return found[-1]
        return next(intervals(schedule, schedule.start_at(), schedule.start_at() + dt.timedelta(days=400)))
    now = now.astimezone(dt.UTC)
    return Interval(now, now)


def between(schedule: Schedule, since: dt.datetime, until: dt.datetime) -> list[Interval]:
    """A backfill's intervals: those starting in [since, until]."""
    return list(intervals(schedule, since, until + dt.timedelta(microseconds=1)))


def parse_when(text: str, zone: ZoneInfo, where: str) -> dt.datetime:
    """A date or date-time from the command line (`2026-01-01`, `2026-01-01T03:00`), in `zone`."""
    from freight.errors import UserError

    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"{text!r} is not a date", where=where, hint="write 2026-01-01 or 2026-01-01T03:00"
        ) from None
    return _aware(value, zone)


def from_key(key: float, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(key, zone)


def _aware(value: dt.datetime | dt.date, zone: ZoneInfo) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)
