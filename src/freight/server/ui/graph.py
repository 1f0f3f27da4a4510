"""A step or task graph drawn as SVG on the server: people would rather look than read.

Layered left to right (a node's column is the length of the longest chain of nodes before it), one
box per node coloured by its state's tone, an arrow per edge; nodes on a critical path and the edges
between them are drawn bold. No script: a page that refreshes its panel redraws the graph live.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

NODE_W, NODE_H = 168, 42
GAP_X, GAP_Y, PAD = 56, 14, 8


@dataclass(frozen=True)
class Node:
    name: str
    label: str  # the second line: a step's type, a task's status and time
    tone: str  # ok | bad | warn | run | wait | muted: the badges' colours
    href: str | None = None


def columns(names: Sequence[str], upstream: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each node's column: 0 without upstream nodes, else one more than its furthest upstream one.
    Edges to unknown nodes are ignored; a cycle (never valid here) cannot loop."""
    known = set(names)
    found: dict[str, int] = {}

    def depth(name: str, seen: frozenset[str]) -> int:
        if name in found:
            return found[name]
        before = [u for u in upstream.get(name, ()) if u in known and u not in seen]
        found[name] = 1 + max((depth(u, seen | {name}) for u in before), default=-1)
        return found[name]

    for name in names:
        depth(name, frozenset())
    return found


def render(
    nodes: Sequence[Node],
    upstream: Mapping[str, Sequence[str]],
    *,
    critical: Sequence[str] = (),
    title: str = "graph",
) -> Markup:
    """The SVG of `nodes` and their `upstream` edges (node -> the nodes it waits for)."""
    if not nodes:
        return Markup("")
    col = columns([n.name for n in nodes], upstream)
    rows: dict[int, int] = {}
    at: dict[str, tuple[int, int]] = {}
    for node in nodes:  # in the given order within a column
        c = col[node.name]
        r = rows.get(c, 0)
        rows[c] = r + 1
        at[node.name] = (PAD + c * (NODE_W + GAP_X), PAD + r * (NODE_H + GAP_Y))
    width = PAD * 2 + (max(col.values()) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(rows.values()) * (NODE_H + GAP_Y) - GAP_Y
    on_path = set(critical)
    pairs = set(itertools.pairwise(critical))
    parts = [
        f'<svg class="dag" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        '<defs><marker id="dag-arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0 0L8 4L0 8z"/></marker></defs>',
    ]
    for node in nodes:
        x2, y2 = at[node.name]
        for before in upstream.get(node.name, ()):
            if before not in at:
                continue
            x1, y1 = at[before]
            sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H / 2, x2 - 2, y2 + NODE_H / 2
            mid = (sx + ex) / 2
            bold = " critical" if (before, node.name) in pairs else ""
            curve = f"M{sx:g} {sy:g}C{mid:g} {sy:g} {mid:g} {ey:g} {ex:g} {ey:g}"
            parts.append(f'<path class="dag-edge{bold}" d="{curve}" marker-end="url(#dag-arrow)"/>')
    for node in nodes:
        x, y = at[node.name]
        bold = " critical" if node.name in on_path else ""
        box = (
            f'<g class="dag-node t-{escape(node.tone)}{bold}" data-node="{escape(node.name)}" '
            f'transform="translate({x} {y})">'
            f'<rect width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text x="10" y="17" class="dag-name">{escape(_fit(node.name, 22))}</text>'
            f'<text x="10" y="33" class="dag-label">{escape(_fit(node.label, 26))}</text>'
            f"<title>{escape(node.name)}: {escape(node.label)}</title></g>"
        )
        if node.href:
            box = f'<a href="{escape(node.href)}">{box}</a>'
        parts.append(box)
    parts.append("</svg>")
    return Markup("".join(parts))


def _fit(text: str, chars: int) -> str:
    """One line in a box: long names end in an ellipsis (the full text is in the node's title)."""
    return text if len(text) <= chars else text[: chars - 1] + "…"
