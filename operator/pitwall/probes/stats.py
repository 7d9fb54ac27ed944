"""Latency percentiles and availability, bounded in memory and persisted in ``status``.

Availability is kept as hourly buckets for 7 days and daily buckets for 90 days (the sizes the
contract gives ``status.history``), so an operator restart resumes from status instead of zero
and a 90-day uptime bar needs no other store. Windows ending "now" are estimated from hourly
buckets by weighting the oldest, partly covered bucket by the part of it inside the window
(a sliding-window counter), so ``last1h`` does not jump at every hour boundary.

Memory and size matter here: every probe keeps these numbers in the operator and in its status
(which the operator's watch cache holds too), so 5,000 probes x 258 buckets must stay small.
Buckets are dense arrays of counts from a start index (a few kilobytes per probe, not hundreds
of Python objects), and ``status.history`` carries them as one compact string per series:

    history:
      hourly: {from: "2026-11-17T11:00:00Z", runs: "360/360 358/360 0/0 ..."}   # ok/total per hour
      daily:  {from: "2026-08-27", runs: "8640/8640 8633/8640 ..."}             # ok/total per UTC day

Latency percentiles cover the last ``LATENCY_WINDOW`` successful runs: a failed run's latency is
mostly the timeout and says nothing about how fast the API is. The window itself is not
persisted; until new runs arrive after a restart, ``to_status`` leaves ``latency`` out so the
persisted numbers stand.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .. import durations

LATENCY_WINDOW = 200
HOURS = 169  # 7 days plus the current hour: a 7-day window ending mid-hour needs 169 buckets
DAYS = 90
HOUR_S = 3600
WINDOWS = {"last1h": 1, "last24h": 24, "last7d": 168}  # hours
_RUNS = re.compile(r"^\s*(\d+)/(\d+)\s*$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Series:
    """Consecutive buckets of (ok, total) counts, ``start`` being the first bucket's index
    (hours or days since the epoch), at most ``size`` of them: older ones fall off the front."""

    __slots__ = ("size", "start", "ok", "total", "_text")

    def __init__(self, size: int, start: int = 0, counts: Iterator[tuple[int, int]] = iter(())):
        self.size = size
        self.start = start
        self.ok = array("I")
        self.total = array("I")
        # (first, upto, "ok/total ...") of buckets [first, upto): the encoding of buckets no run
        # has counted into since, so a status write formats only the newest (see ``encode``).
        self._text: tuple[int, int, str] | None = None
        for ok, total in counts:
            self.ok.append(ok)
            self.total.append(total)
        self.trim(start + len(self.ok) - 1)

    @property
    def end(self) -> int:
        """One past the last bucket's index."""
        return self.start + len(self.total)

    def count(self, index: int, ok: bool) -> None:
        self.add(index, int(ok), 1)

    def add(self, index: int, ok: int, total: int) -> None:
        """Add counts to bucket ``index``, making room for it (older buckets fall off)."""
        if self.total and index < self.start:
            return  # older than everything kept: results arrive in time order, so drop it
        if self._text is not None and index < self._text[1]:
            self._text = None  # a bucket it encodes changes (a late result): encode afresh
        if not self.total or index - self.end >= self.size:
            self.start, self.ok, self.total = index, array("I", [0]), array("I", [0])
        elif index >= self.end:
            gap = index - self.end + 1
            self.ok.extend([0] * gap)
            self.total.extend([0] * gap)
            self.trim(index)
        self.total[index - self.start] += total
        self.ok[index - self.start] += ok

    def trim(self, newest: int) -> None:
        """Drop buckets that are ``size`` or more before ``newest``."""
        drop = newest - self.size + 1 - self.start
        if drop > 0:
            del self.ok[:drop]
            del self.total[:drop]
            self.start += drop

    def buckets(self, since: int = -1) -> Iterator[tuple[int, int, int]]:
        """(index, ok, total) from ``since`` on, oldest first."""
        first = max(0, since - self.start)
        for offset in range(first, len(self.total)):
            yield self.start + offset, self.ok[offset], self.total[offset]

    def encode(self, since: int) -> tuple[int, str] | None:
        """(first index, "ok/total ...") of the buckets from ``since`` on; None when none.

        Incremental: runs count into the newest bucket only, so the text of the older ones is
        kept between calls and extended (a new bucket) or cut at the front (``since`` moved on);
        each write formats one bucket instead of up to 169 (issue 18: encoding the history was
        ~14% of a status write)."""
        first, end = max(since, self.start), self.end
        if first >= end:
            return None
        upto = end - 1  # the newest bucket still counts runs: never cached
        cached = self._text
        if cached is None or cached[0] > first or cached[1] > upto:
            cached = (first, first, "")
        elif cached[0] < first:  # the window moved on: drop the oldest tokens
            drop = min(first, cached[1]) - cached[0]
            rest = cached[2].split(" ", drop)[drop] if drop < cached[1] - cached[0] else ""
            cached = (first, max(first, cached[1]), rest)
        if cached[1] < upto:
            more = self._tokens(cached[1], upto)
            cached = (first, upto, f"{cached[2]} {more}" if cached[2] else more)
        self._text = cached
        newest = self._tokens(upto, end)
        return first, f"{cached[2]} {newest}" if cached[2] else newest

    def _tokens(self, first: int, upto: int) -> str:
        ok, total, offset = self.ok, self.total, self.start
        return " ".join(f"{ok[i - offset]}/{total[i - offset]}" for i in range(first, upto))


def decode_runs(text: str) -> list[tuple[int, int]]:
    """``"ok/total ok/total"`` -> [(ok, total), ...]; malformed tokens count as no runs."""
    out = []
    for token in (text or "").split():
        match = _RUNS.match(token)
        out.append((int(match[1]), int(match[2])) if match else (0, 0))
    return out


def hour_index(at: datetime) -> int:
    return int((at.astimezone(UTC) - _EPOCH).total_seconds() // HOUR_S)


def hour_start(index: int) -> datetime:
    return _EPOCH + timedelta(hours=index)


class Stats:
    __slots__ = ("_latencies", "_hourly", "_daily")

    def __init__(self, hourly: Series | None = None, daily: Series | None = None):
        self._latencies = array("f")
        self._hourly = hourly or Series(HOURS)
        self._daily = daily or Series(DAYS)

    def record(self, at: datetime, ok: bool, latency_ms: float | None = None) -> None:
        at = at.astimezone(UTC)
        self._hourly.count(hour_index(at), ok)
        self._daily.count(at.date().toordinal(), ok)
        if ok and latency_ms is not None:
            self._latencies.append(latency_ms)
            if len(self._latencies) > LATENCY_WINDOW:
                del self._latencies[0]

    def latency(self) -> dict[str, float]:
        if not self._latencies:
            return {}
        ordered = sorted(self._latencies)
        return {"p50Ms": _percentile(ordered, 0.50), "p95Ms": _percentile(ordered, 0.95)}

    def availability(self, now: datetime) -> dict[str, float]:
        """Percent of successful runs per window; a window without runs is left out."""
        now_h = (now.astimezone(UTC) - _EPOCH).total_seconds() / HOUR_S  # in hours, fractional
        series = self._hourly
        out = {}
        for name, hours in WINDOWS.items():
            since = now_h - hours
            oldest = math.floor(since)  # the partly covered bucket
            ok = total = 0.0
            full = 0  # offset of the first bucket wholly inside the window
            if oldest >= series.start:
                full = oldest - series.start + 1
                if full <= len(series.total):
                    weight = oldest + 1 - since
                    ok, total = series.ok[full - 1] * weight, series.total[full - 1] * weight
            # Sums over array slices (C loops): this runs on every status write of every probe.
            ok += sum(series.ok[full:])
            total += sum(series.total[full:])
            if total > 0:
                out[name] = round(100.0 * ok / total, 3)
        return out

    def to_status(self, now: datetime) -> dict[str, Any]:
        """``latency``, ``availability`` and ``history`` for a status patch (series are whole)."""
        now = now.astimezone(UTC)
        history: dict[str, Any] = {}
        hourly = self._hourly.encode(hour_index(now) - HOURS + 1)
        if hourly:
            history["hourly"] = {"from": durations.rfc3339(hour_start(hourly[0])), "runs": hourly[1]}
        daily = self._daily.encode(now.date().toordinal() - DAYS + 1)
        if daily:
            history["daily"] = {"from": date.fromordinal(daily[0]).isoformat(), "runs": daily[1]}
        out: dict[str, Any] = {"availability": self.availability(now), "history": history}
        if self._latencies:
            out["latency"] = self.latency()
        return out

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> Stats:
        history = (status or {}).get("history") or {}
        return cls(
            hourly=_series(history.get("hourly"), HOURS, hourly=True),
            daily=_series(history.get("daily"), DAYS, hourly=False),
        )


def daily_runs(status: Mapping[str, Any] | None) -> Iterator[tuple[str, int, int]]:
    """(day "YYYY-MM-DD", ok, total) from a status' ``history.daily``, oldest first."""
    series = _series(((status or {}).get("history") or {}).get("daily"), DAYS, hourly=False)
    for index, ok, total in series.buckets():
        yield date.fromordinal(index).isoformat(), ok, total


def _series(persisted: Any, size: int, *, hourly: bool) -> Series:
    """A series from status; also reads the list form older versions wrote
    (``[{at|day, ok, total}, ...]``), so an upgrade keeps the history."""
    try:
        if isinstance(persisted, Mapping) and persisted.get("from"):
            start = (
                hour_index(durations.parse_time(persisted["from"]))
                if hourly
                else date.fromisoformat(persisted["from"]).toordinal()
            )
            return Series(size, start, iter(decode_runs(persisted.get("runs") or "")))
        if isinstance(persisted, list) and persisted:
            series = Series(size)
            for bucket in persisted:
                index = (
                    hour_index(durations.parse_time(bucket["at"]))
                    if hourly
                    else date.fromisoformat(bucket["day"]).toordinal()
                )
                series.add(index, int(bucket.get("ok", 0)), int(bucket.get("total", 0)))
            return series
    except (KeyError, TypeError, ValueError):
        pass  # unreadable history: start counting afresh rather than fail the probe
    return Series(size)


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest rank: a latency that was really observed."""
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1)
