"""Latency percentiles and availability, bounded in memory and persisted in ``status``.

Availability is kept as hourly buckets for 7 days and daily buckets for 90 days (the sizes the
contract gives ``status.history``), so an operator restart resumes from status instead of zero
and a 90-day uptime bar needs no other store. Windows ending "now" are estimated from hourly
buckets by weighting the oldest, partly covered bucket by the part of it inside the window
(a sliding-window counter), so ``last1h`` does not jump at every hour boundary.

Latency percentiles cover the last ``LATENCY_WINDOW`` successful runs: a failed run's latency is
mostly the timeout and says nothing about how fast the API is. The window itself is not
persisted; until new runs arrive after a restart, ``to_status`` leaves ``latency`` out so the
persisted numbers stand.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .. import durations

LATENCY_WINDOW = 200
HOURS = 168
DAYS = 90
HOUR = timedelta(hours=1)
WINDOWS = {"last1h": timedelta(hours=1), "last24h": timedelta(hours=24), "last7d": timedelta(days=7)}


@dataclass
class Bucket:
    start: datetime | date
    ok: int = 0
    total: int = 0


class Stats:
    def __init__(self, hourly: Iterable[Bucket] = (), daily: Iterable[Bucket] = ()):
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._hourly: deque[Bucket] = deque(hourly, maxlen=HOURS)
        self._daily: deque[Bucket] = deque(daily, maxlen=DAYS)

    def record(self, at: datetime, ok: bool, latency_ms: float | None = None) -> None:
        at = at.astimezone(UTC)
        _count(self._hourly, at.replace(minute=0, second=0, microsecond=0), ok)
        _count(self._daily, at.date(), ok)
        if ok and latency_ms is not None:
            self._latencies.append(latency_ms)

    def latency(self) -> dict[str, float]:
        if not self._latencies:
            return {}
        ordered = sorted(self._latencies)
        return {"p50Ms": _percentile(ordered, 0.50), "p95Ms": _percentile(ordered, 0.95)}

    def availability(self, now: datetime) -> dict[str, float]:
        """Percent of successful runs per window; a window without runs is left out."""
        out = {}
        for name, window in WINDOWS.items():
            since = now - window
            ok = total = 0.0
            for bucket in self._hourly:
                end = bucket.start + HOUR
                if end <= since:
                    continue
                weight = 1.0 if bucket.start >= since else (end - since) / HOUR
                ok += bucket.ok * weight
                total += bucket.total * weight
            if total > 0:
                out[name] = round(100.0 * ok / total, 3)
        return out

    def to_status(self, now: datetime) -> dict[str, Any]:
        """``latency``, ``availability`` and ``history`` for a status patch (lists are whole)."""
        now = now.astimezone(UTC)
        hourly = [b for b in self._hourly if b.start + HOUR > now - timedelta(hours=HOURS)]
        daily = [b for b in self._daily if b.start > now.date() - timedelta(days=DAYS)]
        out: dict[str, Any] = {
            "availability": self.availability(now),
            "history": {
                "hourly": [{"at": durations.rfc3339(b.start), "ok": b.ok, "total": b.total} for b in hourly],
                "daily": [{"day": b.start.isoformat(), "ok": b.ok, "total": b.total} for b in daily],
            },
        }
        if self._latencies:
            out["latency"] = self.latency()
        return out

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> Stats:
        history = (status or {}).get("history") or {}
        return cls(
            hourly=[Bucket(durations.parse_time(h["at"]), int(h.get("ok", 0)), int(h.get("total", 0)))
                    for h in history.get("hourly") or []],
            daily=[Bucket(date.fromisoformat(d["day"]), int(d.get("ok", 0)), int(d.get("total", 0)))
                   for d in history.get("daily") or []],
        )


def _count(buckets: deque[Bucket], start: datetime | date, ok: bool) -> None:
    if not buckets or buckets[-1].start < start:
        buckets.append(Bucket(start))
    # Results arrive in time order, so the bucket is the newest one or very near it; a result
    # falling into a gap further back is dropped rather than breaking the order.
    bucket = next((b for b in reversed(buckets) if b.start == start), None)
    if bucket is not None:
        bucket.total += 1
        bucket.ok += int(ok)


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest rank: a latency that was really observed."""
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1)
