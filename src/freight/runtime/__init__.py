"""Run ONE attempt in isolation: cgroups (v1 or v2) or rlimits, behind a small exit-recording shim."""

from freight.runtime.factory import create_runtime

__all__ = ["create_runtime"]
