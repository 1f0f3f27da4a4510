"""The pipeline spec: a name, defaults and typed steps, validated by pydantic.

One model per step type, told apart by `type` (a discriminated union), so a JSON Schema exported from
`PipelineSpec` gives editors completion for every step's own fields. Cross-step rules (unknown names,
cycles, input counts) live in `graph.py`, which knows where each name was written.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from freight.pipelines.conditions import Precondition, WaitFor
from freight.pipelines.notify import Notify
from freight.pipelines.schedule import Schedule
from freight.unitfields import Bytes, Cpus, Seconds

STEP_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
PIPELINE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
OnFail = Literal["fail", "warn"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepResources(_Strict):
    cpus: Cpus | None = None
    memory: Bytes | None = None


class Defaults(_Strict):
    resources: StepResources = Field(default_factory=StepResources)
    #: Extra attempts after a failed one.
    retries: int = Field(default=0, ge=0, le=20)
    timeout: Seconds | None = None
    #: The warehouse connection steps use when they name none.
    warehouse: str = "warehouse"


class StepBase(_Strict):
    name: str = Field(
        pattern=STEP_NAME, description="Unique in the pipeline; inputs are SQL tables by this name"
    )
    description: str | None = None
    depends_on: list[str] = Field(default_factory=list, description="Steps that must succeed first")
    inputs: list[str] = Field(default_factory=list, description="Steps whose output datasets this step reads")
    resources: StepResources | None = None
    retries: int | None = Field(default=None, ge=0, le=20)
    timeout: Seconds | None = None

    #: How many inputs the step type takes: (least, most); most None is unbounded.
    input_range: ClassVar[tuple[int, int | None]] = (0, None)
    #: Whether the step writes a dataset others can take as an input.
    produces: ClassVar[bool] = True

    def files(self) -> dict[str, str]:
        """Fields that name files relative to the pipeline file: field → path."""
        return {}


#: Arrow type names a user is likely to mean (pyarrow knows more: `pa.type_for_alias`).
COMMON_ARROW_TYPES = ("bool", "int32", "int64", "float64", "double", "string", "date32", "timestamp[us]")


def _arrow_type(name: str) -> str:
    import difflib

    import pyarrow as pa  # only when a pipeline gives column types: validating stays light otherwise

    try:
        pa.type_for_alias(name)
    except ValueError:
        close = difflib.get_close_matches(name, COMMON_ARROW_TYPES, n=1, cutoff=0.5)
        hint = f"did you mean `{close[0]}`?" if close else "use one of " + ", ".join(COMMON_ARROW_TYPES)
        raise ValueError(f"{name!r} is not an Arrow type ({hint})") from None
    return name


ArrowType = Annotated[str, AfterValidator(_arrow_type)]


class Split(_Strict):
    column: str = Field(description="An integer column to split into ranges")
    parts: int = Field(ge=2, le=64)


class ExtractSql(StepBase):
    """Read a table or a query from MariaDB/MySQL or PostgreSQL."""

    type: Literal["extract-sql"]
    connection: str
    table: str | None = None
    query: str | None = None
    batch_size: int = Field(default=65_536, ge=1, le=10_000_000)
    split: Split | None = None
    input_range = (0, 0)

    @model_validator(mode="after")
    def _table_or_query(self) -> ExtractSql:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` or `query`")
        return self


class ExtractFiles(StepBase):
    """Read CSV, TSV, JSON lines or Parquet files by glob, from disk or an object store."""

    type: Literal["extract-files"]
    path: str = Field(description="A glob; relative paths start at the pipeline file's folder")
    format: Literal["csv", "tsv", "jsonl", "parquet"] | None = None
    header: bool = True
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    columns: dict[str, ArrowType] = Field(
        default_factory=dict, description="Column → Arrow type (int64, string…)"
    )
    input_range = (0, 0)


class TransformSql(StepBase):
    """DuckDB SQL over the inputs, each visible as a table named after its step."""

    type: Literal["transform-sql"]
    sql: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _sql_or_file(self) -> TransformSql:
        if (self.sql is None) == (self.file is None):
            raise ValueError("give exactly one of `sql` or `file`")
        return self

    def files(self) -> dict[str, str]:
        return {"file": self.file} if self.file else {}


class TransformPython(StepBase):
    """Call a function with one Arrow table per input (as keyword arguments) that returns a table."""

    type: Literal["transform-python"]
    function: str | None = Field(default=None, description="module:function on the import path")
    script: str | None = Field(default=None, description="path/to/file.py, calling its `transform` function")

    @model_validator(mode="after")
    def _function_or_script(self) -> TransformPython:
        if (self.function is None) == (self.script is None):
            raise ValueError("give exactly one of `function` or `script`")
        if self.function is not None and ":" not in self.function:
            raise ValueError("`function` is written module:function, e.g. mypkg.clean:orders")
        return self

    def files(self) -> dict[str, str]:
        return {"script": self.script} if self.script else {}


class Load(StepBase):
    """Load the one input into a warehouse table."""

    type: Literal["load"]
    table: str
    warehouse: str | None = None
    mode: Literal["append", "replace", "upsert"] = "append"
    primary_key: list[str] = Field(default_factory=list)
    create: str | None = Field(default=None, description="A CREATE TABLE file used when the table is missing")
    input_range = (1, 1)
    produces = False

    @model_validator(mode="after")
    def _key_for_upsert(self) -> Load:
        if self.mode == "upsert" and not self.primary_key:
            raise ValueError("mode upsert needs `primary_key`")
        return self

    def files(self) -> dict[str, str]:
        return {"create": self.create} if self.create else {}


class Sql(StepBase):
    """Run a statement or a script in the warehouse, in one transaction."""

    type: Literal["sql"]
    warehouse: str | None = None
    sql: str | None = None
    file: str | None = None
    input_range = (0, 0)
    produces = False

    @model_validator(mode="after")
    def _sql_or_file(self) -> Sql:
        if (self.sql is None) == (self.file is None):
            raise ValueError("give exactly one of `sql` or `file`")
        return self

    def files(self) -> dict[str, str]:
        return {"file": self.file} if self.file else {}


class SourceRef(_Strict):
    """Where a check reads its source side: a connection with a table or a query."""

    connection: str
    table: str | None = None
    query: str | None = None

    @model_validator(mode="after")
    def _table_or_query(self) -> SourceRef:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` or `query`")
        return self


class CheckBase(StepBase):
    warehouse: str | None = None
    on_fail: OnFail = "fail"
    produces = False


class CheckPrimaryKey(CheckBase):
    """The key columns hold no NULLs and no duplicates."""

    type: Literal["check-primary-key"]
    table: str
    columns: list[str] = Field(min_length=1)
    input_range = (0, 0)


class CheckCount(CheckBase):
    """The destination's row count is within `tolerance` percent of the source's (an input or `source`)."""

    type: Literal["check-count"]
    table: str
    source: SourceRef | None = None
    tolerance: float = Field(default=0.0, ge=0.0, le=100.0)
    input_range = (0, 1)


class CheckColumns(CheckBase):
    """Sampled source rows (an input or `source`) equal the destination's rows with the same key."""

    type: Literal["check-columns"]
    table: str
    key: list[str] = Field(min_length=1)
    columns: list[str] | None = None
    source: SourceRef | None = None
    sample: int = Field(default=1000, ge=1, le=1_000_000)
    input_range = (0, 1)


class CheckSql(CheckBase):
    """A query that passes when it returns no rows, or, with `expect`, when its first value equals it."""

    type: Literal["check-sql"]
    sql: str
    expect: str | int | float | bool | None = None
    input_range = (0, 0)


Step = Annotated[
    ExtractSql
    | ExtractFiles
    | TransformSql
    | TransformPython
    | Load
    | Sql
    | CheckPrimaryKey
    | CheckCount
    | CheckColumns
    | CheckSql,
    Field(discriminator="type"),
]
STEP_TYPES = (
    "extract-sql",
    "extract-files",
    "transform-sql",
    "transform-python",
    "load",
    "sql",
    "check-primary-key",
    "check-count",
    "check-columns",
    "check-sql",
)
CHECK_TYPES = frozenset(t for t in STEP_TYPES if t.startswith("check-"))


class PipelineSpec(_Strict):
    name: str = Field(pattern=PIPELINE_NAME)
    description: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    steps: list[Step] = Field(min_length=1)
    # --- when it runs (issue 11: schedules, dependencies, notifications) ---
    schedule: Schedule | None = None
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Values steps see as {{ params.NAME }} (and $FREIGHT_PARAM_NAME)"
    )
    wait_for: list[WaitFor] = Field(default_factory=list, description="Other pipelines' runs to wait for")
    preconditions: list[Precondition] = Field(default_factory=list)
    notify: Notify | None = None

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]


def json_schema() -> dict[str, Any]:
    schema = PipelineSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "freight pipeline"
    return schema
