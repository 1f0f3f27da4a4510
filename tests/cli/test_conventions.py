"""CLI conventions: every option says what it is for, nouns list with `ls` (and bare), listings
take --json and have headers, counts agree with their nouns, a misspelt job-spec field gets a
"did you mean"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from freight.cli.main import app
from freight.errors import UserError
from freight.jobs.spec import parse_spec
from freight.units import plural


def walk(command: object, path: tuple[str, ...] = ("freight",)) -> list[tuple[tuple[str, ...], object]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += walk(sub, (*path, name))
    return found


def test_every_option_has_help_text() -> None:
    missing = [
        f"{' '.join(path)} {param.opts[0]}"  # type: ignore[attr-defined]
        for path, command in walk(typer.main.get_command(app))
        for param in command.params  # type: ignore[attr-defined]
        if param.param_type_name == "option" and param.name != "help" and not param.help
    ]
    assert missing == []


def test_every_listing_takes_json() -> None:
    listings = [
        path
        for path, command in walk(typer.main.get_command(app))
        if path[-1] in ("ls", "runs", "releases", "events", "queues", "definitions")
    ]
    assert len(listings) >= 8
    for path in listings:
        command = dict(walk(typer.main.get_command(app)))[path]
        assert "--json" in [o for p in command.params for o in p.opts], path  # type: ignore[attr-defined]


@pytest.fixture
def runner(settings: object, monkeypatch: pytest.MonkeyPatch, home: Path) -> CliRunner:
    monkeypatch.setenv("FREIGHT_HOME", str(home))
    monkeypatch.delenv("FREIGHT_URL", raising=False)
    return CliRunner()


def test_queues_and_definitions_list_bare_and_with_ls(runner: CliRunner, tmp_path: Path) -> None:
    spec = tmp_path / "nightly.yaml"
    spec.write_text("command: [echo, hi]\n")
    assert runner.invoke(app, ["definitions", "register", "nightly", str(spec)]).output == "nightly:1\n"
    assert runner.invoke(app, ["queues", "set", "etl", "--weight", "2"]).exit_code == 0
    for noun, first in (("queues", "QUEUE"), ("definitions", "DEFINITION")):
        bare, ls = runner.invoke(app, [noun]), runner.invoke(app, [noun, "ls"])
        assert bare.exit_code == 0 and ls.exit_code == 0, bare.output + ls.output
        assert bare.output == ls.output
        assert ls.output.split()[0] == first
        assert json.loads(runner.invoke(app, [noun, "ls", "--json"]).output)
    listed = runner.invoke(app, ["definitions", "ls"]).output
    assert "nightly" in listed and "echo hi" in listed and "{" not in listed  # not a Python dict


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ({"comand": ["echo"]}, "unknown field `comand` (did you mean `command`?)"),
        (
            {"command": ["echo"], "resources": {"cpu": 2}},
            "resources.cpu: unknown field `cpu` (did you mean `cpus`?)",
        ),
        ({"command": ["echo"], "retry": {"max_attemps": 2}}, "did you mean `max_attempts`?"),
        ({"command": ["echo"], "depends_on": [{"jobb": "x"}]}, "did you mean `job`?"),
        ({"command": ["echo"], "zzzz": 1}, "unknown field `zzzz` (check its spelling)"),
    ],
)
def test_a_misspelt_job_spec_field_gets_did_you_mean(spec: dict[str, object], said: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_spec(spec)
    assert said in str(caught.value)


def test_a_misspelt_field_in_a_job_file_names_its_line(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("name: x\ncomand: [echo]\n")
    result = runner.invoke(app, ["submit", "-f", str(path)])  # in process: main() makes it exit 2
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == f"{path}:2: comand: unknown field `comand` (did you mean `command`?)"


def test_counts_agree_with_their_nouns() -> None:
    assert [plural(1, "cpu"), plural(2, "cpu"), plural(0.5, "cpu"), plural(1, "attempt")] == [
        "1 cpu",
        "2 cpus",
        "0.5 cpus",
        "1 attempt",
    ]


def test_submit_runs_the_job_where_submit_was_run(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "project"
    here.mkdir()
    monkeypatch.chdir(here)  # `freight submit -- ./nightly.sh` means the nightly.sh here
    job_id = runner.invoke(app, ["submit", "--", "./nightly.sh"]).output.splitlines()[0]
    shown = json.loads(runner.invoke(app, ["jobs", "show", job_id, "--json"]).output)
    assert shown["spec"]["cwd"] == str(here)
    other = runner.invoke(app, ["submit", "--cwd", "/tmp", "--", "./x.sh"]).output.splitlines()[0]
    assert json.loads(runner.invoke(app, ["jobs", "show", other, "--json"]).output)["spec"]["cwd"] == "/tmp"
