"""Text freight can store and pass on: UTF-8 only.

A JSON body may spell a lone surrogate (`"\\ud800"`), and a command line may carry bytes that are not
UTF-8 (`printf 'caf\\xe9'`; Python holds them as surrogate escapes, U+DC80..U+DCFF). Neither can be
written to the store as UTF-8 text, so they are refused up front, as one line naming the field, instead
of failing deep down (a 500, a traceback, or a key silently turned into U+FFFD). freight does not pass
undecodable bytes through: a job's command, env and files are text, and the store and the API are JSON.
"""

from __future__ import annotations

import json
from typing import Any

from freight.errors import UserError


def bad_text(text: str) -> str | None:
    """What in `text` is not UTF-8 ("the byte 0xe9", "a lone surrogate U+D800"), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = ord(text[exc.start])
        if 0xDC80 <= char <= 0xDCFF:
            return f"the byte {char - 0xDC00:#04x}"
        return f"a lone surrogate U+{char:04X}"
    return None


def find_bad_text(data: Any, where: str = "") -> tuple[str, str] | None:
    """(field path, reason) of the first text in `data` (keys included) that is not UTF-8."""
    try:  # the common case in C: everything encodes, nothing to report
        json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
        return None
    except (UnicodeEncodeError, ValueError, TypeError):
        return _walk(data, where)


def _walk(data: Any, where: str) -> tuple[str, str] | None:
    if isinstance(data, str):
        reason = bad_text(data)
        return (where or "(value)", f"not UTF-8 text: it holds {reason}") if reason else None
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and (reason := bad_text(key)):
                return (where or "(top level)", f"not UTF-8 text: the key {key!r} holds {reason}")
            found = _walk(value, path)
            if found:
                return found
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            found = _walk(value, f"{where}.{index}" if where else str(index))
            if found:
                return found
    return None


def check_text(data: Any, where: str = "", *, source: str | None = None) -> None:
    """Raise one UserError naming the field when any text in `data` is not UTF-8."""
    found = find_bad_text(data, where)
    if found is None:
        return
    field, reason = found
    raise UserError(
        reason,
        where=f"{source}: {field}" if source else field,
        hint="give UTF-8 text; pass binary data in a file or as base64",
    )
