"""cli/direct.py: `freight run`'s plain command lines parsed without typer give the command function
exactly what typer gives it; anything else goes to typer."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest
import typer

from freight.cli.direct import call
from freight.cli.jobs import run
from freight.cli.registry import COMMANDS

LINES = [
    ["--", "true"],
    ["true"],
    ["echo", "--cpus", "1", "--", "x"],  # from the first argument on, all the job's
    ["--cpus", "0.5", "-m", "64M", "--memory=128M", "--", "sh", "-c", "exit 3"],
    ["-e", "A=1", "--env", "B=2", "--label=k=v", "-l", "x=y", "--retry-on", "oom", "--", "true"],
    ["--retries", "2", "--priority=-3", "-q", "batch", "-n", "nightly", "--timeout", "10s", "true"],
    ["--shell", "--cwd", "/tmp", "--", "echo $HOME"],
    ["--file", "job.yaml"],
    ["-d", "nightly:2"],
    ["--image", "alpine", "--network", "none", "--mount", "/a:/b:ro", "--", "ls"],
    ["--", "--cpus", "1"],
    ["-", "x"],
    [],
]


def by_typer(args: list[str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    @functools.wraps(run)
    def record(**params: Any) -> None:
        seen.update(params)

    app = typer.Typer(add_completion=False)
    app.command(context_settings={"allow_interspersed_args": False})(record)
    typer.main.get_command(app).main(args, standalone_mode=False)
    return seen


def directly(args: list[str]) -> dict[str, Any] | None:
    found = call(COMMANDS["run"].target, args)
    if found is None:
        return None
    func, params = found
    assert func is run
    defaults = {name: p.default for name, p in inspect.signature(run).parameters.items()}
    return defaults | params


@pytest.mark.parametrize("args", LINES, ids=" ".join)
def test_a_plain_command_line_gives_run_what_typer_gives_it(args: list[str]) -> None:
    assert COMMANDS["run"].direct
    assert directly(args) == by_typer(args)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--bogus", "--", "true"],
        ["--retries", "x", "--", "true"],
        ["--cpus"],
        ["-m64M", "--", "true"],
        ["--shell=yes", "--", "true"],
        ["--no-shell", "--", "true"],
    ],
    ids=" ".join,
)
def test_anything_else_goes_to_typer(args: list[str]) -> None:
    assert directly(args) is None
