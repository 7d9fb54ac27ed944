"""Prometheus' answers turned into the figures Pitwall shows and judges (pure: no I/O).

A Prometheus instant-vector result is a list of ``{"metric": {labels}, "value": [t, "1.5"]}``.
:func:`assemble` reads the answers to :func:`pitwall.traffic.promql.queries` into one
:class:`Figures` per product value, :func:`status` writes them compactly for
``status.traffic``, and :func:`due` says when a new status is worth a write (coalescing).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .promql import Shape

QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
WRITE_EVERY = 60.0  # seconds: status.traffic at most this often unless a version's state changes


@dataclass
class Share:
    name: str
    rps: float | None = None
    errors: float | None = None


@dataclass
class VersionFigures:
    """One version's traffic: rates per second over the window, latency in seconds."""

    name: str
    rps: float = 0.0
    client: float = 0.0
    server: float = 0.0
    timeouts: float = 0.0
    week_ago: float | None = None
    latency: dict[str, float | None] = field(default_factory=dict)
    consumers: dict[str, Share] = field(default_factory=dict)
    routes: dict[str, Share] = field(default_factory=dict)

    @property
    def failed(self) -> float:
        """Failed requests per second: server errors and timeouts (client errors are the caller's)."""
        return self.server + self.timeouts

    def ratio(self, part: float) -> float | None:
        return part / self.rps if self.rps > 0 else None

    @property
    def error_ratio(self) -> float | None:
        return self.ratio(self.failed)


@dataclass
class Figures:
    """A product's traffic, by version."""

    versions: dict[str, VersionFigures] = field(default_factory=dict)

    def version(self, name: str) -> VersionFigures:
        return self.versions.setdefault(name, VersionFigures(name))

    @property
    def rps(self) -> float:
        return sum(v.rps for v in self.versions.values())

    @property
    def failed(self) -> float:
        return sum(v.failed for v in self.versions.values())


def value(sample: Mapping[str, Any]) -> float:
    """A sample's value; NaN and infinities (e.g. 0/0) count as 0."""
    try:
        number = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def classify(code: str, timeout_codes: Iterable[str]) -> str | None:
    """client, server, timeout or None (not an error) for a status code label value."""
    if code in set(timeout_codes):
        return "timeout"
    if code[:1] == "4":
        return "client"
    if code[:1] == "5":
        return "server"
    return None


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over cumulative ``(le, count)`` buckets (linear within a
    bucket, the lower bound of the first bucket 0, the highest finite bound if it lands in +Inf).
    None without observations."""
    buckets = sorted(buckets)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def assemble(shape: Shape, answers: Mapping[str, list[dict[str, Any]]]) -> dict[str, Figures]:
    """Figures per product value from the answers to ``promql.queries``."""
    out: dict[str, Figures] = {}

    def names(labels: Mapping[str, Any]) -> tuple[str, str]:
        product = str(labels.get(shape.product, ""))
        return product, shape.version_name(product, str(labels.get(shape.version, "")))

    def version_of(sample: Mapping[str, Any]) -> VersionFigures:
        product, version = names(sample.get("metric") or {})
        return out.setdefault(product, Figures()).version(version)

    for sample in answers.get("codes") or []:
        figures, rate = version_of(sample), value(sample)
        figures.rps += rate
        kind = classify(str((sample.get("metric") or {}).get(shape.status, "")), shape.timeout_codes)
        if kind == "client":
            figures.client += rate
        elif kind == "server":
            figures.server += rate
        elif kind == "timeout":
            figures.timeouts += rate
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for sample in answers.get("buckets") or []:
        labels = sample.get("metric") or {}
        try:
            le = float(labels.get("le", "")) * shape.duration_scale
        except ValueError:
            continue
        buckets.setdefault(names(labels), []).append((le, value(sample)))
    for (product, version), series in buckets.items():
        figures = out.setdefault(product, Figures()).version(version)
        figures.latency = {name: histogram_quantile(q, series) for name, q in QUANTILES.items()}
    for answer, label, attr, part in (
        ("consumers", shape.consumer, "consumers", "rps"),
        ("consumerErrors", shape.consumer, "consumers", "errors"),
        ("routes", shape.route, "routes", "rps"),
        ("routeErrors", shape.route, "routes", "errors"),
    ):
        for sample in answers.get(answer) or []:
            name = str((sample.get("metric") or {}).get(label, ""))
            if not name:
                continue
            shares: dict[str, Share] = getattr(version_of(sample), attr)
            setattr(shares.setdefault(name, Share(name)), part, value(sample))
    for sample in answers.get("weekAgo") or []:
        figures = version_of(sample)
        figures.week_ago = (figures.week_ago or 0.0) + value(sample)
    return out


def state(figures: Figures | None, degraded_ratio: float, error: str | None = None) -> str:
    """unknown (Prometheus did not answer), idle (no requests), erroring or ok."""
    if error is not None or figures is None:
        return "unknown" if error is not None else "idle"
    if figures.rps <= 0:
        return "idle"
    if any((v.error_ratio or 0.0) >= degraded_ratio for v in figures.versions.values() if v.rps > 0):
        return "erroring"
    return "ok"


def _round(number: float | None, digits: int = 4) -> float | None:
    if number is None:
        return None
    if number == 0:
        return 0.0
    return round(number, max(0, digits - 1 - int(math.floor(math.log10(abs(number))))))


def _shares(shares: Mapping[str, Share], top: int) -> list[dict[str, Any]]:
    ranked = sorted(shares.values(), key=lambda s: (-(s.rps or 0.0), -(s.errors or 0.0), s.name))
    by_errors = sorted((s for s in shares.values() if s.errors), key=lambda s: (-(s.errors or 0.0), s.name))
    chosen = ranked[:top] + [s for s in by_errors[:top] if s not in ranked[:top]]
    return [
        {
            k: v
            for k, v in {
                "name": s.name[:256],
                "rps": _round(s.rps),
                "errorsPerSecond": _round(s.errors),
            }.items()
            if v is not None
        }
        for s in chosen
    ]


def status(
    figures: Figures | None,
    *,
    at: datetime,
    window: str,
    top: int,
    degraded_ratio: float,
    error: str | None = None,
) -> dict[str, Any]:
    """``status.traffic``: compact, versions sorted by name, figures to 4 significant digits."""
    out: dict[str, Any] = {
        "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "window": window,
        "state": state(figures, degraded_ratio, error),
    }
    if error is not None:
        out["message"] = error[:1024]
        return out
    versions = []
    for name, v in sorted((figures or Figures()).versions.items())[:40]:
        entry: dict[str, Any] = {
            "name": name[:63],
            "rps": _round(v.rps),
            "weekAgoRps": _round(v.week_ago),
            "errorRatio": _round(v.error_ratio),
            "clientErrorRatio": _round(v.ratio(v.client)),
            "serverErrorRatio": _round(v.ratio(v.server)),
            "timeoutRatio": _round(v.ratio(v.timeouts)),
        }
        for key, seconds in v.latency.items():
            entry[f"{key}Ms"] = _round(seconds * 1000 if seconds is not None else None)
        if v.consumers:
            entry["topConsumers"] = _shares(v.consumers, top)
        if v.routes:
            entry["topRoutes"] = _shares(v.routes, top)
        versions.append({k: val for k, val in entry.items() if val is not None})
    out["versions"] = versions
    return out


def bands(traffic: Mapping[str, Any] | None, degraded_ratio: float) -> tuple[Any, ...]:
    """What makes a write urgent: the state, and per version whether it serves and errs."""
    traffic = traffic or {}
    return (
        traffic.get("state"),
        tuple(
            (v.get("name"), float(v.get("rps") or 0) > 0, float(v.get("errorRatio") or 0) >= degraded_ratio)
            for v in traffic.get("versions") or []
        ),
    )


def due(
    written: Mapping[str, Any] | None,
    written_at: datetime | None,
    new: Mapping[str, Any],
    now: datetime,
    degraded_ratio: float,
    every: float = WRITE_EVERY,
) -> bool:
    """Write ``new`` now? Yes when nothing was written, ``every`` seconds have passed, or the
    state changed (ok, erroring, idle, unknown; a version starting or stopping to serve or err)."""
    if written is None or written_at is None:
        return True
    if (now - written_at).total_seconds() >= every:
        return True
    return bands(written, degraded_ratio) != bands(new, degraded_ratio)
