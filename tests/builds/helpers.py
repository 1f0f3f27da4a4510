"""Helpers shared by the builds tests."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from freight.builds.depcache import mark_installed
from freight.builds.sample import git_init
from freight.builds.workspace import load_workspace


def slow_workspace(root: Path, apps: tuple[str, ...] = ("a", "b")) -> Path:
    """Apps whose build says `building` and then sleeps a minute: builds to interrupt or cancel."""
    root.mkdir(parents=True)
    (root / "package.json").write_text(
        json.dumps({"name": "slow", "private": True, "workspaces": ["apps/*"]})
    )
    (root / "freight.toml").write_text('[tasks.build]\ncpus = 0.5\nmemory = "64M"\n')
    for app in apps:
        (root / "apps" / app).mkdir(parents=True)
        script = f"mkdir -p dist && echo building-{app} && sleep 60 && touch dist/index.html"
        (root / "apps" / app / "package.json").write_text(
            json.dumps({"name": app, "scripts": {"build": script}})
        )
    git_init(root)
    mark_installed(load_workspace(root))
    return root


def freight_process(args: list[str], env: dict[str, str], **popen: Any) -> subprocess.Popen[str]:
    """The real `freight` binary (as a user runs it), output piped; SIGINT is handled as at a terminal."""
    return subprocess.Popen(
        [sys.executable, "-m", "freight.cli.main", *args],
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_at_a_terminal,
        **popen,
    )


def sigint_as_at_a_terminal() -> None:
    """In the child before exec: Ctrl-C does what it does at a terminal. A test suite started in the
    background of a non-interactive shell inherits SIGINT ignored, and Python keeps it so: the
    process would never see the Ctrl-C a test sends it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Lines:
    """A stream read by a thread, so a test waits for output with a deadline instead of hanging.
    Read in chunks, not lines: a prompt has no newline."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen = ""
        self._chunks: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream.fileno(),), daemon=True).start()

    def _read(self, fd: int) -> None:
        while chunk := os.read(fd, 65536):
            self._chunks.put(chunk.decode(errors="replace"))
        self._chunks.put("")

    def until(self, done: Callable[[str], bool], deadline: float = 60.0) -> str:
        """Read until `done(everything read so far)`; fails when the stream ends or the deadline passes."""
        end = time.monotonic() + deadline
        while not done(self.seen):
            try:
                chunk = self._chunks.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"nothing expected within {deadline}s:\n{self.seen}") from None
            if not chunk:
                raise AssertionError(f"the output ended before what was expected:\n{self.seen}")
            self.seen += chunk
        return self.seen

    def rest(self, deadline: float = 60.0) -> str:
        """Everything until the stream ends."""
        end = time.monotonic() + deadline
        while chunk := self._chunks.get(timeout=max(0.0, end - time.monotonic())):
            self.seen += chunk
        return self.seen
