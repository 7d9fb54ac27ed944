"""The status page model: pure functions from a :class:`Snapshot` to JSON-ready dicts.

:func:`product_views` computes, once per product, everything both pages show (the verdict of
each version, uptime bars, the incident, the windows); :func:`public_status` projects it for
third parties and :mod:`.internal` for the marketplace team, so the two never disagree about
a state.

What the public projection may contain is an allowlist, not a blocklist: product and version
names, display name and description (through :class:`.redact.Redactor`), states with reasons
from a fixed vocabulary, times, uptime counts, incident texts composed here and window reasons
(redacted). Backends, consumers, probes, rules, namespaces, URLs, hosts, owners and
correlation ids are never copied into it. Only products with ``spec.public: true`` appear.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..api.apiproduct import ENVIRONMENTS as ENVIRONMENTS
from ..api.apiproduct import Version
from ..api.base import default_of
from ..durations import rfc3339
from . import health, history, incidents, uptime, windows
from .health import Verdict
from .redact import Redactor
from .relations import (
    Key,
    Snapshot,
    display_name,
    environment,
    is_public,
    key,
    probes_by_product,
    running_versions,
    spec,
    window_entries,
)


@dataclass
class VersionView:
    name: str
    lifecycle: str
    sunset_at: str | None
    verdict: Verdict
    probes: list[dict]


@dataclass
class ProductView:
    product: dict
    verdict: Verdict
    versions: list[VersionView]
    uptime: dict
    probes: list[dict]
    incident: incidents.Incident | None = None
    windows: list[dict] = field(default_factory=list)  # rows of windows.collect listing it

    @property
    def key(self) -> Key:
        return key(self.product)


def product_views(snapshot: Snapshot, now: datetime) -> list[ProductView]:
    """Every product (public or not), sorted by display name."""
    if not snapshot.products:
        return []  # the incident pass runs every 2 s: with no product, 5,000 probes cost it nothing
    by_product = probes_by_product(snapshot)
    found = incidents.collect(snapshot)
    window_rows = windows.collect(snapshot)
    views = []
    for product in snapshot.products:
        namespace, name = key(product)
        probes = by_product.get((namespace, name), [])
        active = window_entries(snapshot, product)
        versions = []
        for version in running_versions(product):
            mine = [p for p, v in probes if v is None or v == version["name"]]
            versions.append(
                VersionView(
                    version["name"],
                    version.get("lifecycle", default_of(Version, "lifecycle")),
                    version.get("sunsetAt"),
                    health.version_verdict(product, version, mine, active),
                    mine,
                )
            )
        views.append(
            ProductView(
                product=product,
                verdict=health.worst([v.verdict for v in versions]),
                versions=versions,
                uptime=uptime.bars([p for p, _ in probes], now.date()),
                probes=[p for p, _ in probes],
                incident=found.get((namespace, name)) or _unpaged_outage((namespace, name), versions),
                windows=[
                    w
                    for w in window_rows
                    if w["namespace"] == namespace and any(p["name"] == name for p in w["products"])
                ],
            )
        )
    views.sort(key=lambda v: (display_name(v.product).lower(), v.key))
    return views


def _unpaged_outage(product: Key, versions: list[VersionView]) -> incidents.Incident | None:
    """An outage is an incident on the public page even when no AlertRule pages anyone for it:
    visitors see the same "Outage" in the product's card, and "No current incidents" beside it
    would contradict it. (Degraded service without an alert stays a state, not an incident.)"""
    down = [v for v in versions if v.verdict.state == health.OUTAGE]
    if not down:
        return None
    since = sorted(v.verdict.since for v in down if v.verdict.since)
    return incidents.Incident(
        product,
        "critical",
        since[0] if since else None,
        versions={v.name for v in down} if len(down) < len(versions) else set(),
        causes={health.CAUSE_OF_REASON.get(v.verdict.reason, "product") for v in down},
    )


def public_ids(views: list[ProductView]) -> dict[Key, str]:
    """The public id of each public product: its name, or ``namespace.name`` when two
    namespaces publish the same name (the only case the namespace is shown)."""
    names: dict[str, int] = {}
    for view in views:
        names[view.key[1]] = names.get(view.key[1], 0) + 1
    return {v.key: v.key[1] if names[v.key[1]] == 1 else f"{v.key[0]}.{v.key[1]}" for v in views}


def public_status(snapshot: Snapshot, now: datetime, env: str | None = None) -> dict:
    """The whole public page (``/api/v1/status``), optionally for one environment."""
    views = [v for v in product_views(snapshot, now) if is_public(v.product)]
    ids = public_ids(views)
    present = sorted({environment(v.product) for v in views})
    if env:
        views = [v for v in views if environment(v.product) == env]
    redact = Redactor(snapshot)
    products = [_public_product(v, ids[v.key], redact) for v in views]
    state, headline = health.overall(
        [v["state"] for p in products for v in p["versions"]] or [p["state"] for p in products]
    )
    return {
        "generatedAt": rfc3339(now),
        "environment": env,
        "environments": present,
        "overall": {
            "state": state,
            "label": health.LABELS[state],
            "headline": headline,
            "affected": _affected(products),
        },
        "products": products,
        "incidents": _public_incidents(views, ids, redact),
        "maintenance": _public_windows(views, ids, redact),
        # Incidents (the kind) of the last 90 days, open ones first: the page's history and feed.
        "history": history.public_history(snapshot, {v.key: ids[v.key] for v in views}, redact, now),
    }


def public_product(snapshot: Snapshot, now: datetime, product_id: str) -> dict | None:
    """One public product with its incidents and windows (``/api/v1/products/{id}``)."""
    return select_product(public_status(snapshot, now), product_id)


def select_product(page: dict, product_id: str) -> dict | None:
    """The part of a built public page about one product, or None when it is not on it."""
    product = next((p for p in page["products"] if p["id"] == product_id), None)
    if product is None:
        return None
    mine = [
        w
        for group in page["maintenance"].values()
        for w in group
        if any(p["id"] == product_id for p in w["products"])
    ]
    return {
        **product,
        "generatedAt": page["generatedAt"],
        "incidents": [i for i in page["incidents"] if i["product"] == product_id],
        "history": [
            i for i in page.get("history") or [] if any(p["id"] == product_id for p in i["products"])
        ],
        "maintenance": {
            "active": [w for w in mine if w["phase"] == "active"],
            "upcoming": [w for w in mine if w["phase"] == "scheduled"],
        },
    }


def _public_product(view: ProductView, product_id: str, redact: Redactor) -> dict:
    product_spec = spec(view.product)
    return {
        "id": product_id,
        "displayName": redact(display_name(view.product)),
        "description": redact(product_spec.get("description", "")),
        "environment": environment(view.product),
        **_public_verdict(view.verdict),
        "stateLabel": health.label(view.verdict.state, [v.verdict.state for v in view.versions]),
        "versions": [
            {"name": v.name, "lifecycle": v.lifecycle, "sunsetAt": v.sunset_at, **_public_verdict(v.verdict)}
            for v in view.versions
        ],
        "uptime": view.uptime,
    }


def _affected(products: list[dict]) -> list[str]:
    """``Payments API v2: Outage``, one line per product or version that is not operational."""
    out = []
    for product in products:
        bad = [v for v in product["versions"] if v["state"] not in (health.OPERATIONAL, health.UNKNOWN)]
        if bad and len(bad) == len(product["versions"]) and len({v["state"] for v in bad}) == 1:
            out.append(f"{product['displayName']}: {bad[0]['stateLabel']}")
        else:
            out.extend(f"{product['displayName']} {v['name']}: {v['stateLabel']}" for v in bad)
    return out


def _public_verdict(verdict: Verdict) -> dict:
    return {
        "state": verdict.state,
        "stateLabel": health.LABELS[verdict.state],
        "reason": verdict.text,
        "since": verdict.since,
    }


def _public_incidents(views: list[ProductView], ids: dict[Key, str], redact: Redactor) -> list[dict]:
    out = []
    for view in views:
        incident = view.incident
        if incident is None:
            continue
        name = redact(display_name(view.product))
        out.append(
            {
                "product": ids[view.key],
                "displayName": name,
                "severity": incident.severity,
                "since": incident.since,
                "versions": sorted(incident.versions),
                "state": view.verdict.state,
                **incidents.public_text(incident, name, view.verdict.state),
            }
        )
    out.sort(key=lambda i: (incidents.SEVERE.index(i["severity"]), i["since"] or "", i["product"]))
    return out


def _public_windows(views: list[ProductView], ids: dict[Key, str], redact: Redactor) -> dict:
    shown = {v.key: v for v in views}
    rows: dict[tuple, dict] = {}
    for view in views:
        for row in view.windows:
            ident = (row["namespace"], row["name"])
            if ident in rows:
                continue
            products = []
            for entry in row["products"]:
                target = shown.get((row["namespace"], entry["name"]))
                if target is None:
                    continue
                products.append(
                    {
                        "id": ids[target.key],
                        "displayName": redact(display_name(target.product)),
                        "versions": entry["versions"],
                        "impact": "degraded" if entry["effect"] == "Degraded" else "unavailable",
                    }
                )
            rows[ident] = {
                "title": redact(row["reason"]) or "Scheduled maintenance",
                "phase": "active" if row["phase"] == windows.ACTIVE else "scheduled",
                "start": row["start"],
                "end": row["end"],
                "emergency": row["emergency"],
                "products": products,
            }
    ordered = sorted(rows.values(), key=lambda w: (w["start"] or "", w["title"]))
    return {
        "active": [w for w in ordered if w["phase"] == "active"],
        "upcoming": [w for w in ordered if w["phase"] == "scheduled"],
    }


__all__ = [
    "ENVIRONMENTS",
    "ProductView",
    "VersionView",
    "product_views",
    "public_ids",
    "public_product",
    "public_status",
    "select_product",
]
