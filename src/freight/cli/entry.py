"""The `freight` console entry: routes `freight build` to its fast path first, then the full CLI.

A fully cached build answers in the time of Python's start-up plus the work (see
`freight.builds.fastpath`); everything else, and every build the fast path does not answer exactly,
goes to `freight.cli.main`, which imports typer and the rest only then.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["build"]:
        from freight.builds.fastpath import try_build

        code = try_build(argv[1:])
        if code is not None:
            sys.exit(code)
    from freight.cli.main import main as full_main

    full_main()


if __name__ == "__main__":
    main()
