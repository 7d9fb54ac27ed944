"""The dependency graph drawn server-side as SVG: consumers -> API products -> backends.

Three columns, left to right, in the direction requests flow. Products are sorted by name;
backends and consumers are placed at the mean position of the products they connect to (one
barycentre pass), which removes most crossings in a marketplace-shaped graph without a layout
engine. Edge style says how a product depends on a backend (critical: thick, degradable:
solid, optional: dashed); an edge drawn in the outage colour is hurting now. Every node and
edge has a ``<title>`` (tooltip, screen readers); the impact matrix next to it is the table
form of the same facts.
"""

from __future__ import annotations

from .page import esc

NODE_W, NODE_H, ROW, COL_GAP, PAD, TOP = 190, 34, 46, 110, 12, 30
FILL = {
    "operational": "#dafbe1",
    "degraded": "#fff8c5",
    "outage": "#ffebe9",
    "maintenance": "#ddf4ff",
    "unknown": "#eaeef2",
    "none": "#f6f8fa",
}
STROKE = {
    "operational": "#1a7f37",
    "degraded": "#9a6700",
    "outage": "#cf222e",
    "maintenance": "#0969da",
    "unknown": "#57606a",
    "none": "#57606a",
}
EDGE = {"critical": ("2.6", ""), "degradable": ("1.6", ""), "optional": ("1.4", "5 4"), "uses": ("1.2", "")}
COLUMNS = ("consumer", "product", "backend")
HEADINGS = {"consumer": "Consumers", "product": "API products", "backend": "Backends"}


def layout(graph: dict) -> dict[str, tuple[float, float]]:
    """Node id -> (x, y) of its top-left corner."""
    by_kind: dict[str, list[dict]] = {k: [] for k in COLUMNS}
    for node in graph["nodes"]:
        by_kind.setdefault(node["kind"], []).append(node)
    order = {n["id"]: i for i, n in enumerate(sorted(by_kind["product"], key=lambda n: n["label"]))}
    neighbours: dict[str, list[str]] = {}
    for edge in graph["edges"]:
        neighbours.setdefault(edge["from"], []).append(edge["to"])
        neighbours.setdefault(edge["to"], []).append(edge["from"])

    def barycentre(node: dict) -> tuple[float, str]:
        linked = [order[n] for n in neighbours.get(node["id"], []) if n in order]
        return (sum(linked) / len(linked) if linked else float(len(order)), node["label"])

    columns = {
        "product": sorted(by_kind["product"], key=lambda n: n["label"]),
        "consumer": sorted(by_kind["consumer"], key=barycentre),
        "backend": sorted(by_kind["backend"], key=barycentre),
    }
    tallest = max((len(c) for c in columns.values()), default=0)
    positions: dict[str, tuple[float, float]] = {}
    for index, kind in enumerate(COLUMNS):
        nodes = columns[kind]
        offset = (tallest - len(nodes)) * ROW / 2  # centre shorter columns
        for row, node in enumerate(nodes):
            positions[node["id"]] = (PAD + index * (NODE_W + COL_GAP), TOP + offset + row * ROW)
    return positions


def _label(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def render_graph(graph: dict) -> str:
    if not graph["nodes"]:
        return '<p class="none">No products or backends yet.</p>'
    positions = layout(graph)
    rows = max(1, round((max(y for _, y in positions.values()) - TOP) / ROW) + 1)
    width = PAD * 2 + 3 * NODE_W + 2 * COL_GAP
    height = TOP + rows * ROW + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-labelledby="graph-title" font-family="system-ui, DejaVu Sans, '
        f'sans-serif" font-size="13"><title id="graph-title">Dependency graph: consumers, API products and '
        f"backends</title>"
    ]
    for index, kind in enumerate(COLUMNS):
        parts.append(
            f'<text x="{PAD + index * (NODE_W + COL_GAP)}" y="16" font-weight="600" '
            f'fill="currentColor">{HEADINGS[kind]}</text>'
        )
    for edge in graph["edges"]:
        if edge["from"] not in positions or edge["to"] not in positions:
            continue
        (x1, y1), (x2, y2) = positions[edge["from"]], positions[edge["to"]]
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H / 2, y2 + NODE_H / 2
        middle = (x1 + x2) / 2
        width_, dash = EDGE.get(edge["kind"], EDGE["uses"])
        colour = STROKE["outage"] if edge.get("active") else "#6e7781"
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<path class="edge edge-{esc(edge["kind"])}" d="M{x1:g},{y1:g} C{middle:g},{y1:g} '
            f'{middle:g},{y2:g} {x2:g},{y2:g}" fill="none" stroke="{colour}" stroke-width="{width_}"'
            f"{dashes}><title>{esc(edge['label'])}</title></path>"
        )
    for node in graph["nodes"]:
        x, y = positions[node["id"]]
        state = node.get("state", "none")
        parts.append(
            f'<g class="node node-{esc(node["kind"])}" data-node="{esc(node["id"])}" '
            f'data-state="{esc(state)}"><title>{esc(node["title"])}</title>'
            f'<rect x="{x:g}" y="{y:g}" width="{NODE_W}" height="{NODE_H}" '
            f'rx="{17 if node["kind"] == "consumer" else 6}" fill="{FILL.get(state, FILL["none"])}" '
            f'stroke="{STROKE.get(state, STROKE["none"])}" stroke-width="1.5"/>'
            f'<text x="{x + 10:g}" y="{y + 22:g}" fill="#1f2328">{esc(_label(node["label"]))}</text></g>'
        )
    legend_y = height - 10
    parts.append(
        f'<text x="{PAD}" y="{legend_y}" font-size="12" fill="currentColor">Thick: critical; '
        "solid: degradable; dashed: optional; red: failing now.</text>"
    )
    parts.append("</svg>")
    return "".join(parts)
