"""Run ONE attempt in isolation: cgroups (v1 or v2) or rlimits, behind a small exit-recording shim."""
