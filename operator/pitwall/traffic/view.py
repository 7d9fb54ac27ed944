"""``status.traffic`` in words, for ``pitwall traffic``, ``pitwall status`` and the internal view
(pure: reads the status the operator wrote, never Prometheus)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _pct(ratio: Any) -> str:
    return "-" if ratio is None else f"{float(ratio) * 100:.1f}%"


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0f}ms"


def _rps(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3g}/s"


def week_change(version: Mapping[str, Any]) -> str:
    """``+12%`` against the same time a week ago; ``-`` without last week's figure."""
    now, before = version.get("rps"), version.get("weekAgoRps")
    if now is None or not before:
        return "-"
    return f"{(float(now) / float(before) - 1) * 100:+.0f}%"


def summary(traffic: Mapping[str, Any] | None) -> str:
    """One line per product: ``traffic ok: v1 20/s 0.5% failed p95 80ms; v2 ...``."""
    if not traffic:
        return ""
    if traffic.get("state") == "unknown":
        return f"traffic unknown: {traffic.get('message', '')}"[:200]
    parts = [
        f"{v.get('name')} {_rps(v.get('rps'))} {_pct(v.get('errorRatio'))} failed p95 {_ms(v.get('p95Ms'))}"
        for v in traffic.get("versions") or []
    ]
    return f"traffic {traffic.get('state')}: " + ("; ".join(parts) or "no requests")


def rows(products: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per product version with traffic (``pitwall traffic``)."""
    out = []
    for product in products:
        name = (product.get("metadata") or {}).get("name", "")
        traffic = (product.get("status") or {}).get("traffic")
        if (product.get("spec") or {}).get("traffic") is None:
            continue
        if not traffic:
            out.append({"product": name, "version": "", "state": "pending", "detail": "no figures yet"})
            continue
        if traffic.get("state") == "unknown" or not traffic.get("versions"):
            out.append(
                {
                    "product": name,
                    "version": "",
                    "state": traffic.get("state", ""),
                    "detail": traffic.get("message", "no requests"),
                }
            )
            continue
        for v in traffic["versions"]:
            consumers = ", ".join(f"{c['name']} {_rps(c.get('rps'))}" for c in v.get("topConsumers") or [])
            routes = ", ".join(f"{r['name']} {_rps(r.get('rps'))}" for r in v.get("topRoutes") or [])
            out.append(
                {
                    "product": name,
                    "version": v.get("name", ""),
                    "state": traffic.get("state", ""),
                    "rps": _rps(v.get("rps")),
                    "vsWeekAgo": week_change(v),
                    "failed": _pct(v.get("errorRatio")),
                    "client": _pct(v.get("clientErrorRatio")),
                    "server": _pct(v.get("serverErrorRatio")),
                    "timeouts": _pct(v.get("timeoutRatio")),
                    "p50": _ms(v.get("p50Ms")),
                    "p95": _ms(v.get("p95Ms")),
                    "p99": _ms(v.get("p99Ms")),
                    "consumers": consumers,
                    "routes": routes,
                    "at": traffic.get("at", ""),
                }
            )
    return out


COLUMNS = (
    ("PRODUCT", "product"),
    ("VERSION", "version"),
    ("STATE", "state"),
    ("REQ/S", "rps"),
    ("VS 1W", "vsWeekAgo"),
    ("FAILED", "failed"),
    ("4XX", "client"),
    ("5XX", "server"),
    ("TIMEOUTS", "timeouts"),
    ("P50", "p50"),
    ("P95", "p95"),
    ("P99", "p99"),
    ("TOP CONSUMERS", "consumers"),
    ("TOP ROUTES", "routes"),
)
