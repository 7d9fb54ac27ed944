"""Incident history for the public page, its JSON and its feed: the Incidents of the last 90 days.

Incidents (the kind) are read from the watch cache like everything else on the page. What a
public entry may contain is, again, an allowlist: the public products it affects (by their
public id and redacted display name), versions, the impact, the cause (composed by Pitwall
from a fixed vocabulary, redacted once more), times, the people's updates (message and status
word, redacted: an engineer who names a backend host in an update does not publish it; the
author stays internal) and the post-incident report link. Incidents that affect no public
product are not shown.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..api.base import default_of
from ..api.incident import IncidentSpec
from ..durations import format as format_duration
from ..durations import parse_time
from .redact import Redactor
from .relations import Key, Snapshot, display_name, key, spec, status

DAYS = 90
IMPACT_LABELS = {"outage": "Outage", "degraded": "Degraded service", "maintenance": "Emergency maintenance"}
STATUS_LABELS = {
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
}


def public_history(
    snapshot: Snapshot, ids: dict[Key, str], redact: Redactor, now: datetime, days: int = DAYS
) -> list[dict]:
    """Every incident of the last ``days`` days touching a shown product, newest first.

    ``ids``: the public id of each product shown (``model.public_ids``)."""
    shown = {k: p for p in snapshot.products if (k := key(p)) in ids}
    since = now - timedelta(days=days)
    counts: dict[str, int] = {}
    for incident in snapshot.incidents:
        counts[key(incident)[1]] = counts.get(key(incident)[1], 0) + 1
    memo: dict[str, str] = {}

    def redact_once(text: Any) -> str:
        """Updates and causes repeat across incidents: each distinct text is redacted once."""
        if not text:
            return ""
        text = str(text)
        if text not in memo:
            memo[text] = redact(text)
        return memo[text]

    out: list[dict[str, Any]] = []
    for incident in snapshot.incidents:
        namespace, name = key(incident)
        sp, st = spec(incident), status(incident)
        products: list[dict[str, Any]] = []
        for entry in st.get("affected") or sp.get("products") or []:
            product = shown.get((namespace, entry.get("name", "")))
            if product is not None:
                products.append(
                    {
                        "id": ids[(namespace, entry["name"])],
                        "displayName": redact(display_name(product)),
                        "versions": list(entry.get("versions") or []),
                    }
                )
        if not products:
            continue
        started = _time(st.get("startedAt")) or _time(
            (incident.get("metadata") or {}).get("creationTimestamp")
        )
        ended = _time(st.get("resolvedAt"))
        resolved = st.get("phase") == "Resolved"
        if started is None or (resolved and (ended or started) < since):
            continue
        end = ended if resolved and ended else now
        kind = sp.get("type") or default_of(IncidentSpec, "type")
        impact = st.get("impact") or ("maintenance" if kind == "emergency-maintenance" else "degraded")
        word = "resolved" if resolved else (sp.get("status") or default_of(IncidentSpec, "status"))
        if word == "resolved" and not resolved:
            word = "monitoring"  # a person's resolve is applied within seconds; not yet shown as done
        names = ", ".join(str(p["displayName"]) for p in products)
        out.append(
            {
                "id": name if counts[name] == 1 else f"{namespace}.{name}",
                "kind": kind,
                "title": redact(sp.get("title"))
                or f"{names}: {IMPACT_LABELS.get(impact, 'Service disruption').lower()}",
                "impact": impact,
                "impactLabel": IMPACT_LABELS.get(impact, "Service disruption"),
                "status": word,
                "statusLabel": STATUS_LABELS.get(word, word),
                "resolved": resolved,
                "cause": redact_once(st.get("cause")),
                "products": products,
                "startedAt": _stamp(started),
                "resolvedAt": _stamp(ended) if resolved else None,
                "duration": _duration((end - started).total_seconds()),
                "resolution": redact(st.get("resolution")) if resolved else None,
                "postIncidentReport": sp.get("postIncidentReport"),
                "updates": _updates(incident, redact_once),
                "days": _days(started, end),
            }
        )
    out.sort(key=lambda i: (bool(i["resolved"]), _neg(i["startedAt"]), str(i["id"])))
    return out


def by_product_day(history: list[dict]) -> dict[tuple[str, str], str]:
    """(product id, YYYY-MM-DD) -> the id of the first incident of that product that day (bar links)."""
    found: dict[tuple[str, str], str] = {}
    for incident in sorted(history, key=lambda i: i["startedAt"] or ""):
        for product in incident["products"]:
            for day in incident["days"]:
                found.setdefault((product["id"], day), incident["id"])
    return found


def _updates(incident: dict, redact: Callable[[Any], str]) -> list[dict]:
    updates = spec(incident).get("updates") or []
    seen = {a.get("index"): a.get("at") for a in status(incident).get("updateAuthors") or []}
    out = []
    for index, update in enumerate(updates):
        out.append(
            {
                "at": update.get("at") or seen.get(index),
                "status": update.get("status"),
                "statusLabel": STATUS_LABELS.get(update.get("status") or "", "Update"),
                "message": redact(update.get("message")),
            }
        )
    return list(reversed(out))  # newest first, as status pages show them


def _days(start: datetime, end: datetime) -> list[str]:
    days: list[str] = []
    day = start.astimezone(UTC).date()
    while day <= end.astimezone(UTC).date() and len(days) < DAYS + 1:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return format_duration(round(seconds) if seconds < 60 else round(seconds / 60) * 60)


def _stamp(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _neg(stamp: Any) -> str:
    """Sort newest first with an ascending sort of strings."""
    return "".join(chr(0x10FFFF - ord(c)) for c in stamp or "")


def _time(value: object) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None
