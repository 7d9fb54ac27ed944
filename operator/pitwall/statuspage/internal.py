"""The internal view's model: what support staff need and the public must not see.

Everything of the public model (every product, public or not, with the same verdicts) plus
the backends with their state and impact matrix, the dependency graph, the probes with their
last failure and its correlation id (to find the request in the API's own logs), the alerts
and the windows with the backends and consumers they affect. Served only on the internal port.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from ..api.alertrule import SEVERITIES
from ..api.apiproduct import BackendDependency
from ..api.base import default_of
from ..api.check import Check
from ..api.incident import IncidentSpec
from ..backends.impact import impact as compute_impact
from ..durations import rfc3339
from ..traffic.view import summary as traffic_summary
from . import health, windows
from .model import ProductView, product_views
from .relations import Key, Snapshot, display_name, environment, is_public, key, probe_target, spec, status

Label = Callable[[Key], str]  # how a (namespace, name) is shown
BACKEND_STATES = {
    "Available": health.OPERATIONAL,
    "Unavailable": health.OUTAGE,
    "Maintenance": health.MAINTENANCE,
}


def internal_status(snapshot: Snapshot, now: datetime) -> dict:
    views = product_views(snapshot, now)
    namespaces = sorted({key(o)[0] for o in [*snapshot.products, *snapshot.backends]})
    label = _labeller(len(namespaces) > 1)
    return {
        "generatedAt": rfc3339(now),
        "namespaces": namespaces,
        "products": [_product(v, label) for v in views],
        "backends": [_backend(b, snapshot) for b in sorted(snapshot.backends, key=key)],
        "matrix": impact_matrix(snapshot, views, label),
        "graph": graph(snapshot, views, label),
        "probes": [_probe(p) for p in sorted(snapshot.probes, key=key)],
        "alerts": _alerts(snapshot),
        "incidents": [
            {
                "namespace": v.key[0],
                "product": v.key[1],
                "severity": v.incident.severity,
                "since": v.incident.since,
                "acknowledged": v.incident.acknowledged,
                "causes": sorted(v.incident.causes),
                "versions": sorted(v.incident.versions),
                "alerts": v.incident.alerts,
            }
            for v in views
            if v.incident
        ],
        "windows": windows.collect(snapshot),
        "incidentObjects": _incident_objects(snapshot, label, now),
    }


def _incident_objects(snapshot: Snapshot, label: Label, now: datetime) -> list[dict]:
    """Incidents (the kind) not resolved, or resolved in the last 7 days: with each update's
    author and the notices sent (who was reached, who failed). Newest first."""
    out = []
    recent = rfc3339(now - timedelta(days=7))
    for incident in snapshot.incidents:
        sp, st = spec(incident), status(incident)
        if st.get("phase") == "Resolved" and (st.get("resolvedAt") or "") < recent:
            continue
        authors = {a.get("index"): a for a in st.get("updateAuthors") or []}
        out.append(
            {
                "name": label(key(incident)),
                "type": sp.get("type", default_of(IncidentSpec, "type")),
                "phase": st.get("phase"),
                "status": sp.get("status"),
                "impact": st.get("impact"),
                "cause": st.get("cause"),
                "affected": st.get("affected") or sp.get("products") or [],
                "startedAt": st.get("startedAt"),
                "resolvedAt": st.get("resolvedAt"),
                "resolvedBy": st.get("resolvedBy"),
                "updates": [
                    {
                        "at": u.get("at") or (authors.get(i) or {}).get("at"),
                        "status": u.get("status"),
                        "author": u.get("author") or (authors.get(i) or {}).get("author"),
                        "message": u.get("message"),
                    }
                    for i, u in enumerate(sp.get("updates") or [])
                ],
                "notices": [
                    {
                        "event": n.get("event"),
                        "state": n.get("state"),
                        "at": n.get("at"),
                        "recipients": n.get("recipients") or [],
                        "failed": n.get("failed") or [],
                    }
                    for n in st.get("notices") or []
                ],
            }
        )
    out.sort(key=lambda i: i.get("startedAt") or "", reverse=True)
    return out


def _labeller(qualified: bool) -> Label:
    return (lambda k: f"{k[0]}/{k[1]}") if qualified else (lambda k: k[1])


def _verdict(verdict: health.Verdict) -> dict:
    return {"state": verdict.state, "reason": verdict.text, "detail": verdict.detail, "since": verdict.since}


def _product(view: ProductView, label: Label) -> dict:
    product = view.product
    st = status(product)
    return {
        "namespace": view.key[0],
        "name": view.key[1],
        "label": label(view.key),
        "displayName": display_name(product),
        "public": is_public(product),
        "environment": environment(product),
        "owner": dict(spec(product).get("owner") or {}),
        **_verdict(view.verdict),
        "phase": st.get("state"),
        "readyVersions": st.get("readyVersions"),
        "versions": [
            {
                "name": v.name,
                "lifecycle": v.lifecycle,
                "sunsetAt": v.sunset_at,
                **_verdict(v.verdict),
                "probes": [key(p)[1] for p in v.probes],
            }
            for v in view.versions
        ],
        "backends": list(st.get("backends") or []),
        "uptime": {"percent": view.uptime["percent"], "ok": view.uptime["ok"], "total": view.uptime["total"]},
        "traffic": st.get("traffic"),  # real traffic from Prometheus (spec.traffic), as written
        "trafficSummary": traffic_summary(st.get("traffic")),
    }


def _backend(backend: dict, snapshot: Snapshot) -> dict:
    st = status(backend)
    probe = st.get("probe") or {}
    return {
        "namespace": key(backend)[0],
        "name": key(backend)[1],
        "displayName": spec(backend).get("displayName") or key(backend)[1],
        "owner": dict(spec(backend).get("owner") or {}),
        "state": st.get("state", "Unknown"),
        "since": st.get("lastTransitionAt"),
        "consecutiveFailures": probe.get("consecutiveFailures"),
        "lastRun": probe.get("lastRun"),
        "lastFailure": probe.get("lastFailure"),
        "impact": _impact(backend, snapshot),
    }


def _impact(backend: dict, snapshot: Snapshot) -> dict:
    """``status.impact`` as the Backend reconciler wrote it; computed from the products' specs
    (the same pure function) while it has not been written yet."""
    written: dict | None = status(backend).get("impact")
    if written:
        return written
    namespace, name = key(backend)
    return compute_impact(name, [p for p in snapshot.products if key(p)[0] == namespace])


def impact_matrix(snapshot: Snapshot, views: list[ProductView], label: Label) -> dict:
    """Rows: backends; columns: products; a cell: how the product depends on the backend and
    whether that hurts now (``active``: the backend is unavailable and the effect is not None)."""
    columns = [v.key for v in views]
    rows = []
    for backend in sorted(snapshot.backends, key=key):
        namespace, _ = key(backend)
        state = status(backend).get("state", "Unknown")
        effects = {e.get("name"): e for e in _impact(backend, snapshot).get("apiProducts") or []}
        cells = []
        for column in columns:
            entry = effects.get(column[1]) if column[0] == namespace else None
            cells.append(
                None
                if entry is None
                else {
                    "criticality": entry.get("criticality", default_of(BackendDependency, "criticality")),
                    "effect": entry.get("effect", "None"),
                    "active": state == "Unavailable" and entry.get("effect", "None") != "None",
                }
            )
        rows.append({"backend": label(key(backend)), "state": state, "cells": cells})
    return {"columns": [label(c) for c in columns], "rows": rows}


def graph(snapshot: Snapshot, views: list[ProductView], label: Label) -> dict:
    """Nodes (consumers, products, backends) and edges (consumer -> product with the versions
    it uses, product -> backend with its criticality)."""
    nodes: dict[str, dict] = {}
    edges = []
    backends = {key(b): b for b in snapshot.backends}

    def node_id(kind: str, k: Key) -> str:
        return f"{kind}:{k[0]}/{k[1]}"

    for view in views:
        pid = node_id("product", view.key)
        nodes[pid] = {
            "id": pid,
            "kind": "product",
            "label": label(view.key),
            "state": view.verdict.state,
            "title": f"{display_name(view.product)}: {health.LABELS[view.verdict.state]}",
        }
        for consumer in spec(view.product).get("consumers") or []:
            ckey = (view.key[0], consumer.get("name", ""))
            cid = node_id("consumer", ckey)
            nodes.setdefault(
                cid,
                {
                    "id": cid,
                    "kind": "consumer",
                    "label": label(ckey),
                    "state": "none",
                    "title": f"consumer {consumer.get('name', '')}",
                },
            )
            edges.append(
                {
                    "from": cid,
                    "to": pid,
                    "kind": "uses",
                    "label": ",".join(consumer.get("versions") or []) or "all versions",
                    "active": False,
                }
            )
        for ref in spec(view.product).get("backends") or []:
            bkey = (view.key[0], ref.get("name", ""))
            backend = backends.get(bkey)
            state = status(backend).get("state", "Unknown") if backend else "NotFound"
            bid = node_id("backend", bkey)
            nodes.setdefault(
                bid,
                {
                    "id": bid,
                    "kind": "backend",
                    "label": label(bkey),
                    "state": BACKEND_STATES.get(state, health.UNKNOWN),
                    "title": f"backend {bkey[1]}: {state}",
                },
            )
            criticality = ref.get("criticality", default_of(BackendDependency, "criticality"))
            edges.append(
                {
                    "from": pid,
                    "to": bid,
                    "kind": criticality,
                    "label": criticality,
                    "active": state == "Unavailable" and criticality != "optional",
                }
            )
    for bkey, backend in backends.items():  # backends no product uses yet
        bid = node_id("backend", bkey)
        state = status(backend).get("state", "Unknown")
        nodes.setdefault(
            bid,
            {
                "id": bid,
                "kind": "backend",
                "label": label(bkey),
                "state": BACKEND_STATES.get(state, health.UNKNOWN),
                "title": f"backend {bkey[1]}: {state}",
            },
        )
    return {"nodes": list(nodes.values()), "edges": edges}


def _probe(probe: dict) -> dict:
    st = status(probe)
    target = probe_target(probe)
    spec_target = spec(probe).get("target") or {}
    return {
        "namespace": key(probe)[0],
        "name": key(probe)[1],
        "state": st.get("state", "Unknown"),
        "product": target[0] if target else None,
        "version": target[1] if target else None,
        "target": st.get("target") or spec_target.get("url") or "",
        "interval": spec(probe).get("interval", default_of(Check, "interval")),
        "consecutiveFailures": st.get("consecutiveFailures", 0),
        "since": st.get("lastTransitionAt"),
        "lastRun": st.get("lastRun"),
        "lastFailure": st.get("lastFailure"),
        "availability": st.get("availability") or {},
        "latency": st.get("latency") or {},
    }


def _alerts(snapshot: Snapshot) -> list[dict]:
    """Open alerts of every severity: pending, firing and held (in maintenance)."""
    out = []
    for rule in snapshot.rules:
        for alert in status(rule).get("alerts") or []:
            if alert.get("state") not in ("pending", "firing", "held"):
                continue
            out.append(
                {
                    "namespace": key(rule)[0],
                    "rule": key(rule)[1],
                    "severity": alert.get("severity") or spec(rule).get("severity"),
                    "key": alert.get("key", ""),
                    "object": alert.get("object") or {},
                    "subject": alert.get("subject", ""),
                    "state": alert.get("state"),
                    "since": alert.get("since") or alert.get("pendingSince"),
                    "ackDeadline": alert.get("ackDeadline"),
                    "acknowledgedBy": alert.get("acknowledgedBy"),
                }
            )
    order = {s: i for i, s in enumerate(SEVERITIES)}
    out.sort(key=lambda a: (a["state"] != "firing", order.get(a["severity"], 9), a["since"] or ""))
    return out


__all__ = ["graph", "impact_matrix", "internal_status"]
