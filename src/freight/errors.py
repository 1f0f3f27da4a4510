"""The error taxonomy.

`UserError` is bad input: it says where (file:line or a field path) and what to do. The CLI prints it as
one line and exits 2; the API answers 4xx. Bad input never changes state.
"""

from __future__ import annotations

from collections.abc import Iterable


class FreightError(Exception):
    """Root of every error freight raises on purpose."""


class UserError(FreightError):
    """Bad input: a spec, a file, a flag or an API payload."""

    status_code = 400

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class NotFoundError(UserError):
    """A named thing (job, definition, queue, run) does not exist."""

    status_code = 404


class ConflictError(UserError):
    """The request is well formed but clashes with the current state (e.g. cancel a finished job)."""

    status_code = 409


class PermissionDeniedError(UserError):
    """The caller may not do this (token scope)."""

    status_code = 403


class TransientError(FreightError):
    """May succeed if retried (a lost connection, a busy store)."""


class TerminalError(FreightError):
    """Will not succeed if retried."""


def disk_full(exc: BaseException) -> bool:
    """`exc` says a disk (or a quota) is full: ENOSPC or EDQUOT, anywhere in its chain."""
    import errno

    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def suggest(word: str, choices: Iterable[str], fallback: str) -> str:
    """The hint for a misspelt name: "did you mean `cpus`?" when one of `choices` is close, else
    `fallback` (e.g. "use one of ..."). One helper for job specs, pipelines and the CLI."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else fallback
