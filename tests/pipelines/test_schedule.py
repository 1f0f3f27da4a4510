"""Intervals of a schedule: pure functions of (schedule, now)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from freight.errors import UserError
from freight.pipelines.schedule import Schedule, between, due, manual_interval, next_due, parse_when, to_run

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_daily_cron_cuts_days_and_runs_each_once_it_has_ended() -> None:
    s = Schedule(cron="0 3 * * *", start=dt.date(2026, 1, 1))
    found = due(s, at("2026-01-04T03:00:00"))
    assert [i.ds for i in found] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert found[0].start == at("2026-01-01T03:00:00") and found[0].end == at("2026-01-02T03:00:00")
    assert found[0].context()["interval_end"] == "2026-01-02T03:00:00+00:00"
    assert next_due(s, at("2026-01-04T03:00:00")) == at("2026-01-05T03:00:00")


def test_catchup_off_runs_only_the_latest_interval_and_known_ones_are_skipped() -> None:
    s = Schedule(cron="0 0 * * *", start=dt.date(2026, 1, 1), catchup=False)
    assert [i.ds for i in to_run(s, at("2026-01-05T01:00:00"), set())] == ["2026-01-04"]
    done = {at("2026-01-04T00:00:00").timestamp()}
    assert to_run(s, at("2026-01-05T01:00:00"), done) == []
    s2 = s.model_copy(update={"catchup": True})
    assert [i.ds for i in to_run(s2, at("2026-01-03T00:00:00"), done)] == ["2026-01-01", "2026-01-02"]


def test_end_and_timezone() -> None:
    s = Schedule(
        cron="0 3 * * *", timezone="Europe/Paris", start=dt.date(2026, 3, 28), end=dt.date(2026, 3, 31)
    )
    found = due(s, at("2026-04-05T00:00:00"))
    assert [i.ds for i in found] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    # the clocks move on the 29th: 03:00 Paris is 02:00 UTC before, 01:00 UTC after
    assert found[0].start.astimezone(UTC).hour == 2 and found[2].start.astimezone(UTC).hour == 1


def test_dataduct_frequencies_become_crons() -> None:
    def cron(**kw: object) -> str:
        return Schedule(start=dt.date(2026, 1, 1), **kw).cron_expr()  # type: ignore[arg-type]

    assert cron(frequency="daily", load_time="01:30") == "30 1 * * *"
    assert cron(frequency="hourly", load_time="00:15") == "15 * * * *"
    assert cron(frequency="6-hours") == "0 */6 * * *"
    assert cron(frequency="weekly", load_time="02:00") == "0 2 * * 4"  # 2026-01-01 is a Thursday
    one = Schedule(frequency="one-time", start=dt.date(2026, 1, 1))
    assert len(due(one, at("2026-02-01T00:00:00"))) == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cron": "0 3 * *"}, "is not a cron expression"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"frequency": "fortnightly"}, "unknown frequency"),
        ({"frequency": "daily", "load_time": "25:00"}, "is not HH:MM"),
        ({}, "exactly one of `cron` or `frequency`"),
    ],
)
def test_bad_schedules_say_what_is_wrong(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Schedule(start=dt.date(2026, 1, 1), **fields)  # type: ignore[arg-type]


def test_backfill_range_and_manual_interval() -> None:
    s = Schedule(cron="0 0 * * *", start=dt.date(2026, 1, 1))
    assert [i.ds for i in between(s, at("2026-01-02T00:00:00"), at("2026-01-04T00:00:00"))] == [
        "2026-01-02",
        "2026-01-03",
        "2026-01-04",
    ]
    assert manual_interval(s, at("2026-01-10T12:00:00")).ds == "2026-01-09"
    assert manual_interval(None, at("2026-01-10T12:00:00")).ds == "2026-01-10"
    with pytest.raises(UserError, match="--from: 'yesterday' is not a date"):
        parse_when("yesterday", s.zone, "--from")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'schedule:\n  cron: "0 3 * *"\n  start: 2026-01-01\n',
            "p.yaml:3: schedule.cron: '0 3 * *' is not a cron expression",
        ),
        (
            "schedule: {cron: '@daily', start: 2026-01-01, tz: UTC}\n",
            "p.yaml:2: schedule.tz: unknown field `tz`",
        ),
        (
            "wait_for: [{pipeline: y, timeout: soon}]\n",
            "p.yaml:2: wait_for[0].timeout: 'soon' is not a duration",
        ),
        ("preconditions: [{type: file-there, path: x}]\n", "p.yaml:2: preconditions[0]"),
        ("notify: {on_failure: [{webhook: 'ftp://x'}]}\n", "must be an http:// or https:// URL"),
    ],
)
def test_bad_scheduling_fields_name_their_line(text: str, message: str) -> None:
    from freight.pipelines.loader import parse_pipeline

    with pytest.raises(UserError) as err:
        parse_pipeline(f"name: p\n{text}steps:\n  - {{name: a, type: sql, sql: SELECT 1}}\n", source="p.yaml")
    assert message in str(err.value)


def test_a_misspelt_template_name_is_one_error_naming_the_field(tmp_path: Path) -> None:
    from freight.config import load_settings
    from freight.pipelines.loader import parse_pipeline
    from freight.pipelines.runner import PipelineRunner
    from freight.pipelines.store import RunStore

    text = "name: p\nsteps:\n  - name: a\n    type: sql\n    sql: SELECT '{{ dss }}'\n"
    pipeline = parse_pipeline(text, source="p.yaml", base_dir=tmp_path)
    settings = load_settings({"FREIGHT_HOME": str(tmp_path)})
    store = RunStore.open(settings.database_url)
    try:
        runner = PipelineRunner(None, store, settings, config_path=tmp_path / "none.toml")  # type: ignore[arg-type]
        with pytest.raises(
            UserError, match=r"p.yaml:5: steps.a.sql: cannot fill in the template: 'dss' is undefined"
        ):
            runner.start(pipeline)
        assert store.list() == []  # nothing recorded
    finally:
        store.close()


@pytest.mark.parametrize("cron", ["0 3 * * *", "15 */6 * * *", "0 2 * * 1"])
def test_incremental_intervals_and_next_due_agree_with_the_full_walk(cron: str) -> None:
    from freight.pipelines.schedule import due_after, intervals

    s = Schedule(cron=cron, timezone="Europe/Paris", start=dt.date(2026, 1, 1))
    t1, t2 = at("2026-03-27T05:00:00"), at("2026-04-02T17:30:00")  # across the clocks' change
    assert due_after(s, due(s, t1), t2) == due(s, t2)
    assert due_after(s, [], t2) == due(s, t2)
    slow = next(i.end for i in intervals(s, s.start_at(), t2 + dt.timedelta(days=30)) if i.end > t2)
    assert next_due(s, t2) == slow
