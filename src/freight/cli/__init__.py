"""The `freight` command line (typer + rich). Thin: it parses, calls a JobClient, and prints.

Start-up is part of every command's latency, and `freight --help` builds every command of the tree,
so every module here is light to import. The pattern, for a new command or group:

- At module level import only the standard library, typer, rich, and freight's light modules
  (errors, config, units, jobs.states, cli.common, cli.output). Never SQLAlchemy, Alembic, pydantic
  models (jobs.spec, jobs.client), pyarrow, duckdb, fsspec, FastAPI or uvicorn.
- Import what a command needs inside the command function (`from freight.jobs.service import
  JobService` in its body); names used only in annotations go under `if TYPE_CHECKING:`.
- Mount a group in main.py with `app.add_typer(group_app, name="noun")`. A noun's bare command lists
  (`invoke_without_command=True` and a callback) and `noun ls` lists the same; listings take `--json`;
  every option has `help=`.

tests/cli/test_startup.py fails when `freight --help` (or a command's --help) imports a heavy module;
bench/cli.py measures `freight --help`, `jobs ls` and `run -- true` (docs/benchmarks.md).
"""
