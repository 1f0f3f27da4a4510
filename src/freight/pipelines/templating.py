"""`{{ interval_start }}`, `{{ ds }}`, `{{ params.x }}` in a step's SQL and fields.

Rendered once, when a run is compiled, with Jinja in a sandbox and strict about names: a misspelt
`{{ dss }}` is one error naming the step's field, not an empty string in a query. Only text holding
`{{` or `{%` is rendered, so SQL that never asked for templating passes unchanged.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from freight.errors import UserError

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

#: Environment variables a step job gets (besides the templated text): name → context key.
ENV = {
    "FREIGHT_INTERVAL_START": "interval_start",
    "FREIGHT_INTERVAL_END": "interval_end",
    "FREIGHT_DS": "ds",
    "FREIGHT_RUN_ID": "run_id",
}


@cache
def _env() -> SandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def render_text(text: str, context: dict[str, Any], *, where: str, field: str | None = None) -> str:
    """`where` is the file:line (or field) an error names; `field` the field path it starts with."""
    if "{{" not in text and "{%" not in text:
        return text
    from jinja2 import TemplateError

    try:
        return _env().from_string(text).render(context)
    except TemplateError as exc:
        raise UserError(
            f"{field + ': ' if field else ''}cannot fill in the template: {exc}",
            where=where,
            hint="the names are interval_start, interval_end, ds, ds_nodash, run_id and params.NAME",
        ) from None


def render_value(value: Any, context: dict[str, Any], *, where: str, field: str) -> Any:
    """Every string inside a JSON-like value, rendered."""
    if isinstance(value, str):
        return render_text(value, context, where=where, field=field)
    if isinstance(value, list):
        return [render_value(v, context, where=where, field=f"{field}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: render_value(v, context, where=where, field=f"{field}.{k}") for k, v in value.items()}
    return value


def job_env(context: dict[str, Any]) -> dict[str, str]:
    env = {name: str(context[key]) for name, key in ENV.items() if key in context}
    for key, value in (context.get("params") or {}).items():
        env[f"FREIGHT_PARAM_{str(key).upper()}"] = str(value)
    return env
