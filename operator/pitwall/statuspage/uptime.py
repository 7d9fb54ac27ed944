"""90-day uptime bars from the probes' own history.

Where the history lives: in each Probe's ``status.history`` (written by the probe engine,
``pitwall.probes.stats``), bounded at 90 daily and 169 hourly ``ok/total`` counts, about two
kilobytes per probe. Being CR status, it is stored in etcd: it survives operator
restarts and failovers, moves with a backup of the objects, and needs no ConfigMap, volume or
database. The status page only reads it (from the watch cache); a product's bar for a day is
the sum of ``ok`` and ``total`` over every probe of the product that day, so a product checked
by an ``isUp`` probe and an OAuth flow is up when both pass.

A day without any run is ``none`` ("no data"), never counted as up.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

from ..probes.stats import daily_runs
from .relations import status

DAYS = 90
LEVEL_OK, LEVEL_DEGRADED, LEVEL_OUTAGE, LEVEL_NONE = "ok", "degraded", "outage", "none"
OK_AT, DEGRADED_AT = 99.9, 95.0  # percent of successful runs in a day


def level(percent: float | None) -> str:
    if percent is None:
        return LEVEL_NONE
    if percent >= OK_AT:
        return LEVEL_OK
    return LEVEL_DEGRADED if percent >= DEGRADED_AT else LEVEL_OUTAGE


def percent(ok: int, total: int) -> float | None:
    """Floored to two decimals: 99.996% is shown as 99.99%, never as a perfect 100%."""
    if total <= 0:
        return None
    return math.floor(10000 * ok / total) / 100


def bars(probes: list[dict], today: date, days: int = DAYS) -> dict:
    """``{"days", "percent", "ok", "total", "bars": [{day, ok, total, percent, level}]}``,
    oldest day first, ending ``today`` (UTC)."""
    sums: dict[str, list[int]] = {}
    for probe in probes:
        for day, ok, total in daily_runs(status(probe)):
            acc = sums.setdefault(day, [0, 0])
            acc[0] += ok
            acc[1] += total
    out: list[dict[str, Any]] = []
    for offset in range(days - 1, -1, -1):
        day = (today - timedelta(days=offset)).isoformat()
        ok, total = sums.get(day, (0, 0))
        value = percent(ok, total)
        out.append({"day": day, "ok": ok, "total": total, "percent": value, "level": level(value)})
    ok = sum(b["ok"] for b in out)
    total = sum(b["total"] for b in out)
    return {"days": days, "percent": percent(ok, total), "ok": ok, "total": total, "bars": out}
