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
    fuse: bool = Field(
        default=True,
        description="extract-sql and load: false keeps this step a job of its own (see pipelines/fusion.py)",
    )

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


class Incremental(_Strict):
    """Read only rows past the cursor the last load committed (in the warehouse, with the load)."""

    cursor: str = Field(description="A column that only grows: an updated_at timestamp or an id")
    initial: str | int | None = Field(default=None, description="Where the first run starts (inclusive)")
    lag: Seconds | None = Field(
        default=None, description="Read only rows older than now minus this, so late commits are not skipped"
    )
    warehouse: str | None = Field(default=None, description="Where the cursor lives: the load's warehouse")


class ExtractSql(StepBase):
    """Read a table or a query from MariaDB/MySQL or PostgreSQL."""

    type: Literal["extract-sql"]
    connection: str
    table: str | None = None
    query: str | None = None
    batch_size: int = Field(default=65_536, ge=1, le=10_000_000)
    split: Split | None = None
    incremental: Incremental | None = None
    input_range = (0, 0)

    @model_validator(mode="after")
    def _table_or_query(self) -> ExtractSql:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` or `query`")
        return self


class HttpAuth(_Strict):
    type: Literal["bearer", "basic"]
    token: str | None = Field(default=None, description="bearer: the token, as ${VAR} from the environment")
    username: str | None = None
    password: str | None = Field(default=None, description="basic: as ${VAR} from the environment")

    @model_validator(mode="after")
    def _fields(self) -> HttpAuth:
        if self.type == "bearer" and not self.token:
            raise ValueError("bearer auth needs `token` (write ${VAR})")
        if self.type == "basic" and (self.username is None or self.password is None):
            raise ValueError("basic auth needs `username` and `password` (write ${VAR})")
        for secret in (self.token, self.password):
            if secret and "${" not in secret:
                raise ValueError("write secrets as ${VAR}, taken from the environment, never in the file")
        return self


class Pagination(_Strict):
    type: Literal["none", "page", "cursor", "link"] = "none"
    #: page: the page number's parameter, the first page, and optionally the page size's.
    page_param: str = "page"
    start: int = 1
    size_param: str | None = None
    size: int | None = Field(default=None, ge=1)
    #: cursor: the parameter that takes the next cursor, and where the response holds it (a.b.c).
    cursor_param: str = "cursor"
    cursor_path: str | None = None
    max_pages: int = Field(default=100_000, ge=1)

    @model_validator(mode="after")
    def _cursor_path(self) -> Pagination:
        if self.type == "cursor" and not self.cursor_path:
            raise ValueError(
                "cursor pagination needs `cursor_path`: where the response holds the next cursor"
            )
        return self


class HttpIncremental(Incremental):
    #: The query parameter that tells the API where to start (the last committed cursor).
    param: str | None = None

    @model_validator(mode="after")
    def _no_lag(self) -> HttpIncremental:
        if self.lag is not None:
            raise ValueError("`lag` is not supported on extract-http yet (it applies to extract-sql)")
        return self


class ExtractHttp(StepBase):
    """Read a JSON API page by page (page number, cursor or Link header) into a dataset."""

    type: Literal["extract-http"]
    url: str = Field(pattern=r"^https?://", description="http(s) URL; ${VAR} is expanded")
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    auth: HttpAuth | None = None
    records: str | None = Field(
        default=None, description="Where the rows are in the body (a.b); none: the body"
    )
    pagination: Pagination = Field(default_factory=Pagination)
    rate_limit: float | None = Field(default=None, gt=0, description="At most this many requests a second")
    max_retries: int = Field(default=5, ge=0, le=20)
    request_timeout: Seconds = 30.0
    columns: dict[str, ArrowType] = Field(default_factory=dict, description="Column → Arrow type")
    incremental: HttpIncremental | None = None
    input_range = (0, 0)


class ExtractLogs(StepBase):
    """Read new lines of (rotated) log files, JSON lines or a regex with named groups, resuming from
    per-file offsets committed with the load."""

    type: Literal["extract-logs"]
    path: str = Field(description="A glob of the log and its rotated copies, e.g. /var/log/app/app.log*")
    format: Literal["jsonl", "regex"] = "jsonl"
    pattern: str | None = Field(default=None, description="regex: named groups become columns")
    on_bad_line: Literal["fail", "skip"] = "fail"
    columns: dict[str, ArrowType] = Field(default_factory=dict, description="Column → Arrow type")
    warehouse: str | None = Field(default=None, description="Where the offsets live: the load's warehouse")
    batch_lines: int = Field(default=50_000, ge=1, le=10_000_000)
    input_range = (0, 0)

    @model_validator(mode="after")
    def _pattern(self) -> ExtractLogs:
        import re

        if (self.format == "regex") != (self.pattern is not None):
            raise ValueError("give `pattern` with format regex (and only then)")
        if self.pattern is not None:
            try:
                if not re.compile(self.pattern).groupindex:
                    raise ValueError("the pattern needs named groups, (?P<name>...), one per column")
            except re.error as exc:
                raise ValueError(f"`pattern` is not a regex: {exc}") from None
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
    mode: Literal["append", "replace", "upsert", "merge", "delete_insert"] = "append"
    primary_key: list[str] = Field(default_factory=list)
    #: merge: keep every version (SCD2) with `_valid_from`, `_valid_to` and `_current` columns.
    history: bool = False
    #: delete_insert: the column whose range (the incremental cursor's, else the data's) is replaced.
    interval_column: str | None = None
    create: str | None = Field(default=None, description="A CREATE TABLE file used when the table is missing")
    input_range = (1, 1)
    produces = False

    @model_validator(mode="after")
    def _key_for_upsert(self) -> Load:
        if self.mode in ("upsert", "merge") and not self.primary_key:
            raise ValueError(f"mode {self.mode} needs `primary_key`")
        if self.history and self.mode != "merge":
            raise ValueError("`history` goes with mode merge")
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


class PublishRedis(StepBase):
    """Write the input as Redis hashes (or JSON strings) under a new version, then switch an alias."""

    type: Literal["publish-redis"]
    connection: str = Field(description="A redis connection: redis://host:6379/DB")
    prefix: str = Field(
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
        description="Keys are PREFIX:VERSION:KEY; PREFIX holds the version",
    )
    key: list[str] = Field(min_length=1, description="Column(s) whose values name each row's key")
    format: Literal["hash", "json"] = "hash"
    #: How long the previous version's keys live after the switch (readers finish with it).
    keep_old: Seconds = 300.0
    batch_size: int = Field(default=10_000, ge=1, le=1_000_000)
    input_range = (1, 1)
    produces = False


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
    | ExtractHttp
    | ExtractLogs
    | TransformSql
    | TransformPython
    | Load
    | Sql
    | PublishRedis
    | CheckPrimaryKey
    | CheckCount
    | CheckColumns
    | CheckSql,
    Field(discriminator="type"),
]
STEP_TYPES = (
    "extract-sql",
    "extract-files",
    "extract-http",
    "extract-logs",
    "transform-sql",
    "transform-python",
    "load",
    "sql",
    "publish-redis",
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
    fuse: bool = Field(
        default=True,
        description="Run an extract-sql and the one load it feeds as one job (false: never in this pipeline)",
    )

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
