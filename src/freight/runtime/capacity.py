"""What this node offers jobs: cpus and memory (the settings' FREIGHT_CPUS / FREIGHT_MEMORY, or the
machine's own)."""

from __future__ import annotations

import os

from freight.config import Settings
from freight.errors import FreightError


def detect_capacity(settings: Settings) -> tuple[float, int]:
    cpus = settings.cpus or float(len(os.sched_getaffinity(0)))
    if settings.memory:
        return cpus, settings.memory
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return cpus, int(line.split()[1]) * 1024
    raise FreightError("cannot read MemTotal from /proc/meminfo; set FREIGHT_MEMORY")
