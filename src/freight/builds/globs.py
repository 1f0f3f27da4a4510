"""Path globs as the JS tools write them: `*` within one segment, `**` across segments, `!` negates."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regex matching '/'-separated relative paths. `dist/**` matches everything under dist."""
    pattern = pattern.strip().removeprefix("./").rstrip("/")
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif char == "*":
            parts.append("[^/]*")
            i += 1
        elif char == "?":
            parts.append("[^/]")
            i += 1
        elif char == "{":
            end = pattern.find("}", i)
            if end < 0:
                parts.append(re.escape(char))
                i += 1
                continue
            options = pattern[i + 1 : end].split(",")
            parts.append("(?:" + "|".join(re.escape(o) for o in options) + ")")
            i = end + 1
        else:
            parts.append(re.escape(char))
            i += 1
    return re.compile("^" + "".join(parts) + "$")


def matches(path: str, pattern: str) -> bool:
    return bool(compile_glob(pattern).match(path))


def match_any(path: str, patterns: Iterable[str]) -> bool:
    """True when the last matching pattern is a positive one (later `!pattern`s exclude)."""
    result = False
    for pattern in patterns:
        if pattern.startswith("!"):
            if result and matches(path, pattern[1:]):
                result = False
        elif not result and matches(path, pattern):
            result = True
    return result


def static_root(pattern: str) -> str:
    """The folder a glob cannot reach outside of: `dist/**` -> `dist`, `build/*.js` -> `build`."""
    fixed: list[str] = []
    for part in pattern.strip().removeprefix("./").split("/"):
        if any(c in part for c in "*?{["):
            break
        fixed.append(part)
    if len(fixed) == len(pattern.strip().removeprefix("./").rstrip("/").split("/")):
        # A plain path names a file or folder itself; its root is that path.
        return "/".join(fixed).rstrip("/")
    return "/".join(fixed)
