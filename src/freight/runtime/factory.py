"""create_runtime: pick the isolation this machine allows and the shim it can build."""

from __future__ import annotations

from freight.config import Settings
from freight.errors import UserError
from freight.runtime.base import Runtime
from freight.runtime.cgroups import CgroupUnavailable, open_cgroups
from freight.runtime.container import ContainerRuntime
from freight.runtime.isolation import Isolation
from freight.runtime.notices import warn_once
from freight.runtime.process import ShimRuntime
from freight.runtime.rlimits import RlimitIsolation
from freight.runtime.shim import find_shim
from freight.runtime.slots import SlotPool

_WEAKER = (
    "memory is capped as address space (RLIMIT_AS; allocations fail instead of an OOM kill), process "
    "counts only per user (RLIMIT_NPROC), no CPU quota, and processes that call setsid escape kill()"
)


def create_runtime(settings: Settings) -> ShimRuntime:
    """The runtime for this machine (settings.isolation: auto | cgroups | rlimits)."""
    isolation = _isolation(settings)
    return ShimRuntime(isolation, find_shim(settings.home), settings.run_dir)


def create_job_runtime(settings: Settings) -> ContainerRuntime:
    """The scheduler's runtime: process attempts as create_runtime's, image attempts under podman."""
    return ContainerRuntime(create_runtime(settings), settings.home)


def _isolation(settings: Settings) -> Isolation:
    if settings.isolation == "rlimits":
        warn_once("rlimits", f"freight: isolation is rlimits as configured (FREIGHT_ISOLATION): {_WEAKER}")
        return RlimitIsolation()
    try:
        return SlotPool(open_cgroups(settings.cgroup_parent))
    except CgroupUnavailable as exc:
        if settings.isolation == "cgroups":
            raise UserError(
                f"cgroups are required but cannot be used: {exc}",
                where="FREIGHT_ISOLATION",
                hint="run freight where it may write cgroups (root, or a delegated subtree), or use auto",
            ) from None
        warn_once("rlimits", f"freight: cgroups cannot be used ({exc}); falling back to rlimits: {_WEAKER}")
        return RlimitIsolation()


def _conforms(runtime: ShimRuntime) -> Runtime:
    return runtime  # mypy proves here that ShimRuntime implements the Runtime protocol


def _conforms_too(runtime: ContainerRuntime) -> Runtime:
    return runtime
