"""The periodic digest of an AlertRule: a summary a team reads, not a page.

Availability per environment (live / sandbox) from the namespace's probes, the alerts open
now, and what changed since the last digest. Pure: the reconciler sends it through the
digest receivers with :func:`~pitwall.alerts.delivery.deliver_message`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import durations
from ..api.apiproduct import ApiProductSpec
from ..api.base import default_of
from ..vocabulary import LABEL_PRODUCT
from .state import FIRING, HELD, RESOLVED


@dataclass(frozen=True)
class DigestMessage:
    subject: str
    text: str
    html: str
    data: dict


def last_sent(status: dict, metadata: dict) -> str | None:
    """When the last digest went out; a rule that never sent one counts from its creation.

    So the first digest comes one interval after the rule was created, not at every start of
    a fresh cluster (``make dev``) or whenever a rule is applied: a digest right away says
    nothing the team did not just see.
    """
    return status.get("lastDigestAt") or metadata.get("creationTimestamp")


def due(interval: float, last: str | None, now: datetime) -> bool:
    return last is None or (now - durations.parse_time(last)).total_seconds() >= interval


def _environment(probe: dict, products: dict[str, dict]) -> str:
    target = ((probe.get("spec") or {}).get("target") or {}).get("apiProduct") or {}
    name = target.get("name") or (probe["metadata"].get("labels") or {}).get(LABEL_PRODUCT)
    default = str(default_of(ApiProductSpec, "environment"))
    return (
        str(((products.get(name) or {}).get("spec") or {}).get("environment", default)) if name else default
    )


def traffic_by_environment(
    products: list[dict], calls: dict[str, float], failed: dict[str, float], week_ago: dict[str, float]
) -> dict[str, dict]:
    """Calls, failed calls, success share and last week's calls per environment (live, sandbox),
    from per-product counts over the digest's period."""
    out: dict[str, dict] = {}
    default = str(default_of(ApiProductSpec, "environment"))
    for product in products:
        name = product["metadata"]["name"]
        if name not in calls and name not in week_ago:
            continue
        env = str((product.get("spec") or {}).get("environment", default))
        entry = out.setdefault(env, {"calls": 0.0, "failed": 0.0, "weekAgoCalls": 0.0})
        entry["calls"] += calls.get(name, 0.0)
        entry["failed"] += failed.get(name, 0.0)
        entry["weekAgoCalls"] += week_ago.get(name, 0.0)
    for entry in out.values():
        entry["successPercent"] = (
            round(100.0 * (1 - entry["failed"] / entry["calls"]), 2) if entry["calls"] else None
        )
        entry["weekOverWeekPercent"] = (
            round(100.0 * (entry["calls"] / entry["weekAgoCalls"] - 1), 1) if entry["weekAgoCalls"] else None
        )
        for key in ("calls", "failed", "weekAgoCalls"):
            entry[key] = round(entry[key])
    return dict(sorted(out.items()))


def _traffic_lines(traffic: dict[str, dict] | None, period: str) -> list[str]:
    if traffic is None:
        return []
    lines = ["", f"Traffic over the last {period} (calls now vs the same time a week ago):"]
    for env, t in traffic.items():
        success = "-" if t["successPercent"] is None else f"{t['successPercent']:.2f}% succeeded"
        change = (
            "no calls a week ago"
            if t["weekOverWeekPercent"] is None
            else f"{t['weekOverWeekPercent']:+.1f}% vs a week ago ({t['weekAgoCalls']:,} calls)"
        )
        lines.append(f"  {env}: {t['calls']:,} calls, {t['failed']:,} failed, {success}; {change}")
    return lines if traffic else [*lines, "  no traffic figures"]


def compose(
    rule: str,
    namespace: str,
    records: list[dict],
    probes: list[dict],
    products: list[dict],
    since: str | None,
    now: datetime,
    traffic: dict[str, dict] | None = None,
    traffic_period: str = "",
) -> DigestMessage:
    by_name = {p["metadata"]["name"]: p for p in products}
    availability: dict[str, list[float]] = {}
    for probe in probes:
        value = ((probe.get("status") or {}).get("availability") or {}).get("last24h")
        if value is not None:
            availability.setdefault(_environment(probe, by_name), []).append(float(value))
    envs = {env: round(sum(values) / len(values), 2) for env, values in sorted(availability.items())}
    open_alerts = [r for r in records if r.get("state") in (FIRING, HELD)]
    start = durations.parse_time(since) if since else None

    def after(field: str, record: dict) -> bool:
        return bool(record.get(field)) and (start is None or durations.parse_time(record[field]) > start)

    fired = [r for r in records if after("since", r)]
    resolved = [r for r in records if r.get("state") == RESOLVED and after("resolvedAt", r)]

    lines = [
        f"Digest for AlertRule {namespace}/{rule} at {durations.rfc3339(now)}"
        + (f" (since {since})" if since else ""),
        "",
        "Availability over 24h:",
    ]
    lines += [f"  {env}: {value:.2f}%" for env, value in envs.items()] or ["  no probe data yet"]
    lines += _traffic_lines(traffic, traffic_period)
    lines += ["", f"Open alerts: {len(open_alerts)}"]
    lines += [
        f"  [{r.get('severity')}] {r.get('subject', r['key'])} since {r.get('since', '?')}"
        + (f" (acknowledged by {r['acknowledgedBy']})" if r.get("acknowledgedBy") else "")
        for r in open_alerts
    ]
    lines += ["", f"Changes: {len(fired)} fired, {len(resolved)} resolved"]
    lines += [f"  fired: {r.get('subject', r['key'])}" for r in fired]
    lines += [f"  resolved: {r.get('subject', r['key'])}" for r in resolved]
    text = "\n".join(lines)
    subject = (
        f"[pitwall] {rule}: {len(open_alerts)} open alerts, "
        + ", ".join(f"{env} {value:.2f}%" for env, value in envs.items())
    ).rstrip(", ")
    data: dict[str, Any] = {
        "rule": rule,
        "namespace": namespace,
        "at": durations.rfc3339(now),
        "since": since,
        "availability24h": envs,
        "open": [r["key"] for r in open_alerts],
        "fired": [r["key"] for r in fired],
        "resolved": [r["key"] for r in resolved],
    }
    if traffic is not None:
        data["traffic"] = {"period": traffic_period, "environments": traffic}
    return DigestMessage(subject, text, f"<pre>{html.escape(text)}</pre>", data)
