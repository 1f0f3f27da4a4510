"""Say a degraded mode out loud once per process, not once per attempt."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("freight.runtime")
_said: set[str] = set()
_lock = threading.Lock()


def warn_once(key: str, message: str) -> None:
    with _lock:
        if key in _said:
            return
        _said.add(key)
    logger.warning(message)


def forget_warnings() -> None:
    """Let each warning be said again (tests check that it is said exactly once)."""
    with _lock:
        _said.clear()
