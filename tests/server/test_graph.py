"""The server-drawn step/task graph: columns by longest upstream chain, one box and one arrow each."""

from __future__ import annotations

from freight.server.ui.graph import Node, columns, render


def test_a_nodes_column_is_one_past_its_furthest_upstream_node() -> None:
    upstream = {"load": ["extract"], "check": ["load", "extract"], "extract": [], "other": ["gone"]}
    assert columns(["extract", "load", "check", "other"], upstream) == {
        "extract": 0,
        "load": 1,
        "check": 2,
        "other": 0,  # an edge to an unknown node is ignored
    }
    assert columns(["a", "b"], {"a": ["b"], "b": ["a"]}) in ({"a": 1, "b": 0}, {"a": 0, "b": 1})


def test_render_draws_boxes_arrows_states_links_and_the_critical_path() -> None:
    nodes = [
        Node("extract", "extract-sql · succeeded", "ok", "/jobs/j1"),
        Node("load", "load · running", "run"),
        Node("<b>", "check · failed", "bad"),
    ]
    svg = str(render(nodes, {"load": ["extract"], "<b>": ["load"]}, critical=["extract", "load"]))
    assert svg.startswith('<svg class="dag"') and svg.endswith("</svg>")
    assert svg.count('<g class="dag-node') == 3 and svg.count('<path class="dag-edge') == 2
    assert 'class="dag-node t-ok critical" data-node="extract"' in svg
    assert 'class="dag-node t-bad" data-node="&lt;b&gt;"' in svg  # names are escaped
    assert '<a href="/jobs/j1">' in svg
    assert svg.count('class="dag-edge critical"') == 1
    assert str(render([], {})) == ""
