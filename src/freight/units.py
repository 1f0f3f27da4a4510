"""Human units: "512M" bytes, "1.5" cpus, "10m" durations."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydantic costs ~100 ms to import; the CLI formats units long before any model
    from freight.unitfields import Bytes as Bytes
    from freight.unitfields import Cpus as Cpus
    from freight.unitfields import Seconds as Seconds

_BYTE_SUFFIX = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "ki": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gi": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "ti": 1024**4,
    "tib": 1024**4,
}
_DURATION_SUFFIX = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    return f"a {type(value).__name__}"


def _finite(value: object) -> None:
    """YAML's .inf and .nan (and JSON's Infinity) are floats, but no size, duration or cpu count."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")


def parse_bytes(value: str | int | float) -> int:
    """Parse "512M", "2G", "1.5GiB", "1000kb" or a plain number of bytes.

    Single letters are binary (K = 1024), as in docker and Kubernetes' Ki; "kb"/"mb"/"gb" are decimal.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a size like 512M or 2G, got {_kind(value)}")
    _finite(value)
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return int(value)
    match = _NUMBER_UNIT.match(value)
    if not match or match.group(2).lower() not in _BYTE_SUFFIX:
        raise ValueError(f"{value!r} is not a size; write it like 512M, 2G or 1048576")
    return int(float(match.group(1)) * _BYTE_SUFFIX[match.group(2).lower()])


def parse_duration(value: str | int | float) -> float:
    """Parse "90", "90s", "10m", "1h30m", "250ms" into seconds."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a duration like 30s or 10m, got {_kind(value)}")
    _finite(value)
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    text = value.strip().lower()
    match = _NUMBER_UNIT.match(text)
    if match and match.group(2) in _DURATION_SUFFIX:
        return float(match.group(1)) * _DURATION_SUFFIX[match.group(2)]
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 10m, 1h30m or 250ms")
    return sum(float(n) * _DURATION_SUFFIX[u] for n, u in parts)


def parse_cpus(value: str | int | float) -> float:
    """Parse "1.5", 2 or "500m" (millicpus, as in Kubernetes)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a number of cpus like 0.5 or 2, got {_kind(value)}")
    if isinstance(value, str):
        text = value.strip()
        try:
            cpus = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a number of cpus; write it like 0.5, 2 or 500m") from None
    else:
        cpus = float(value)
    _finite(cpus)
    if cpus <= 0:
        raise ValueError("cpus must be more than 0")
    return cpus


def format_bytes(value: int | None) -> str:
    """Render bytes the way people read them: 512.0M, 1.5G."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}T"


def plural(count: float, word: str, many: str | None = None) -> str:
    """'1 cpu', '2 cpus', '0.5 cpus', '1 attempt': a count and its noun, agreeing."""
    return f"{count:g} {word if count == 1 else many or word + 's'}"


def format_duration(seconds: float | None) -> str:
    """Render seconds as 0.4 ms, 12.5 ms, 850 ms, 12.3s, 4m05s, 2h03m: a short job never reads 0ms."""
    if seconds is None:
        return "-"
    if seconds < 0.1:
        return f"{max(seconds, 0) * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def __getattr__(name: str) -> object:
    """`from freight.units import Bytes` still works: the pydantic field types live in
    freight.unitfields, imported only when a model asks for them."""
    if name in ("Bytes", "Cpus", "Seconds"):
        from freight import unitfields

        return getattr(unitfields, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
