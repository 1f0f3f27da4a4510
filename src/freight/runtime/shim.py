"""Find the shim to run per attempt: the C one (compiled once per source version) or the Python one.

The C shim (shim.c, with the launcher of launcher.c and their shim.h) is built on first use with
`cc -O2 [-static]` (or `$CC`) into `<FREIGHT_HOME>/bin/freight-shim-<sha of the sources>`: compiled
to a temp name and renamed, so concurrent first uses never see half a binary, and changed sources
get a new name instead of a stale binary.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from freight.runtime import pyshim
from freight.runtime.notices import warn_once

#: the C shim's sources, in the order they are hashed
SOURCES = ("shim.h", "shim.c", "launcher.c")


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
    sources = {name: resources.files("freight.runtime").joinpath(name).read_bytes() for name in SOURCES}
    binary = home / "bin" / f"freight-shim-{source_digest(sources)}"
    if not os.access(binary, os.X_OK):
        problem = _compile(sources, binary, compiler or os.environ.get("CC") or "cc")
        if problem:
            warn_once(
                "python-shim",
                f"freight: cannot build the C shim ({problem}); using the Python shim, which costs a "
                "Python start (~80 ms) per attempt. Install a C compiler (e.g. apt-get install gcc).",
            )
            return python_shim()
    return Shim("c", str(binary), ("freight-shim",))


def source_digest(sources: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(f"{name}\0{len(sources[name])}\0".encode())
        digest.update(sources[name])
    return digest.hexdigest()[:16]


def _compile(sources: dict[str, bytes], binary: Path, compiler: str) -> str | None:
    """Build `binary`; None on success, else why not."""
    temp_binary = binary.parent / f".{binary.name}.{os.getpid()}.tmp"  # per process: concurrent first uses
    try:
        binary.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{binary.name}.", dir=binary.parent) as build:
            for name, text in sources.items():
                Path(build, name).write_bytes(text)
            units = [str(Path(build, name)) for name in SOURCES if name.endswith(".c")]
            # static when libc.a is there: no dynamic loader run per attempt (~0.3 ms here)
            for flags in (["-O2", "-static"], ["-O2"]):
                command = [*shlex.split(compiler), *flags, "-o", str(temp_binary), *units]
                result = subprocess.run(command, capture_output=True, text=True, check=False)
                if result.returncode == 0:
                    os.rename(temp_binary, binary)
                    return None
        first_line = (result.stderr.strip().splitlines() or ["no output"])[0]
        return f"{compiler} failed: {first_line}"
    except OSError as exc:
        return f"{exc.filename or compiler}: {exc.strerror}"
    finally:
        temp_binary.unlink(missing_ok=True)
