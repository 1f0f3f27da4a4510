"""The command table (cli/registry.py) is what `freight --help` prints without importing any
command: each entry must import, be what it says, and carry the help its command carries."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest
import typer

from freight.cli.registry import COMMANDS, root_help, short_help


def first_paragraph(target: object) -> str:
    text = str(target.info.help) if isinstance(target, typer.Typer) else inspect.getdoc(target) or ""
    return " ".join(text.split("\n\n")[0].split())


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_entry_imports_and_its_help_line_is_its_commands_own(name: str) -> None:
    entry = COMMANDS[name]
    module, _, attr = entry.target.partition(":")
    target = getattr(importlib.import_module(module), attr)
    assert isinstance(target, typer.Typer) or callable(target)
    assert first_paragraph(target).startswith(entry.help), (name, first_paragraph(target))


def test_the_root_group_runs_every_entry_under_its_name() -> None:
    from freight.cli.app import app

    group = typer.main.get_command(app)
    assert list(group.commands) == list(COMMANDS)  # type: ignore[attr-defined]
    for name in COMMANDS:
        assert group.commands[name].name == name  # type: ignore[attr-defined]


def test_a_commands_module_is_imported_only_when_it_is_looked_up() -> None:
    probe = (
        "import sys, typer\n"
        "from freight.cli.app import app\n"
        "group = typer.main.get_command(app)\n"
        "before = 'freight.cli.jobs' in sys.modules\n"
        "group.commands['jobs']\n"
        "print(before, 'freight.cli.jobs' in sys.modules, 'freight.cli.pipeline' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True", "False"]


def test_root_help_lists_every_command_in_table_order_within_80_columns() -> None:
    lines = root_help().splitlines()
    listed = [line.split()[0] for line in lines[lines.index("Commands:") + 1 :]]
    assert listed == list(COMMANDS)
    assert max(len(line) for line in lines) <= 80


def test_short_help_cuts_at_a_word() -> None:
    assert short_help("one two three", 40) == "one two three"
    assert short_help("alpha beta gamma delta", 15) == "alpha beta..."
