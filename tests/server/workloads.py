"""Real workload data for the UI tests, and a reader for the tables the pages render.

The pipeline runs come from the real runner over the server's JobService (every step an isolated job):
extract a CSV, load it into DuckDB, check the row count. Releases are published from folders and
deployed through the builds API, the way `freight build` and `freight deploy` do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from freight.builds.api import Builds
from freight.builds.releases import publish
from freight.builds.store import Route
from freight.config import Settings
from freight.jobs.service import JobService
from freight.pipelines.runner import PipelineRunner
from freight.pipelines.store import RunStore

PIPELINE = "ui-orders"
PIPELINE_YAML = """
name: ui-orders
description: orders from a CSV into DuckDB
steps:
  - name: orders
    type: extract-files
    path: orders.csv
  - name: load_orders
    type: load
    inputs: [orders]
    table: ui_orders
    mode: replace
  - name: three_rows
    type: check-sql
    depends_on: [load_orders]
    sql: SELECT count(*) FROM ui_orders
    expect: {expect}
"""
STEPS = ["orders", "load_orders", "three_rows"]


def write_pipeline(folder: Path, expect: int) -> Path:
    """The pipeline file and its CSV (3 rows); the check passes when `expect` is 3."""
    (folder / "orders.csv").write_text("id,amount\n1,2.5\n2,\n3,4\n")
    path = folder / "ui-orders.yaml"
    path.write_text(PIPELINE_YAML.format(expect=expect))
    return path


def runner(service: JobService, store: RunStore, folder: Path) -> PipelineRunner:
    # no freight.toml: the warehouse is the DuckDB file under FREIGHT_HOME
    return PipelineRunner(service, store, service.settings, config_path=folder / "freight.toml")


@dataclass
class Apps:
    #: release ids of `web`, oldest first; prod runs web[0] (rolled back), staging web[1]
    web: list[str]
    docs: str


def publish_apps(settings: Settings, folder: Path) -> Apps:
    """Two releases of `web` (deployed, redeployed, rolled back; staging gets the newer) and one
    of `docs` that was never deployed."""
    with Builds.open(settings) as builds:
        web = []
        for n in range(2):
            out = folder / f"web-{n}"
            out.mkdir()
            (out / "index.html").write_text(f"<!doctype html><h1>web {n}</h1>")
            (out / "main-3f9a1c2b.js").write_text(f"console.log({n});\n")
            release, _ = publish(builds.objects, builds.store, "web", out, commit=f"{n}abcdef0123456789")
            web.append(release.id)
        builds.store.set_route(Route("web", ("web.example",), "/web/", True))
        builds.deploy("web", web[0], "prod", actor="alice")
        builds.deploy("web", web[1], "prod", actor="alice")
        builds.rollback("web", "prod", actor="bob")
        builds.deploy("web", web[1], "staging", actor="alice")
        out = folder / "docs"
        out.mkdir()
        (out / "index.html").write_text("<h1>docs</h1>")
        docs, _ = publish(builds.objects, builds.store, "docs", out)
        builds.store.set_route(Route("docs", (), "/docs/", False))
    return Apps(web, docs.id)


@dataclass
class Row:
    attrs: dict[str, str]
    cells: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " | ".join(self.cells)


class _Rows(HTMLParser):
    def __init__(self, table_class: str) -> None:
        super().__init__()
        self.table_class = table_class
        self.depth = 0  # >0 inside the table we want
        self.rows: list[Row] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "table":
            if self.depth or self.table_class in found.get("class", "").split():
                self.depth += 1
        elif self.depth and tag == "tr" and self.cell is None:
            self.rows.append(Row(found))
        elif self.depth and tag == "td" and self.rows:
            self.cell = []
        elif self.depth and tag == "a" and self.rows:
            self.rows[-1].links.append(found.get("href", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1
        elif tag == "td" and self.cell is not None:
            self.rows[-1].cells.append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table_rows(html: str, table_class: str) -> list[Row]:
    """The body rows of the table with this class; header rows (no cells) and the "nothing here" or
    "show more" rows (class `none`) are left out."""
    parser = _Rows(table_class)
    parser.feed(html)
    return [r for r in parser.rows if r.cells and "none" not in r.attrs.get("class", "").split()]
