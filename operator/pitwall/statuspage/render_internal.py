"""The internal view as HTML, from the dict :func:`.internal.internal_status` returns.

Support staff land here from an alert: open incidents and alerts first, then products (every
one, public or not, with the detail behind each verdict), backends with what their loss
does, the impact matrix, the dependency graph, probes with their last failure and its
correlation id, and windows. Tables scroll sideways on a phone instead of squeezing.
"""

from __future__ import annotations

from .graph_svg import render_graph
from .health import LABELS
from .page import document, esc, icon, when

BACKEND_STATE = {"Available": "operational", "Unavailable": "outage", "Maintenance": "maintenance"}
PROBE_STATE = {"Up": "operational", "Down": "outage", "Maintenance": "maintenance"}


def render_internal(model: dict, *, title: str = "API status", refresh: int = 15) -> str:
    main = "\n".join([
        '<h1 class="page-title">Internal view</h1>',
        _section("alerts", "Open alerts", _alerts(model["alerts"])),
        _section("products", "API products", _products(model["products"])),
        _section("backends", "Backends", _backends(model["backends"])),
        _section("matrix", "Impact matrix", _matrix(model["matrix"])),
        _section("graph", "Dependency graph", f'<div class="graph">{render_graph(model["graph"])}</div>'),
        _section("probes", "Probes", _probes(model["probes"])),
        _section("windows", "Maintenance windows", _windows(model["windows"])),
    ])
    footer = (f'<p>Last updated <time id="updated" datetime="{esc(model["generatedAt"])}">'
              f'{esc(model["generatedAt"])}</time>; refreshes every {refresh} seconds. '
              'JSON: <code>/api/v1/internal</code>. Not for the public: names, hosts and correlation ids.</p>')
    return document(title=f"Internal - {title}", heading=f"{title} (internal)", nav="", main=main,
                    footer=footer, refresh=refresh, wide=True)


def _section(ident: str, heading: str, body: str) -> str:
    return f'<section id="{ident}" aria-labelledby="h-{ident}"><h2 id="h-{ident}">{heading}</h2>\n{body}</section>'


def _table(headers: list[str], rows: list[list[str]], caption: str, empty: str) -> str:
    if not rows:
        return f'<p class="none">{esc(empty)}</p>'
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<div class="table-wrap"><table><caption class="vh">{esc(caption)}</caption>'
            f'<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')


def _state(state: str, text: str | None = None) -> str:
    return f'<span class="state-text s-{esc(state)}">{icon(state)} {esc(text or LABELS.get(state, state))}</span>'


def _failure(failure: dict | None) -> str:
    if not failure:
        return ""
    parts = [when(failure.get("at"))]
    if failure.get("step"):
        parts.append(f'step <code>{esc(failure["step"])}</code>')
    if failure.get("httpStatus"):
        parts.append(f'HTTP {esc(failure["httpStatus"])}')
    if failure.get("reason"):
        parts.append(esc(failure["reason"]))
    if failure.get("correlationId"):
        parts.append(f'correlation id <code class="cid">{esc(failure["correlationId"])}</code>')
    return "<br>".join(p for p in parts if p)


def _alerts(alerts: list[dict]) -> str:
    rows = [[esc(a["severity"]), esc(a["state"]), esc(a["subject"]),
             f'{esc(a["object"].get("kind", ""))} <code>{esc(a["object"].get("name", ""))}</code>',
             f'<code>{esc(a["rule"])}</code>', f'<code>{esc(a["key"])}</code>', when(a.get("since")),
             esc(a.get("acknowledgedBy") or "")] for a in alerts]
    return _table(["Severity", "State", "Subject", "Object", "Rule", "Key", "Since", "Acknowledged by"], rows,
                  "Open alerts", "No open alerts.")


def _products(products: list[dict]) -> str:
    rows = []
    for p in products:
        versions = "<br>".join(
            f'<strong>{esc(v["name"])}</strong> {_state(v["state"])}: {esc(v["reason"])}'
            + (f' <span class="muted">({esc(v["detail"])})</span>' if v.get("detail") else "")
            + (f'<br><span class="muted">probes: {esc(", ".join(v["probes"]))}</span>' if v["probes"] else "")
            for v in p["versions"])
        backends = "<br>".join(f'<code>{esc(b.get("name"))}</code> {esc(b.get("criticality"))}: {esc(b.get("state"))}'
                               for b in p["backends"])
        uptime = "no data" if p["uptime"]["percent"] is None else f'{p["uptime"]["percent"]:g}%'
        rows.append([f'<code>{esc(p["label"])}</code><br>{esc(p["displayName"])}',
                     _state(p["state"]), "public" if p["public"] else "internal", esc(p["environment"]),
                     versions, backends, esc(uptime), esc((p.get("owner") or {}).get("team", ""))])
    return _table(["Product", "State", "Page", "Env", "Versions", "Backends", "90-day uptime", "Owner"], rows,
                  "API products", "No API products.")


def _backends(backends: list[dict]) -> str:
    rows = []
    for b in backends:
        hurt = ", ".join(f'{e["name"]} ({e["effect"]})' for e in b["impact"].get("apiProducts") or []
                         if e.get("effect") != "None")
        consumers = ", ".join(sorted({c["name"] for c in b["impact"].get("consumers") or []}))
        owner = b.get("owner") or {}
        rows.append([f'<code>{esc(b["name"])}</code><br>{esc(b["displayName"])}',
                     _state(BACKEND_STATE.get(b["state"], "unknown"), b["state"]),
                     when(b.get("since")), esc(hurt or "none"), esc(consumers or "none"),
                     _failure(b.get("lastFailure")), esc(" / ".join(v for v in (owner.get("team"), owner.get("contact")) if v))])
    return _table(["Backend", "State", "Since", "Products hurt when down", "Consumers affected", "Last failure",
                   "Owner"], rows, "Backends", "No backends.")


def _matrix(matrix: dict) -> str:
    if not matrix["rows"] or not matrix["columns"]:
        return '<p class="none">No backends or products.</p>'
    head = "".join(f'<th scope="col"><code>{esc(c)}</code></th>' for c in matrix["columns"])
    rows = []
    for row in matrix["rows"]:
        cells = []
        for cell in row["cells"]:
            if cell is None:
                cells.append('<td class="cell-none">-</td>')
            else:
                active = " active" if cell["active"] else ""
                cells.append(f'<td class="cell{active}" title="{esc(cell["criticality"])}">{esc(cell["effect"])}'
                             f'<br><span class="muted">{esc(cell["criticality"])}</span></td>')
        state = BACKEND_STATE.get(row["state"], "unknown")
        rows.append(f'<tr><th scope="row"><code>{esc(row["backend"])}</code> {_state(state, row["state"])}</th>'
                    f'{"".join(cells)}</tr>')
    return (f'<p class="meta">Effect on each product when the backend is down; highlighted: happening now.</p>'
            f'<div class="table-wrap"><table><thead><tr><th scope="col">Backend</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _probes(probes: list[dict]) -> str:
    rows = []
    for p in probes:
        what = f'{p["product"]} {p["version"] or ""}' if p["product"] else ""
        rows.append([f'<code>{esc(p["name"])}</code>', _state(PROBE_STATE.get(p["state"], "unknown"), p["state"]),
                     esc(what), f'<code>{esc(p["target"])}</code>', esc(p["consecutiveFailures"]),
                     when((p.get("lastRun") or {}).get("at")), _failure(p.get("lastFailure")),
                     esc(", ".join(f"{k} {v}%" for k, v in (p.get("availability") or {}).items()))])
    return _table(["Probe", "State", "Product", "Target", "Failures in a row", "Last run", "Last failure",
                   "Availability"], rows, "Probes", "No probes.")


def _windows(windows: list[dict]) -> str:
    rows = [[f'<code>{esc(w["name"])}</code>', esc(w["phase"]), esc(w["reason"]), when(w["start"]), when(w["end"]),
             esc(", ".join(f'{p["name"]} {",".join(p["versions"])} ({p["effect"]})' for p in w["products"])),
             esc(", ".join(w["backends"])), esc(", ".join(w["consumers"]))] for w in windows]
    return _table(["Window", "Phase", "Reason", "Start", "End", "Products", "Backends", "Consumers"], rows,
                  "Maintenance windows", "No active or scheduled windows.")
