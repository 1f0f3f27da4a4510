"""The root `freight` group: a typer app whose commands are the registry's (cli/registry.py), each
imported only when it is looked up, so a command pays for its own imports and nobody else's."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer
from typer import _click as click
from typer.core import TyperGroup

from freight.cli.registry import ABOUT, COMMANDS, Entry, root_help


class LazyCommands(MutableMapping[str, click.Command]):
    """The registry as click's `commands` mapping: names without imports, a command on lookup."""

    def __init__(self) -> None:
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            self._loaded[name] = load(name, COMMANDS[name])  # KeyError: no such command
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        raise TypeError(f"add {name!r} to freight/cli/registry.py, not to the group")

    def __delitem__(self, name: str) -> None:
        raise TypeError("the registry is fixed")

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


def load(name: str, entry: Entry) -> click.Command:
    """The click command of one registry entry: its module imported now."""
    module_name, _, attr = entry.target.partition(":")
    target: Any = getattr(importlib.import_module(module_name), attr)
    if isinstance(target, typer.Typer):
        # plain help, as the root's: typer's rich help costs ~60 ms of imports (see `app` below)
        target.rich_markup_mode = None
        command = typer.main.get_command(target)
    else:  # a function: one command, built the way typer builds any other
        single = typer.Typer(rich_markup_mode=None, add_completion=False)
        settings = {"allow_interspersed_args": False} if entry.passthrough else {}
        single.command(name, context_settings=settings)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands()

    def get_help(self, ctx: click.Context) -> str:
        return root_help().rstrip("\n")  # the one rendering of the root help (also without typer)


app = typer.Typer(
    name="freight",
    cls=LazyGroup,
    help=ABOUT,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # plain (click) help, for every command below: typer's rich help imports rich.markdown,
    # markdown-it and pygments, ~60 ms of every `--help` (a bare typer app's rich --help takes
    # longer here than freight's whole budget; see docs/benchmarks.md)
    rich_markup_mode=None,
)


@app.callback()
def _before_any_command() -> None:
    """Runs before every command, not for --help (which answers before it): what only a command
    needs, such as the logging setup (the logging module alone costs ~20 ms to import)."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="freight: %(message)s")
