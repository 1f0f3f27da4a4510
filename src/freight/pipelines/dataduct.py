"""Dataduct pipeline files, converted to freight's spec (`freight pipeline run` and `import`).

Dataduct (coursera/dataduct, on AWS Data Pipeline) writes a header (`name`, `frequency`, `load_time`,
`max_retries`, `description`) and a list of steps told apart by `step_type`. A step reads the output
of the step before it unless `input_node` names others; `depends_on` orders without data. Tables are
described by `.sql` files holding one CREATE TABLE (Redshift's DISTKEY/SORTKEY/ENCODE are dropped).

Each Dataduct step becomes one or a few freight steps; `report` says, line by line, what became what
and what freight does differently. Redshift steps load into the pipeline's warehouse (DuckDB or
PostgreSQL here; the `redshift` warehouse kind is separate work). EMR steps cannot run: one error that
names the step. Paths are relative to the Dataduct file's folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freight.errors import UserError

HEADER_KEYS = {"name", "frequency", "load_time", "max_retries", "description", "steps"}
IGNORED_HEADER = {
    "ec2_resource_config",
    "emr_cluster_config",
    "time_delta",
    "topic_arn",
    "bootstrap",
    "teardown",
}
EXTRACTS = {"extract-local", "extract-s3", "extract-rds", "extract-postgres", "extract-redshift"}
KNOWN = EXTRACTS | {
    "transform",
    "sql-command",
    "create-update-sql",
    "load-redshift",
    "load-postgres",
    "create-load-redshift",
    "upsert",
    "reload",
    "load-reload-pk",
    "delta-load",
    "pipeline-dependencies",
    "count-check",
    "column-check",
    "primary-key-check",
}
#: step types whose output a following step reads by default
PRODUCES = EXTRACTS


def looks_like(data: Any) -> bool:
    """A Dataduct file: its steps say `step_type` (freight's say `type`)."""
    steps = data.get("steps") if isinstance(data, dict) else None
    return isinstance(steps, list) and any(isinstance(s, dict) and "step_type" in s for s in steps)


@dataclass
class TableDef:
    name: str
    columns: list[str]
    primary_key: list[str]
    #: the CREATE TABLE for PostgreSQL/DuckDB: IF NOT EXISTS, Redshift's clauses dropped
    ddl: str

    @property
    def schema(self) -> str | None:
        return self.name.split(".", 1)[0] if "." in self.name else None


@dataclass
class Converted:
    spec: dict[str, Any]
    report: list[str] = field(default_factory=list)


class _Conversion:
    def __init__(self, data: dict[str, Any], source: str, lines: dict[Any, int], base_dir: Path) -> None:
        self.data = data
        self.source = source
        self.lines = lines
        self.base_dir = base_dir
        self.steps: list[dict[str, Any]] = []
        self.report: list[str] = []
        self.wait_for: list[dict[str, Any]] = []
        #: Dataduct step name → the freight step holding its output (None: it has none)
        self.outputs: dict[str, str | None] = {}
        #: Dataduct step name → the freight step others wait on after it
        self.last: dict[str, str] = {}

    def where(self, *path: Any) -> str:
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return f"{self.source}:{line}"
        return self.source

    def note(self, index: int | None, text: str) -> None:
        at = self.where("steps", index) if index is not None else self.where()
        self.report.append(f"{at}: {text}")

    # --- header --------------------------------------------------------------------------------

    def header(self) -> dict[str, Any]:
        d = self.data
        spec: dict[str, Any] = {"name": str(d.get("name") or "")}
        self.note(None, f"pipeline {spec['name']}")
        if d.get("description"):
            spec["description"] = str(d["description"]).strip()
        for key in sorted(set(d) & IGNORED_HEADER):
            self.report.append(
                f"{self.where(key)}: `{key}` ignored (steps run as freight jobs, not on EC2/EMR)"
            )
        for key in sorted(set(d) - HEADER_KEYS - IGNORED_HEADER):
            raise UserError(f"unknown Dataduct header field `{key}`", where=self.where(key))
        if "max_retries" in d:
            spec["defaults"] = {"retries": int(d["max_retries"])}
            self.report.append(f"{self.where('max_retries')}: max_retries → defaults.retries")
        frequency = str(d.get("frequency") or "one-time")
        if frequency != "one-time":
            schedule = {"frequency": frequency, "start": _today()}
            if d.get("load_time") is not None:
                schedule["load_time"] = load_time(d["load_time"], self.where("load_time"))
            spec["schedule"] = schedule
            self.report.append(
                f"{self.where('frequency')}: frequency {frequency} → schedule (start {schedule['start']}; "
                "register it with `freight pipeline schedule`)"
            )
        else:
            self.report.append(f"{self.where('frequency')}: one-time → runs when started")
        return spec

    # --- steps ---------------------------------------------------------------------------------

    def convert(self) -> Converted:
        spec = self.header()
        raw = self.data.get("steps")
        if not isinstance(raw, list) or not raw:
            raise UserError("a Dataduct pipeline needs a list of `steps`", where=self.where("steps"))
        previous: str | None = None  # the Dataduct step whose output the next one reads by default
        for i, step in enumerate(raw):
            if not isinstance(step, dict):
                raise UserError("a step is a mapping with `step_type`", where=self.where("steps", i))
            kind = str(step.get("step_type"))
            name = _name(step.get("name"), kind, i)
            if kind.startswith("emr-"):
                raise UserError(
                    f"step {step.get('name') or name} ({kind}): freight cannot run EMR jobs",
                    where=self.where("steps", i, "step_type"),
                    hint="rewrite it as a transform-sql or transform-python step, or run it elsewhere",
                )
            if kind not in KNOWN:
                raise UserError(
                    f"step {step.get('name') or name}: unknown Dataduct step_type {kind!r}",
                    where=self.where("steps", i, "step_type"),
                    hint="freight reads " + ", ".join(sorted(KNOWN)),
                )
            inputs = self.inputs(step, i, previous)
            after = self.depends(step, i)
            handler = getattr(self, "_" + kind.replace("-", "_"))
            handler(step, i, name, inputs, after)
            self.outputs[str(step.get("name") or name)] = name if kind in PRODUCES else None
            # as Dataduct: only the step right before is the default input, and only if it has an output
            previous = name if kind in PRODUCES else None
        spec["steps"] = self.steps
        if self.wait_for:
            spec["wait_for"] = self.wait_for
        if not self.steps:
            raise UserError("the pipeline has no step freight can run", where=self.where("steps"))
        return Converted(spec, self.report)

    def inputs(self, step: dict[str, Any], i: int, previous: str | None) -> list[str]:
        node = step.get("input_node")
        if node is None:
            return [previous] if previous else []
        names = list(node) if isinstance(node, dict | list) else [node]
        found = []
        for n in names:
            if self.outputs.get(str(n)) is None:
                raise UserError(
                    f"input_node {n!r} is not an earlier step with an output",
                    where=self.where("steps", i, "input_node"),
                )
            found.append(str(self.outputs[str(n)]))
        return found

    def depends(self, step: dict[str, Any], i: int) -> list[str]:
        raw = step.get("depends_on")
        names = raw if isinstance(raw, list) else ([raw] if raw else [])
        after = []
        for n in names:
            if str(n) not in self.last and str(n) not in self.outputs:
                raise UserError(
                    f"depends_on {n!r} is not an earlier step", where=self.where("steps", i, "depends_on")
                )
            if self.last.get(str(n)):  # a pipeline-dependencies step became wait_for: nothing to order
                after.append(self.last[str(n)])
        return after

    def add(self, i: int, step: dict[str, Any], dataduct_name: str | None = None) -> str:
        self.steps.append(step)
        self.last[dataduct_name or step["name"]] = step["name"]
        return str(step["name"])

    def table(self, path: Any, i: int, key: str) -> TableDef:
        if not path:
            raise UserError(f"`{key}` is required", where=self.where("steps", i))
        file = self.base_dir / str(path)
        try:
            text = file.read_text()
        except OSError:
            raise UserError(
                f"no table definition file {str(path)!r}", where=self.where("steps", i, key)
            ) from None
        return parse_table(text, where=self.where("steps", i, key))

    def create_step(self, i: int, name: str, table: TableDef, after: list[str]) -> str:
        ddl = (f"CREATE SCHEMA IF NOT EXISTS {table.schema};\n" if table.schema else "") + table.ddl
        return self.add(i, {"name": f"{name}_create", "type": "sql", "sql": ddl, "depends_on": after})

    def rename_step(self, i: int, name: str, inputs: list[str], table: TableDef) -> list[str]:
        """Header-less TSV/CSV reads as f0, f1…: name the columns as the table definition does."""
        source = next((s for s in self.steps if s["name"] in inputs and s.get("header") is False), None)
        if source is None or len(inputs) != 1:
            return inputs
        cols = ", ".join(f"f{n} AS {c}" for n, c in enumerate(table.columns))
        step: dict[str, Any] = {"name": f"{name}_columns", "type": "transform-sql", "inputs": inputs}
        step["sql"] = f"SELECT {cols} FROM {inputs[0]}"
        return [self.add(i, step)]

    # --- one method per step_type ----------------------------------------------------------------

    def _extract_local(
        self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]
    ) -> None:
        self._files(s, i, name, str(s.get("path") or ""), after, "extract-local")

    def _extract_s3(self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]) -> None:
        uri = s.get("file_uri") or s.get("directory_uri")
        path = str(uri or "")
        if s.get("directory_uri"):
            path = path.rstrip("/") + "/*"
        self._files(s, i, name, path, after, "extract-s3")

    def _files(self, s: dict[str, Any], i: int, name: str, path: str, after: list[str], kind: str) -> None:
        if not path:
            raise UserError(f"{kind} needs a path", where=self.where("steps", i))
        fmt = "csv" if path.endswith(".csv") else "tsv"
        self.add(
            i,
            {
                "name": name,
                "type": "extract-files",
                "path": path,
                "format": fmt,
                "header": False,
                "depends_on": after,
            },
        )
        self.note(i, f"{kind} → extract-files {name} ({fmt}, no header row, as Dataduct reads it)")

    def _extract_rds(self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]) -> None:
        conn = str(s.get("host_name") or "")
        if not conn:
            raise UserError("extract-rds needs `host_name`", where=self.where("steps", i))
        self._sql_extract(s, i, name, conn, after, "extract-rds")

    def _extract_postgres(
        self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]
    ) -> None:
        self._sql_extract(s, i, name, str(s.get("host_name") or "postgres"), after, "extract-postgres")

    def _extract_redshift(
        self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]
    ) -> None:
        table = f"{s['schema']}.{s['table']}" if s.get("schema") and s.get("table") else s.get("table")
        self._sql_extract({"table": table}, i, name, "redshift", after, "extract-redshift")

    def _sql_extract(
        self, s: dict[str, Any], i: int, name: str, conn: str, after: list[str], kind: str
    ) -> None:
        step: dict[str, Any] = {"name": name, "type": "extract-sql", "connection": conn, "depends_on": after}
        if s.get("sql"):
            step["query"] = str(s["sql"]).strip().rstrip(";")
        elif s.get("table"):
            step["table"] = str(s["table"])
        else:
            raise UserError(f"{kind} needs `table` or `sql`", where=self.where("steps", i))
        self.add(i, step)
        self.note(i, f"{kind} → extract-sql {name} from connection `{conn}` (define it in freight.toml)")

    def _transform(self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]) -> None:
        raise UserError(
            f"step {s.get('name') or name} (transform): Dataduct transforms run a shell command or script "
            "on EC2 over staging folders, which freight steps do not have",
            where=self.where("steps", i, "step_type"),
            hint="rewrite it as a transform-sql or transform-python step",
        )

    def _sql_command(self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]) -> None:
        step: dict[str, Any] = {"name": name, "type": "sql", "depends_on": after}
        if s.get("command"):
            step["sql"] = _with_args(str(s["command"]), s.get("script_arguments"))
        elif s.get("script"):
            step["file"] = str(s["script"])
        else:
            raise UserError("sql-command needs `command` or `script`", where=self.where("steps", i))
        self.add(i, step)
        self.note(i, f"sql-command → sql {name} in the warehouse")

    def _create_update_sql(
        self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]
    ) -> None:
        table = self.table(s.get("table_definition"), i, "table_definition")
        created = self.create_step(i, name, table, after)
        command = s.get("command")
        if command is None and s.get("script"):
            command = (self.base_dir / str(s["script"])).read_text()
        if not command:
            raise UserError("create-update-sql needs `command` or `script`", where=self.where("steps", i))
        sql = _with_args(str(command), s.get("script_arguments"))
        self.add(
            i, {"name": name, "type": "sql", "sql": sql, "depends_on": [created]}, str(s.get("name") or name)
        )
        self.note(
            i, f"create-update-sql → sql {created} (CREATE TABLE IF NOT EXISTS {table.name}) + sql {name}"
        )

    def _create_load_redshift(
        self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]
    ) -> None:
        table = self.table(s.get("table_definition"), i, "table_definition")
        created = self.create_step(i, name, table, after)
        self._load(s, i, name, inputs, [created], table.name, table, "append", [], "create-load-redshift")

    def _load_redshift(
        self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]
    ) -> None:
        target = f"{s['schema']}.{s['table']}" if s.get("schema") else str(s.get("table") or "")
        mode = "replace" if s.get("replace_invalid_char") is None and s.get("truncate") else "append"
        self._load(s, i, name, inputs, after, target, None, mode, [], "load-redshift")

    def _load_postgres(
        self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]
    ) -> None:
        self._load(
            s,
            i,
            name,
            inputs,
            after,
            str(s.get("table") or ""),
            None,
            "append",
            [],
            "load-postgres",
            "postgres",
        )
        if s.get("insert_query"):
            self.note(i, "insert_query ignored: freight loads with COPY, by column name")

    def _load(
        self,
        s: dict[str, Any],
        i: int,
        name: str,
        inputs: list[str],
        after: list[str],
        target: str,
        table: TableDef | None,
        mode: str,
        key: list[str],
        kind: str,
        warehouse: str | None = None,
    ) -> None:
        if len(inputs) != 1:
            raise UserError(f"{kind} loads one input; it has {len(inputs)}", where=self.where("steps", i))
        if not target:
            raise UserError(f"{kind} needs a table", where=self.where("steps", i))
        if table is not None:
            inputs = self.rename_step(i, name, inputs, table)
        step: dict[str, Any] = {"name": name, "type": "load", "inputs": inputs, "table": target, "mode": mode}
        step["depends_on"] = after
        if key:
            step["primary_key"] = key
        if warehouse:
            step["warehouse"] = warehouse
        self.add(i, step, str(s.get("name") or name))
        where = f"warehouse `{warehouse}`" if warehouse else "the pipeline's warehouse (Redshift's stand-in)"
        self.note(i, f"{kind} → load {name} into {target} ({mode}) in {where}")

    def _merge_sql(
        self, s: dict[str, Any], i: int, name: str, after: list[str], kind: str, wipe: bool
    ) -> None:
        dest = self.table(s.get("destination"), i, "destination")
        if s.get("source"):
            source = self.table(s.get("source"), i, "source").name
        elif s.get("sql"):
            source = f"({str(s['sql']).strip().rstrip(';')}) AS src"
        elif s.get("script"):
            source = f"({(self.base_dir / str(s['script'])).read_text().strip().rstrip(';')}) AS src"
        else:
            raise UserError(f"{kind} needs `source`, `sql` or `script`", where=self.where("steps", i))
        created = self.create_step(i, name, dest, after)
        if wipe or not dest.primary_key:
            delete = f"DELETE FROM {dest.name};"
        else:
            cols = ", ".join(dest.primary_key)
            delete = f"DELETE FROM {dest.name} WHERE ({cols}) IN (SELECT {cols} FROM {source});"
        sql = f"{delete}\nINSERT INTO {dest.name} SELECT * FROM {source};"
        self.add(
            i, {"name": name, "type": "sql", "sql": sql, "depends_on": [created]}, str(s.get("name") or name)
        )
        how = (
            "replaces every row"
            if wipe or not dest.primary_key
            else f"replaces rows by key {dest.primary_key}"
        )
        self.note(i, f"{kind} → sql {name}: {how} of {dest.name} from {source}, in one transaction")

    def _upsert(self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]) -> None:
        if s.get("history"):
            self.note(i, "history (SCD2) not converted: freight's merge with history is separate work")
        self._merge_sql(s, i, name, after, "upsert", bool(s.get("delete_existing")))

    def _delta_load(self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]) -> None:
        self._merge_sql(s, i, name, after, "delta-load", False)

    def _reload(self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]) -> None:
        self._merge_sql(s, i, name, after, "reload", True)

    def _load_reload_pk(
        self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]
    ) -> None:
        staging = self.table(s.get("staging_table_definition"), i, "staging_table_definition")
        prod = self.table(s.get("production_table_definition"), i, "production_table_definition")
        created = self.create_step(i, f"{name}_staging", staging, after)
        self._load(
            s, i, f"{name}_load", inputs, [created], staging.name, staging, "replace", [], "load-reload-pk"
        )
        self._merge_sql(
            {"source": s["staging_table_definition"], "destination": s["production_table_definition"]},
            i,
            name,
            [f"{name}_load"],
            "load-reload-pk",
            False,
        )
        if prod.primary_key:
            self.add(
                i,
                {
                    "name": f"{name}_pk",
                    "type": "check-primary-key",
                    "table": prod.name,
                    "columns": prod.primary_key,
                    "depends_on": [name],
                },
                str(s.get("name") or name),
            )

    def _pipeline_dependencies(
        self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]
    ) -> None:
        for key, ok in (("dependent_pipelines", False), ("dependent_pipelines_ok_to_fail", True)):
            for other in s.get(key) or []:
                self.wait_for.append({"pipeline": str(other), "same_interval": True, "ok_to_fail": ok})
        self.last[str(s.get("name") or name)] = ""
        self.note(i, "pipeline-dependencies → wait_for (same interval) before any step runs")

    def _count_check(self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]) -> None:
        dest = self._destination(s, i)
        step: dict[str, Any] = {"name": name, "type": "check-count", "table": dest, "depends_on": after}
        step["tolerance"] = float(s.get("tolerance") or 0)
        if s.get("source_sql"):
            step["source"] = {
                "connection": str(s.get("source_host") or "redshift"),
                "query": str(s["source_sql"]).strip().rstrip(";"),
            }
        self.add(i, step)
        self.note(i, f"count-check → check-count {name}")

    def _column_check(
        self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]
    ) -> None:
        dest = self._destination(s, i)
        key = (
            self.table(s["destination_table_definition"], i, "destination_table_definition").primary_key
            if (s.get("destination_table_definition"))
            else []
        )
        if not key:
            raise UserError(
                "column-check needs `destination_table_definition` with a PRIMARY KEY to pair rows",
                where=self.where("steps", i),
            )
        step: dict[str, Any] = {"name": name, "type": "check-columns", "table": dest, "key": key}
        step["sample"] = int(s.get("sample_size") or 100)
        step["source"] = {
            "connection": str(s.get("source_host") or "redshift"),
            "query": str(s.get("source_sql") or "").strip().rstrip(";"),
        }
        step["depends_on"] = after
        self.add(i, step)
        self.note(i, f"column-check → check-columns {name}, rows paired by {key}")

    def _destination(self, s: dict[str, Any], i: int) -> str:
        if s.get("destination_table_definition"):
            return self.table(s["destination_table_definition"], i, "destination_table_definition").name
        if s.get("destination_sql"):
            m = re.match(
                r"^\s*SELECT\s.+?\sFROM\s+([A-Za-z_][\w.]*)\s*;?\s*$", str(s["destination_sql"]), re.I | re.S
            )
            if m:
                return m.group(1)
            raise UserError(
                "destination_sql must be a plain `SELECT … FROM table` (freight checks a table)",
                where=self.where("steps", i, "destination_sql"),
                hint="give `destination_table_definition` instead",
            )
        raise UserError(
            "needs `destination_sql` or `destination_table_definition`", where=self.where("steps", i)
        )

    def _primary_key_check(
        self, s: dict[str, Any], i: int, name: str, inputs: list[str], after: list[str]
    ) -> None:
        table = self.table(s.get("table_definition"), i, "table_definition")
        if not table.primary_key:
            raise UserError(f"{table.name} has no PRIMARY KEY to check", where=self.where("steps", i))
        self.add(
            i,
            {
                "name": name,
                "type": "check-primary-key",
                "table": table.name,
                "columns": table.primary_key,
                "depends_on": after,
            },
        )
        self.note(i, f"primary-key-check → check-primary-key {name} on {table.name} {table.primary_key}")


def convert(data: dict[str, Any], *, source: str, lines: dict[Any, int], base_dir: Path) -> Converted:
    return _Conversion(data, source, lines, base_dir).convert()


def convert_file(path: Path) -> Converted:
    """Read and convert a Dataduct file (for `freight pipeline import`)."""

    from freight.pipelines.loader import Locator, _to_data
    from freight.yamlfile import compose_checked

    try:
        text = path.read_text()
    except OSError:
        raise UserError(f"no Dataduct file {str(path)!r}", hint="check the path") from None
    locator = Locator(str(path))
    node = compose_checked(text, str(path))  # the same caps as every other YAML file
    data = _to_data(node, (), locator) if node is not None else None
    if not isinstance(data, dict) or not looks_like(data):
        raise UserError("not a Dataduct file (its steps have no `step_type`)", where=str(path))
    return convert(data, source=str(path), lines=locator.lines, base_dir=path.resolve().parent)


def dump(spec: dict[str, Any]) -> str:
    import yaml

    clean = {**spec, "steps": [{k: v for k, v in s.items() if v not in ([], None)} for s in spec["steps"]]}
    return yaml.safe_dump(clean, sort_keys=False, allow_unicode=True, width=100)


_CREATE = re.compile(
    r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][\w.]*)\s*\((.*)\)\s*([^;]*);?\s*$", re.I | re.S
)
_REDSHIFT = re.compile(
    r"\b(?:(?:COMPOUND|INTERLEAVED)\s+)?(?:DISTKEY|SORTKEY)\b(?:\s*\([^)]*\))?|\bENCODE\s+\w+|\bDISTSTYLE\s+\w+",
    re.I,
)


def parse_table(text: str, *, where: str) -> TableDef:
    """A Dataduct table definition: one CREATE TABLE (comments allowed)."""
    body = "\n".join(line.split("--", 1)[0] for line in text.splitlines()).strip()
    m = _CREATE.match(_REDSHIFT.sub("", body))
    if not m:
        raise UserError("a table definition file holds one CREATE TABLE name (...);", where=where)
    name, inner = m.group(1), m.group(2)
    columns: list[str] = []
    key: list[str] = []
    parts = _split_top(inner)
    for part in parts:
        words = part.split()
        if not words:
            continue
        head = words[0].upper()
        if head == "PRIMARY" and len(words) > 1:
            key = [c.strip(' "') for c in part[part.index("(") + 1 : part.rindex(")")].split(",")]
        elif head in ("CONSTRAINT", "UNIQUE", "FOREIGN", "CHECK"):
            if "PRIMARY KEY" in part.upper():
                key = [
                    c.strip(' "')
                    for c in part[part.upper().index("KEY") :].split("(", 1)[1].split(")")[0].split(",")
                ]
        else:
            columns.append(words[0].strip('"'))
            if "PRIMARY KEY" in part.upper():
                key = [words[0].strip('"')]
    cleaned = ",\n    ".join(" ".join(p.split()) for p in parts if p.strip())
    ddl = f"CREATE TABLE IF NOT EXISTS {name} (\n    {cleaned}\n);\n"
    return TableDef(name, columns, key, ddl)


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses: `a NUMERIC(10,2), b INT` → two parts."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def load_time(value: Any, where: str) -> str:
    """HH:MM. YAML 1.1 reads an unquoted `01:00` as the sexagesimal number 60 (minutes), as
    Dataduct itself knew."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value // 60:02d}:{value % 60:02d}"
    text = str(value)
    if not re.match(r"^\d{1,2}:\d{2}$", text):
        raise UserError(f"load_time {text!r} is not HH:MM", where=where)
    return text


def _name(given: Any, kind: str, index: int) -> str:
    raw = str(given) if given else f"{kind}_{index}"
    name = re.sub(r"[^A-Za-z0-9_]", "_", raw)
    return name if re.match(r"^[A-Za-z_]", name) else f"s_{name}"


def _with_args(command: str, args: Any) -> str:
    """Dataduct fills `%s` in a command from script_arguments, in order."""
    if not args:
        return command
    return command % tuple(str(a) for a in args)


def _today() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).date().isoformat()
