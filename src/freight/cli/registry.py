"""The table of `freight`'s commands: name -> where it lives and its one-line help.

`freight --help` is printed from this table alone (no typer, no command module imported), and the
root group (cli/app.py) imports a command's module only when that command runs or shows its own help.

To add a command or a noun:

1. Write it in a module of its own under freight/cli/ (light at import; see freight/cli/__init__.py):
   a plain function for a command (`def nodes(...) -> None`, its docstring's first line is its help),
   or a `typer.Typer(help=...)` for a noun with subcommands.
2. Add one line below: `"nodes": Entry("freight.cli.nodes:nodes", "List the cluster's nodes ...")`.
   The help line must be the first line of the function's docstring or the Typer's help
   (tests/cli/test_registry.py checks it, and that the target imports). The order here is the order
   of `freight --help`.
3. A command whose arguments run on after `--` (like `run`) passes `passthrough=True`; one whose
   start-up matters and whose options are all plain (cli/direct.py) may pass `direct=True` to have
   its plain command lines parsed without typer.
"""

from __future__ import annotations

from dataclasses import dataclass

ABOUT = "Run any command as an isolated job with hard limits; ETL pipelines and monorepo builds on top."


@dataclass(frozen=True)
class Entry:
    """`target` is "module:attribute": a function (one command) or a typer.Typer (a noun)."""

    target: str
    help: str
    passthrough: bool = False  # options after the first argument belong to the job, not to freight
    direct: bool = False  # plain command lines parsed by cli/direct.py from the function's signature


COMMANDS: dict[str, Entry] = {
    "run": Entry(
        "freight.cli.jobs:run",
        "Run a command as an isolated job, stream its output, and exit with its exit code.",
        passthrough=True,
        direct=True,
    ),
    "submit": Entry("freight.cli.jobs:submit", "Queue a job and print its id.", passthrough=True),
    "up": Entry("freight.cli.up:up", "Serve the API and the web UI and run the scheduler, in one process."),
    "build": Entry(
        "freight.cli.build:build",
        "Build the workspace's apps as isolated jobs, with content-hashed caching.",
    ),
    "deploy": Entry(
        "freight.cli.build:deploy",
        "Make a release of APP current in an environment, atomically (on FREIGHT_URL's server if set).",
    ),
    "rollback": Entry(
        "freight.cli.build:rollback",
        "Re-point APP to the release it replaced, at once (on FREIGHT_URL's server if set).",
    ),
    "releases": Entry(
        "freight.cli.build:releases",
        "List APP's releases (newest first) and where each is current (on FREIGHT_URL's server if set).",
    ),
    "serve": Entry(
        "freight.cli.build:serve",
        "Serve every app's current release (by host name or path prefix) with CDN cache headers.",
    ),
    "jobs": Entry("freight.cli.jobs:jobs_app", "List, inspect, follow, cancel and retry jobs."),
    "nodes": Entry(
        "freight.cli.nodes:nodes",
        "List the nodes jobs run on: id, address, cpus, memory, in use, labels, state.",
    ),
    "queues": Entry(
        "freight.cli.queues:queues_app", "Named queues: priority, fair-share weight, pause and resume."
    ),
    "definitions": Entry("freight.cli.queues:definitions_app", "Named, versioned job templates."),
    "tokens": Entry(
        "freight.cli.tokens:tokens_app", "API tokens for the server, the remote CLI and the web UI."
    ),
    "secrets": Entry("freight.cli.secrets:secrets_app", "Named secrets for jobs (stored encrypted)."),
    "image": Entry("freight.cli.image:image_app", "Build, list, inspect and remove container images."),
    "service": Entry(
        "freight.cli.service:service_app",
        "Long-running services: N healthy replicas of an image, rolled and routed.",
    ),
    "pipeline": Entry(
        "freight.cli.pipeline_schedule:pipeline_app",
        "Declarative ETL pipelines whose steps run as isolated jobs.",
    ),
}


def short_help(text: str, width: int) -> str:
    """The help line cut to `width` at a word, with '...', as click shortens a command's help."""
    if len(text) <= width:
        return text
    cut = text[: width - 3].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "..."


def root_help(width: int = 80) -> str:
    """`freight --help`: the same layout click gives a group, from the table above."""
    names = max(len(name) for name in COMMANDS)
    room = max(width - 2 - names - 2, 20)
    lines = [
        "Usage: freight [OPTIONS] COMMAND [ARGS]...",
        "",
        *_wrap(ABOUT, width, indent="  "),
        "",
        "Options:",
        "  --help  Show this message and exit.",
        "",
        "Commands:",
    ]
    lines += [f"  {name:<{names}}  {short_help(e.help, room)}" for name, e in COMMANDS.items()]
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int, indent: str) -> list[str]:
    lines: list[str] = []
    line = indent
    for word in text.split():
        if line.strip() and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = indent
        line += (" " if line.strip() else "") + word
    return [*lines, line]
