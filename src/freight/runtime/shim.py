"""Find the shim to spawn per attempt: the C one (compiled once per source version) or the Python one.

The C shim is built on first use with `cc -O2 [-static]` (or `$CC`) into
`<FREIGHT_HOME>/bin/freight-shim-<sha of shim.c>`: compiled to a temp name and renamed, so concurrent
first uses never see half a binary, and a changed shim.c gets a new name instead of a stale binary.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from freight.runtime import pyshim
from freight.runtime.notices import warn_once


@dataclass(frozen=True)
class Shim:
    """How to spawn a shim: `executable` gets `argv_prefix` + the shim protocol's arguments."""

    kind: str  # "c" or "python"
    executable: str
    argv_prefix: tuple[str, ...]


def python_shim() -> Shim:
    # -I: the job's PYTHON* variables must not reach the shim; -S: no site, so it starts faster
    return Shim("python", sys.executable, (sys.executable, "-I", "-S", pyshim.__file__))


def find_shim(home: Path, compiler: str | None = None) -> Shim:
    """The C shim, compiled if needed; the Python shim (with one warning) when it cannot be built."""
    source = resources.files("freight.runtime").joinpath("shim.c").read_bytes()
    binary = home / "bin" / f"freight-shim-{hashlib.sha256(source).hexdigest()[:16]}"
    if not os.access(binary, os.X_OK):
        problem = _compile(source, binary, compiler or os.environ.get("CC") or "cc")
        if problem:
            warn_once(
                "python-shim",
                f"freight: cannot build the C shim ({problem}); using the Python shim, which costs a "
                "Python start (~80 ms) per attempt. Install a C compiler (e.g. apt-get install gcc).",
            )
            return python_shim()
    return Shim("c", str(binary), ("freight-shim",))


def _compile(source: bytes, binary: Path, compiler: str) -> str | None:
    """Build `binary`; None on success, else why not."""
    temp = binary.parent / f".{binary.name}.{os.getpid()}"  # per process: concurrent first uses
    source_path, temp_binary = Path(f"{temp}.c"), Path(f"{temp}.tmp")
    try:
        binary.parent.mkdir(parents=True, exist_ok=True)
        source_path.write_bytes(source)
        # static when libc.a is there: no dynamic loader run per attempt (~0.3 ms here)
        for flags in (["-O2", "-static"], ["-O2"]):
            command = [*shlex.split(compiler), *flags, "-o", str(temp_binary), str(source_path)]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode == 0:
                os.rename(temp_binary, binary)
                return None
        first_line = (result.stderr.strip().splitlines() or ["no output"])[0]
        return f"{compiler} failed: {first_line}"
    except OSError as exc:
        return f"{exc.filename or compiler}: {exc.strerror}"
    finally:
        source_path.unlink(missing_ok=True)
        temp_binary.unlink(missing_ok=True)
