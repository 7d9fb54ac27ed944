"""The dependency graph: consumer -> API product -> backend (provider). Pure functions.

Built from ApiProduct specs (``backends`` with their criticality, ``consumers`` with the
versions they use), so it is as current as the watch caches: an edit to a product shows in
the matrix on the next reconcile of the backends, within a second.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api.apiproduct import BackendDependency
from ..api.base import default_of
from ..vocabulary import CRITICALITY_EFFECT


@dataclass(frozen=True)
class Edge:
    product: str
    backend: str
    criticality: str


def edges(products: list[dict]) -> list[Edge]:
    out = []
    for product in products:
        for ref in (product.get("spec") or {}).get("backends") or []:
            out.append(
                Edge(
                    product["metadata"]["name"],
                    ref["name"],
                    ref.get("criticality", default_of(BackendDependency, "criticality")),
                )
            )
    return out


def impact(backend: str, products: list[dict]) -> dict:
    """``status.impact`` of a backend: each dependent product with the effect its loss has on it,
    and the consumers of every product it would hurt."""
    by_name = {p["metadata"]["name"]: p for p in products}
    affected = []
    consumers = []
    for edge in sorted(edges(products), key=lambda e: e.product):
        if edge.backend != backend:
            continue
        effect = CRITICALITY_EFFECT.get(edge.criticality, "Unavailable")
        affected.append({"name": edge.product, "criticality": edge.criticality, "effect": effect})
        if effect == "None":
            continue
        spec = by_name[edge.product].get("spec") or {}
        running = [v["name"] for v in spec.get("versions") or [] if v.get("lifecycle") != "retired"]
        for consumer in spec.get("consumers") or []:
            entry = {
                "name": consumer["name"],
                "apiProduct": edge.product,
                "versions": [v for v in consumer.get("versions") or running if v in running],
            }
            if consumer.get("contact"):
                entry["contact"] = dict(consumer["contact"])
            consumers.append(entry)
    return {"apiProducts": affected, "consumers": consumers}


def _node(kind: str, name: str) -> str:
    return f"{kind}_{name}".replace("-", "_").replace(".", "_")


def mermaid(products: list[dict], backends: list[dict]) -> str:
    """The whole graph as a Mermaid flowchart (paste into a runbook or a Markdown file)."""
    lines = ["flowchart LR"]
    states = {b["metadata"]["name"]: (b.get("status") or {}).get("state", "Unknown") for b in backends}
    for name, state in sorted(states.items()):
        lines.append(f'  {_node("backend", name)}[("{name}<br/>{state}")]')
    for product in sorted(products, key=lambda p: p["metadata"]["name"]):
        name = product["metadata"]["name"]
        lines.append(f'  {_node("product", name)}["{name}"]')
        for consumer in (product.get("spec") or {}).get("consumers") or []:
            versions = ",".join(consumer.get("versions") or [])
            label = f"|{versions}|" if versions else ""
            lines.append(
                f'  {_node("consumer", consumer["name"])}(["{consumer["name"]}"]) -->{label} '
                f"{_node('product', name)}"
            )
    for edge in edges(products):
        arrow = {"critical": "==>", "degradable": "-->", "optional": "-.->"}.get(edge.criticality, "-->")
        lines.append(
            f"  {_node('product', edge.product)} {arrow}|{edge.criticality}| {_node('backend', edge.backend)}"
        )
    for name, state in states.items():
        if state == "Unavailable":
            lines.append(f"  style {_node('backend', name)} fill:#f8d7da,stroke:#842029")
    return "\n".join(lines) + "\n"


def dot(products: list[dict], backends: list[dict]) -> str:
    """The same graph in Graphviz DOT."""
    lines = ["digraph pitwall {", "  rankdir=LR;", "  node [fontname=Helvetica];"]
    for backend in sorted(backends, key=lambda b: b["metadata"]["name"]):
        name = backend["metadata"]["name"]
        state = (backend.get("status") or {}).get("state", "Unknown")
        colour = {"Available": "palegreen", "Unavailable": "lightpink", "Maintenance": "lightblue"}.get(
            state, "white"
        )
        lines.append(
            f'  "backend/{name}" [shape=cylinder, style=filled, fillcolor={colour}, '
            f'label="{name}\\n{state}"];'
        )
    for product in sorted(products, key=lambda p: p["metadata"]["name"]):
        name = product["metadata"]["name"]
        lines.append(f'  "product/{name}" [shape=box, label="{name}"];')
        for consumer in (product.get("spec") or {}).get("consumers") or []:
            lines.append(f'  "consumer/{consumer["name"]}" [shape=ellipse, label="{consumer["name"]}"];')
            lines.append(f'  "consumer/{consumer["name"]}" -> "product/{name}";')
    for edge in edges(products):
        style = {"critical": "bold", "degradable": "solid", "optional": "dashed"}.get(
            edge.criticality, "solid"
        )
        lines.append(
            f'  "product/{edge.product}" -> "backend/{edge.backend}" [style={style}, label="{edge.criticality}"];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
