"""Entry point: `freight ...`. Bad input prints one line and exits 2, never a traceback.

`freight --help` answers from the command table (cli/registry.py) without importing typer, and
`freight build` first tries its fast path (builds/fastpath.py: a cached build, stdlib only) or, with
FREIGHT_URL, hands the build to that server (builds/handover.py, stdlib only); every
other command line goes to the lazy root group (cli/app.py), which imports only the command it runs.
How to add a command: see cli/registry.py."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import Any, NoReturn

from freight.errors import FreightError, UserError


def main(*, leave: bool = True) -> None:
    """The `freight` console script. After `build` and `run` it ends the process itself (_leave);
    `leave=False` (a test or a program calling it in its own process) raises SystemExit instead,
    as every other command does."""
    if leave and sys.argv[1:2] == ["build"]:
        # a cached build answers without typer, pydantic or SQLAlchemy, and so does one handed to the
        # server at FREIGHT_URL (None: it must run in full)
        if os.environ.get("FREIGHT_URL"):
            from freight.builds.handover import try_remote

            code = try_remote(sys.argv[2:])
        else:
            from freight.builds.fastpath import try_build

            code = try_build(sys.argv[2:])
        if code is not None:
            _leave(code)
        try:
            _main()
        except SystemExit as done:
            _leave(_exit_code(done))
        _leave(0)
    if leave and sys.argv[1:2] == ["run"]:
        # the job has ended and the scheduler of this process stopped: nothing is left to free
        try:
            _main()
        except SystemExit as done:
            _leave(_exit_code(done))
        _leave(0)
    _main()


def _exit_code(done: SystemExit) -> int:
    if done.code is None or isinstance(done.code, int):
        return done.code or 0
    sys.stderr.write(f"{done.code}\n")
    return 1


def _leave(code: int) -> NoReturn:
    """Exit now, without the interpreter's teardown. After a build or a run that opened the job
    platform, freeing every module's objects (SQLAlchemy's, pydantic's, the runtime's) took 0.1-0.6 s
    here (a third of a one-app build, a quarter of `freight run -- true`), and there is nothing left
    to do by then: the stores were closed by their with-blocks. Exit functions still run (weakref
    finalizers, temporary folders, logging), output is flushed, and a thread that is not a daemon
    still running (none is, by then; a guard) gets the ordinary exit that waits for it."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _main() -> None:
    if sys.argv[1:] == ["--help"]:
        from freight.cli.registry import root_help

        sys.stdout.write(root_help())
        sys.exit(0)
    # rich (~10 ms) loads only to say what went wrong: a command that prints no error never needs it
    try:
        _run_app()
    except UserError as exc:
        # escaped: messages name TOML sections such as [tasks.lint], which rich would eat as markup
        _error(str(exc))
        sys.exit(2)
    except FreightError as exc:
        _error(str(exc))
        sys.exit(1)
    except Exception as exc:
        if not _store_unavailable(exc):
            raise
        orig = getattr(exc, "orig", None)
        first = str(orig).strip().splitlines()[0] if orig is not None else "unavailable"
        _error(
            f"the store is busy or unreachable ({first}); nothing was changed, try again shortly",
        )
        sys.exit(1)


def _error(message: str) -> None:
    """`error: MESSAGE` on stderr, the message escaped from rich's markup."""
    from rich.markup import escape

    from freight.cli.output import err_console

    err_console.print(f"[red]error:[/] {escape(message)}", highlight=False)


def _store_unavailable(exc: Exception) -> bool:
    """The store is busy (SQLite locked past its busy timeout) or unreachable. Checked without
    importing SQLAlchemy: a command that never opened the store has not loaded it."""
    errors = sys.modules.get("sqlalchemy.exc")
    if errors is None or not isinstance(exc, errors.OperationalError):
        return False
    from freight.db.engine import store_unavailable

    return store_unavailable(exc)


def _run_app() -> None:
    """The app, with a mistyped command line (an unknown option, a bad value for one) said in one
    line like any other bad input, instead of click's framed usage box."""
    _run_direct()
    import typer

    # typer vendors click; these are the classes it raises (typer re-exports only a few of them)
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    from freight.cli.app import app

    command = typer.main.get_command(app)
    try:
        code = command.main(standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(2)
    except UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _error(exc.format_message() + where)
        sys.exit(2)
    except ClickException as exc:
        _error(exc.format_message())
        sys.exit(exc.exit_code)
    except typer.Abort:  # end of input at a prompt
        sys.stderr.write("freight: aborted\n")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _run_direct() -> None:
    """A command marked `direct` in cli/registry.py, on a plain command line, is called without
    typer (cli/direct.py); returns when typer must parse the command line."""
    from freight.cli.registry import COMMANDS

    entry = COMMANDS.get(sys.argv[1]) if len(sys.argv) > 1 else None
    if entry is None or not entry.direct:
        return
    from freight.cli.direct import call

    found = call(entry.target, sys.argv[2:])
    if found is None:
        return
    import typer

    func, params = found
    try:
        func(**params)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (EOFError, KeyboardInterrupt):  # as click says it (then cli/main.py's typer.Abort)
        sys.stderr.write("\nfreight: aborted\n")
        sys.exit(1)
    sys.exit(0)


def __getattr__(name: str) -> Any:
    """`from freight.cli.main import app` (tests, embedding) still finds the typer app, imported
    only then."""
    if name == "app":
        from freight.cli.app import app

        return app
    raise AttributeError(name)


if __name__ == "__main__":
    main()
