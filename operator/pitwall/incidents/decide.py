"""When an incident opens, continues, recovers and resolves: pure decisions, no I/O.

Evidence comes from the status page's verdicts (``statuspage.health``): a public product with
a version ``degraded`` or ``outage`` has an incident. Flapping must not open a new incident
each time, so recovery is a phase: once every version is operational the incident is
``Recovering``; it resolves after the product's ``incidents.mergeWindow`` of uninterrupted
health, and a relapse within it continues the same incident (Open again). ``maintenance`` and
``unknown`` neither open nor recover anything: planned work is announced by its window.

People have the last word: ``spec.status: resolved`` resolves any incident at once, and an
outage that goes on after a person resolved it does not reopen one (until it was operational
again). Incidents opened by hand (no ``pitwall.dev/opened-by`` label) are never resolved by
Pitwall.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .. import GROUP
from ..durations import parse_time, rfc3339
from ..statuspage.health import REASONS
from ..vocabulary import LABEL_PRODUCT as LABEL_PRODUCT  # re-exported: decide.LABEL_* are its callers' names
from ..vocabulary import LABEL_WINDOW as LABEL_WINDOW

OPENED_BY = f"{GROUP}/opened-by"  # label: "pitwall" on the incidents Pitwall opened
PITWALL = "pitwall"
OPEN, RECOVERING, RESOLVED = "Open", "Recovering", "Resolved"
DEGRADED, OUTAGE, MAINTENANCE = "degraded", "outage", "maintenance"
BAD = (DEGRADED, OUTAGE)
IMPACT_RANK = {MAINTENANCE: 0, DEGRADED: 1, OUTAGE: 2}
INCIDENT, EMERGENCY = "incident", "emergency-maintenance"


@dataclass(frozen=True)
class Evidence:
    """What the status page says about one public product now."""

    namespace: str
    product: str
    display_name: str
    bad: dict[str, tuple[str, str, str | None]]  # version -> (state, reason code, since)
    operational: bool  # every version operational
    merge_window: float  # seconds
    opens: bool = True  # spec.incidents.open


@dataclass
class Action:
    """``create``: a new Incident (``body``) with its first ``status``; ``status``: a status write."""

    kind: str
    namespace: str
    name: str
    status: dict
    body: dict = field(default_factory=dict)
    event: tuple[str, str] | None = None  # (reason, message) for a Kubernetes Event


def spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def status(obj: dict) -> dict:
    return obj.get("status") or {}


def labels(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("labels") or {}


def is_resolved(incident: dict) -> bool:
    return status(incident).get("phase") == RESOLVED


def opened_by_pitwall(incident: dict) -> bool:
    return labels(incident).get(OPENED_BY) == PITWALL


def incident_name(product: str, at: datetime) -> str:
    """``payments-20261129-151500``: unique per start second, sorted by time under a product."""
    return f"{product}-{at:%Y%m%d-%H%M%S}"


def cause_text(display_name: str, bad: dict[str, tuple[str, str, str | None]]) -> str:
    """The cause in consumer language: fixed phrases per reason, never backend or host names."""
    by_reason: dict[str, list[str]] = {}
    for version, (_, reason, _) in sorted(bad.items()):
        by_reason.setdefault(reason, []).append(version)
    parts = [
        f"{display_name} {', '.join(versions)}: {REASONS.get(reason, 'Service disruption')}"
        for reason, versions in by_reason.items()
    ]
    return "; ".join(parts) + "."


def worst(bad: dict[str, tuple[str, str, str | None]]) -> str:
    return OUTAGE if any(state == OUTAGE for state, _, _ in bad.values()) else DEGRADED


def plan_product(ev: Evidence, mine: list[dict], now: datetime) -> list[Action]:
    """Actions for one public product. ``mine``: the Incidents that name it."""
    auto = [i for i in mine if opened_by_pitwall(i) and spec(i).get("type", INCIDENT) == INCIDENT]
    current = next((i for i in auto if not is_resolved(i) and spec(i).get("status") != "resolved"), None)
    if ev.bad:
        if current is not None:
            return _continue(current, ev, now)
        if not ev.opens or _resolved_by_person_during(auto, ev, now):
            return []
        return [_open(ev, now)]
    if current is None or not ev.operational:
        return []
    st = status(current)
    if st.get("phase") != RECOVERING:
        return [
            Action(
                "status",
                ev.namespace,
                _name(current),
                {**st, "phase": RECOVERING, "recoveredAt": rfc3339(now)},
            )
        ]
    recovered = _time(st.get("recoveredAt")) or now
    if now - recovered < timedelta(seconds=ev.merge_window):
        return []
    return [
        Action(
            "status",
            ev.namespace,
            _name(current),
            resolved(st, now, PITWALL, f"{ev.display_name} is operating normally again."),
            event=("IncidentResolved", f"{ev.display_name} operational for {int(ev.merge_window)}s"),
        )
    ]


def resolved(st: dict, now: datetime, by: str, resolution: str) -> dict:
    return {
        **st,
        "phase": RESOLVED,
        "resolvedAt": rfc3339(now),
        "resolvedBy": by[:256],
        "resolution": resolution[:1024],
    }


def _open(ev: Evidence, now: datetime) -> Action:
    since = [t for t in (_time(s) for _, _, s in ev.bad.values()) if t is not None and t <= now]
    started = min(since) if since else now
    name = incident_name(ev.product, now)
    body = {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {
            "name": name,
            "namespace": ev.namespace,
            "labels": {OPENED_BY: PITWALL, LABEL_PRODUCT: ev.product},
        },
        "spec": {
            "type": INCIDENT,
            "products": [{"name": ev.product, "versions": sorted(ev.bad)}],
            "status": "investigating",
        },
    }
    impact = worst(ev.bad)
    st = {
        "phase": OPEN,
        "impact": impact,
        "cause": cause_text(ev.display_name, ev.bad),
        "affected": [{"name": ev.product, "versions": sorted(ev.bad)}],
        "startedAt": rfc3339(started),
    }
    return Action(
        "create",
        ev.namespace,
        name,
        st,
        body,
        event=("IncidentOpened", f"{ev.display_name}: {impact} ({', '.join(sorted(ev.bad))})"),
    )


def _continue(current: dict, ev: Evidence, now: datetime) -> list[Action]:
    st = status(current)
    impact = worst(ev.bad)
    if IMPACT_RANK.get(st.get("impact") or DEGRADED, 1) > IMPACT_RANK[impact]:
        impact = st["impact"]
    seen = {v for a in st.get("affected") or [] for v in a.get("versions") or []}
    new = {
        **st,
        "phase": OPEN,
        "recoveredAt": None,
        "impact": impact,
        "cause": cause_text(ev.display_name, ev.bad),
        "affected": [{"name": ev.product, "versions": sorted(seen | set(ev.bad))}],
    }
    if not st.get("startedAt"):
        new["startedAt"] = rfc3339(now)
    if all(st.get(k) == v for k, v in new.items()):
        return []
    return [Action("status", ev.namespace, _name(current), new)]


def _resolved_by_person_during(auto: list[dict], ev: Evidence, now: datetime) -> bool:
    """A person resolved this product's last incident while the outage it is about went on."""
    done = [i for i in auto if is_resolved(i) and status(i).get("resolvedBy") not in (None, PITWALL)]
    if not done:
        return False
    last = max(done, key=lambda i: status(i).get("resolvedAt") or "")
    at = _time(status(last).get("resolvedAt"))
    if at is None:
        return False
    since = [t for t in (_time(s) for _, _, s in ev.bad.values()) if t is not None]
    if since:
        return min(since) <= at
    return now - at < timedelta(seconds=ev.merge_window)


def plan_orphan(incident: dict, shown: set[tuple[str, str]], now: datetime) -> list[Action]:
    """An open incident Pitwall opened for a product that is gone or no longer public: resolved
    (nothing would ever resolve it otherwise)."""
    meta = incident.get("metadata") or {}
    namespace = meta.get("namespace", "")
    if (
        not opened_by_pitwall(incident)
        or spec(incident).get("type", INCIDENT) != INCIDENT
        or is_resolved(incident)
    ):
        return []
    products = [p.get("name", "") for p in spec(incident).get("products") or []]
    if any((namespace, p) in shown for p in products):
        return []
    return [
        Action(
            "status",
            namespace,
            meta.get("name", ""),
            resolved(status(incident), now, PITWALL, "The API is no longer listed on this status page."),
        )
    ]


def plan_person(incident: dict, now: datetime) -> Action | None:
    """``spec.status: resolved`` (a person's word) resolves an incident not yet resolved;
    an incident opened by hand gets its first status."""
    st, sp = status(incident), spec(incident)
    meta = incident.get("metadata") or {}
    if sp.get("status") == "resolved" and st.get("phase") != RESOLVED:
        last = next((u for u in reversed(sp.get("updates") or []) if u.get("status") == "resolved"), None)
        by = (last or {}).get("author") or author_of_updates(incident) or "an engineer"
        text = (last or {}).get("message") or "This incident has been resolved."
        return Action(
            "status",
            meta.get("namespace", ""),
            meta.get("name", ""),
            resolved(st, now, by, text),
            event=("IncidentResolved", f"resolved by {by}"),
        )
    if not st.get("phase") and not opened_by_pitwall(incident):
        impact = MAINTENANCE if sp.get("type") == EMERGENCY else DEGRADED
        return Action(
            "status",
            meta.get("namespace", ""),
            meta.get("name", ""),
            {
                "phase": OPEN,
                "impact": impact,
                "affected": sp.get("products") or [],
                "startedAt": meta.get("creationTimestamp") or rfc3339(now),
            },
        )
    return None


def update_authors(incident: dict, now: datetime) -> list[dict] | None:
    """``status.updateAuthors`` with an entry for every update that carries no author or time
    (added with kubectl): its field manager and when Pitwall first saw it. None: unchanged."""
    known = {a.get("index"): a for a in status(incident).get("updateAuthors") or []}
    updates = spec(incident).get("updates") or []
    wanted = dict(known)
    manager = None
    for index, update in enumerate(updates):
        if (update.get("author") and update.get("at")) or index in known:
            continue
        manager = manager or author_of_updates(incident) or "unknown"
        wanted[index] = {
            "index": index,
            "author": update.get("author") or manager,
            "at": update.get("at") or rfc3339(now),
        }
    wanted = {i: a for i, a in wanted.items() if isinstance(i, int) and i < len(updates)}
    if wanted == known:
        return None
    return [wanted[i] for i in sorted(wanted)]


def author_of_updates(incident: dict) -> str | None:
    """The field manager that last wrote ``spec.updates`` (kubectl-edit, argocd-controller...)."""
    best: tuple[str, str] | None = None
    for entry in (incident.get("metadata") or {}).get("managedFields") or []:
        fields = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        if "f:updates" in fields and entry.get("manager"):
            moment = entry.get("time") or ""
            if best is None or moment >= best[0]:
                best = (moment, entry["manager"])
    return best[1] if best else None


def update_time(incident: dict, index: int) -> str | None:
    """When update ``index`` was written: its own ``at``, or when Pitwall first saw it."""
    updates = spec(incident).get("updates") or []
    if index < len(updates) and updates[index].get("at"):
        return str(updates[index]["at"])
    for entry in status(incident).get("updateAuthors") or []:
        if entry.get("index") == index:
            return str(entry["at"]) if entry.get("at") else None
    return None


def update_author(incident: dict, index: int) -> str:
    updates = spec(incident).get("updates") or []
    if index < len(updates) and updates[index].get("author"):
        return str(updates[index]["author"])
    for entry in status(incident).get("updateAuthors") or []:
        if entry.get("index") == index:
            return str(entry.get("author") or "unknown")
    return "unknown"


def plan_window(window: dict, mine: list[dict], now: datetime) -> list[Action]:
    """An emergency MaintenanceWindow: an incident of type emergency-maintenance while it runs."""
    meta = window.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    st = status(window)
    active = st.get("phase") == "Active" and not meta.get("deletionTimestamp")
    current = next((i for i in mine if not is_resolved(i)), None)
    if active and current is None:
        since = _time(st.get("activeSince")) or now
        if any(status(i).get("startedAt") == rfc3339(since) for i in mine):
            return []  # this occurrence had its incident (resolved by a person)
        products = [
            {"name": p.get("name", ""), "versions": p.get("versions") or []}
            for p in (st.get("affected") or {}).get("apiProducts") or []
            if p.get("name")
        ]
        if not products:
            return []
        incident = _safe(f"{name}-emergency-{since:%Y%m%d-%H%M%S}")
        body = {
            "apiVersion": "pitwall.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {
                "name": incident,
                "namespace": namespace,
                "labels": {OPENED_BY: PITWALL, LABEL_WINDOW: name[:63]},
            },
            "spec": {"type": EMERGENCY, "window": name, "products": products, "status": "identified"},
        }
        return [
            Action(
                "create",
                namespace,
                incident,
                {
                    "phase": OPEN,
                    "impact": MAINTENANCE,
                    "affected": products,
                    "startedAt": rfc3339(since),
                    "cause": "Emergency maintenance that could not wait for the usual notice.",
                },
                body,
                event=("IncidentOpened", f"emergency maintenance window {name}"),
            )
        ]
    if not active and current is not None and opened_by_pitwall(current):
        return [
            Action(
                "status",
                namespace,
                _name(current),
                resolved(status(current), now, PITWALL, "The emergency maintenance is over."),
            )
        ]
    return []


def _safe(name: str) -> str:
    return re.sub(r"[^a-z0-9.-]", "-", name.lower())[:253].strip("-.")


def _name(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _time(value: object) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None
