"""`freight queues set`'s policy flags: grants (--allow-root, --allow-inherit-env), maxima and defaults."""

from __future__ import annotations

from typing import Any

from freight.errors import UserError
from freight.units import format_bytes, parse_bytes, parse_cpus


def queue_policy_flags(
    *,
    allow_root: bool | None,
    allow_inherit_env: bool | None,
    max_cpus: str | None,
    max_memory: str | None,
    default_cpus: str | None,
    default_memory: str | None,
) -> dict[str, Any]:
    """The policy a `queues set` command line asks for, parsed ("2G", "0.5"); 0 clears an amount."""
    policy: dict[str, Any] = {}
    for key, flag in (("allow_root", allow_root), ("allow_inherit_env", allow_inherit_env)):
        if flag is not None:
            policy[key] = flag
    amounts = (
        ("max_cpus", max_cpus, parse_cpus),
        ("default_cpus", default_cpus, parse_cpus),
        ("max_memory", max_memory, parse_bytes),
        ("default_memory", default_memory, parse_bytes),
    )
    for key, text, parse in amounts:
        if text is None:
            continue
        try:
            policy[key] = 0 if text.strip() in ("0", "0.0") else parse(text)
        except ValueError as exc:
            raise UserError(str(exc), where=f"--{key.replace('_', '-')}") from None
    return policy


def describe_policy(row: dict[str, Any]) -> str:
    """', root allowed, max 2 cpus / 2.0G, default 512.0M' for what is set, or ''."""
    parts = []
    if row.get("allow_root"):
        parts.append("root allowed")
    if row.get("allow_inherit_env"):
        parts.append("inherit_env allowed")
    for kind in ("max", "default"):
        cpus, memory = row.get(f"{kind}_cpus"), row.get(f"{kind}_memory")
        amounts = [f"{cpus:g} cpus" if cpus else "", format_bytes(memory) if memory else ""]
        if any(amounts):
            parts.append(f"{kind} " + " / ".join(a for a in amounts if a))
    return "".join(f", {p}" for p in parts)
