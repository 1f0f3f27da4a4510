"""/openapi.json: FastAPI's generated schema, plus the job spec as the submit body.

The submit route takes the spec as a plain mapping (so validation, and its error messages, are the
platform's own `parse_spec`), so the body schema is added here from JobSpec, then made to say what
the validator enforces beyond types: exactly one of `command` or `shell`, the queue name pattern, a
positive timeout, and human units ("512M", "10m") where numbers are stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from freight.jobs.spec import JobSpec

SPEC = "JobSpecIn"
_UNITS = {
    "memory": "512M",
    "cpus": "500m",
    "timeout": "10m",
    "grace": "30s",
    "backoff": "1s",
    "backoff_max": "5m",
}
_QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    spec = JobSpec.model_json_schema(ref_template=f"#/components/schemas/{SPEC}.{{model}}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, sub in spec.pop("$defs", {}).items():
        components[f"{SPEC}.{name}"] = _with_units(sub)
    components[SPEC] = _spec_rules(_with_units(spec))
    # openapi_extra merges into the generated "object" body schema; keep only the $ref
    for operation in (op for item in schema["paths"].values() for op in item.values()):
        for media in operation.get("requestBody", {}).get("content", {}).values():
            body = media.get("schema", {})
            if "$ref" in body and len(body) > 1:
                media["schema"] = {"$ref": body["$ref"]}
    app.openapi_schema = schema
    return schema


def _with_units(schema: dict[str, Any]) -> dict[str, Any]:
    for name, prop in schema.get("properties", {}).items():
        if name not in _UNITS:
            continue
        text = {"type": "string", "examples": [_UNITS[name]]}
        if "anyOf" in prop:
            prop["anyOf"] = [*prop["anyOf"], text]
        elif "type" in prop:
            keys = ("type", "minimum", "exclusiveMinimum", "maximum")
            number = {k: prop.pop(k) for k in list(prop) if k in keys}
            prop["anyOf"] = [number, text]
    return schema


def _spec_rules(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema["properties"]
    props["command"] = {
        "type": "array",
        "description": "The program and its arguments (no shell)",
        "items": {"type": "string"},
        "prefixItems": [{"type": "string", "minLength": 1}],
        "minItems": 1,
    }
    props["shell"] = {"type": "string", "description": "A script for /bin/sh -c"}
    props["queue"] = {**props["queue"], "pattern": _QUEUE_PATTERN}
    props["timeout"] = {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "examples": ["10m"]},
            {"type": "null"},
        ]
    }
    schema["oneOf"] = [{"required": ["command"]}, {"required": ["shell"]}]
    return schema
