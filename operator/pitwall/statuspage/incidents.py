"""Current incidents: firing critical and high alerts, grouped per API product.

An AlertRule's ``status.alerts`` names the object that fires (an ApiProduct, a Probe or a
Backend). Consumers care about products, so each firing alert is attributed to the product it
hurts: a Probe to the product it checks, a Backend to every product that depends on it (unless
``optional``). Alerts of one product become one incident, opened at the earliest alert and
``identified`` once any of them is acknowledged. ``pending``, ``held`` (maintenance) and
``resolved`` alerts are not incidents; medium, low and blocked rules never page anyone and are
not shown either.

The public text of an incident is composed here from the product's display name and a fixed
vocabulary; alert subjects, keys, rule and object names stay in the internal view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .relations import Key, Snapshot, key, probe_target, products_of_backend, spec, status

SEVERE = ("critical", "high")
CAUSE_TEXT = {
    "checks": "Our checks of {what} are failing; requests may fail or time out.",
    "provider": "An upstream provider that {name} depends on is having problems; requests may fail.",
    "product": "{what} is not fully available; requests may fail.",
}

TITLES = {"outage": "outage", "degraded": "degraded service"}  # by the product's current state


@dataclass
class Incident:
    product: Key
    severity: str
    since: str | None
    acknowledged: bool = False
    versions: set[str] = field(default_factory=set)  # empty: the whole product
    causes: set[str] = field(default_factory=set)  # keys of CAUSE_TEXT
    alerts: list[dict] = field(default_factory=list)  # internal view only


def collect(snapshot: Snapshot) -> dict[Key, Incident]:
    """(namespace, product) -> Incident for every product with a firing critical/high alert."""
    probes: dict[Key, dict] = {}  # built when the first firing alert is about a probe
    incidents: dict[Key, Incident] = {}
    for rule in snapshot.rules:
        namespace, rule_name = key(rule)
        for alert in status(rule).get("alerts") or []:
            severity = alert.get("severity") or spec(rule).get("severity")
            if alert.get("state") != "firing" or severity not in SEVERE:
                continue
            obj = alert.get("object") or {}
            for product, version, cause in _hurts(snapshot, probes, namespace, obj):
                found = incidents.get((namespace, product))
                if found is None:
                    found = incidents[(namespace, product)] = Incident(
                        (namespace, product), severity, alert.get("since")
                    )
                elif SEVERE.index(severity) < SEVERE.index(found.severity):
                    found.severity = severity
                if alert.get("since") and (found.since is None or alert["since"] < found.since):
                    found.since = alert["since"]
                found.acknowledged |= bool(alert.get("acknowledgedAt") or alert.get("acknowledgedBy"))
                found.causes.add(cause)
                if version:
                    found.versions.add(version)
                found.alerts.append(
                    {
                        "rule": rule_name,
                        "key": alert.get("key", ""),
                        "severity": severity,
                        "object": dict(obj),
                        "subject": alert.get("subject", ""),
                        "since": alert.get("since"),
                        "acknowledgedBy": alert.get("acknowledgedBy"),
                    }
                )
    return incidents


def _hurts(snapshot: Snapshot, probes: dict, namespace: str, obj: dict) -> list[tuple[str, str | None, str]]:
    """(product, version or None, cause) the alerting object hurts."""
    kind, name = obj.get("kind"), obj.get("name", "")
    if kind == "ApiProduct":
        return [(name, None, "product")]
    if kind == "Probe":
        if not probes:
            probes.update((key(p), p) for p in snapshot.probes)
        probe = probes.get((namespace, name))
        target = probe_target(probe) if probe else None
        return [(target[0], target[1], "checks")] if target else []
    if kind == "Backend":
        return [
            (key(p)[1], None, "provider")
            for p, criticality in products_of_backend(snapshot, namespace, name)
            if criticality != "optional"
        ]
    return []


def public_text(incident: Incident, display_name: str, state: str) -> dict:
    """Title, summary and progress of an incident in words fit for the public page."""
    versions = sorted(incident.versions)
    what = f"{display_name} {', '.join(versions)}" if versions else display_name
    summary = " ".join(
        CAUSE_TEXT[c].format(what=what, name=display_name)
        for c in ("product", "checks", "provider")
        if c in incident.causes
    )
    return {
        "title": f"{display_name}: {TITLES.get(state, 'service disruption')}",
        "summary": summary,
        "status": "identified" if incident.acknowledged else "investigating",
        "statusText": (
            "Identified: our engineers are working on a fix."
            if incident.acknowledged
            else "Investigating: we are looking into it."
        ),
    }
