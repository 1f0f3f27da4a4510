"""Build pipelines in Python: the same spec the YAML file gives, checked by the same rules.

p = PipelineBuilder("shop", description="orders into the warehouse")
raw = p.extract_sql("orders_raw", connection="shop", table="orders")
daily = p.transform_sql("daily", inputs=[raw], sql="SELECT ... FROM orders_raw")
p.load("load_daily", input=daily, table="daily", mode="upsert", primary_key=["day"])
pipeline = p.build()          # a Pipeline, ready for PipelineRunner.run
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from freight.pipelines.loader import Locator, Pipeline, validate


class PipelineBuilder:
    def __init__(
        self, name: str, *, description: str | None = None, base_dir: Path | str | None = None
    ) -> None:
        self.name = name
        self.description = description
        self.defaults: dict[str, Any] = {}
        self.steps: list[dict[str, Any]] = []
        self.base_dir = Path(base_dir) if base_dir else Path.cwd()

    def set_defaults(self, **fields: Any) -> PipelineBuilder:
        self.defaults.update(fields)
        return self

    def step(self, type: str, name: str, **fields: Any) -> str:
        """Add a step of any type; returns its name, to pass as another step's input."""
        step: dict[str, Any] = {"name": name, "type": type}
        step.update({k: v for k, v in fields.items() if v is not None})
        self.steps.append(step)
        return name

    def extract_sql(
        self, name: str, *, connection: str, table: str | None = None, query: str | None = None, **fields: Any
    ) -> str:
        return self.step("extract-sql", name, connection=connection, table=table, query=query, **fields)

    def extract_files(self, name: str, *, path: str, **fields: Any) -> str:
        return self.step("extract-files", name, path=path, **fields)

    def extract_http(self, name: str, *, url: str, **fields: Any) -> str:
        return self.step("extract-http", name, url=url, **fields)

    def extract_logs(self, name: str, *, path: str, **fields: Any) -> str:
        return self.step("extract-logs", name, path=path, **fields)

    def transform_sql(
        self, name: str, *, inputs: list[str], sql: str | None = None, file: str | None = None, **fields: Any
    ) -> str:
        return self.step("transform-sql", name, inputs=inputs, sql=sql, file=file, **fields)

    def transform_python(
        self,
        name: str,
        *,
        inputs: list[str],
        function: str | None = None,
        script: str | None = None,
        **fields: Any,
    ) -> str:
        return self.step("transform-python", name, inputs=inputs, function=function, script=script, **fields)

    def load(self, name: str, *, input: str, table: str, mode: str = "append", **fields: Any) -> str:
        return self.step("load", name, inputs=[input], table=table, mode=mode, **fields)

    def publish_redis(
        self, name: str, *, input: str, connection: str, prefix: str, key: list[str], **fields: Any
    ) -> str:
        return self.step(
            "publish-redis", name, inputs=[input], connection=connection, prefix=prefix, key=key, **fields
        )

    def sql(self, name: str, *, sql: str | None = None, file: str | None = None, **fields: Any) -> str:
        return self.step("sql", name, sql=sql, file=file, **fields)

    def check(self, kind: str, name: str, **fields: Any) -> str:
        """kind: primary-key | count | columns | sql."""
        return self.step(f"check-{kind}", name, **fields)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "steps": self.steps}
        if self.description:
            data["description"] = self.description
        if self.defaults:
            data["defaults"] = self.defaults
        return data

    def build(self) -> Pipeline:
        """Validate; a mistake raises the same UserError a YAML file would, naming the field."""
        return validate(self.to_dict(), Locator(f"pipeline {self.name}"), self.base_dir.resolve())
