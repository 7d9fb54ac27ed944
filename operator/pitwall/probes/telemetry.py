"""Per-probe Prometheus series, kept as plain numbers on each job and exposed by one collector.

``pitwall_probe_success``, ``pitwall_probe_up``, ``pitwall_probe_runs_total`` and
``pitwall_probe_duration_seconds`` have one series (or one histogram per step) per probe. As
prometheus_client metric children they cost about 30 Python objects per probe (a value and a
lock per bucket, a child object per label set): 28 MB of objects at 5,000 probes, the second
largest item in the operator's heap, and 8 MB of resident memory (bench/results/probes.md). Here each job carries a :class:`Numbers`
(a few ints and one float array per step) and :data:`COLLECTOR` turns them into the same
exposition at scrape time. A deleted probe's series go with its job.
"""

from __future__ import annotations

import weakref
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from .. import metrics

OVERLOADED_HELP = "1 while more probe runs are due than can run on time (runs start over 0.5 s late); lateness, never failures"
OVERLOADED_SECONDS_HELP = "Seconds the probe scheduler was overloaded"
WAITING_HELP = "Probe runs due and waiting for a slot"
LIMIT_HELP = (
    "Probe runs allowed in flight: --probe-concurrency, lower while the event loop is late (the CPU cannot keep up)"
)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LE = [floatToGoString(b) for b in BUCKETS] + ["+Inf"]
LABELS = ["kind", "namespace", "name"]


class Numbers:
    """One probe's series: last result, state after thresholds, run counts, step durations."""

    __slots__ = ("success", "up", "passed", "failed", "steps")

    def __init__(self) -> None:
        self.success: int | None = None  # None until the first run
        self.up = 0
        self.passed = 0
        self.failed = 0
        # step -> counts per bucket (not cumulative; the last one is +Inf), then the sum
        self.steps: dict[str, array] = {}

    def record(self, ok: bool, up: bool, durations: Iterable[tuple[str, float]]) -> None:
        """One run: whether it passed, whether the probe is Up now, seconds per step that ran."""
        self.success, self.up = int(ok), int(up)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        for step, seconds in durations:
            counts = self.steps.get(step)
            if counts is None:
                counts = self.steps[step] = array("d", bytes(8 * (len(BUCKETS) + 2)))
            counts[bisect_left(BUCKETS, seconds)] += 1  # le: a bucket includes its bound
            counts[-1] += seconds


class _Source(Protocol):
    @property
    def jobs(self) -> Mapping[tuple[str, str, str], Any]: ...  # key -> an object with ``numbers``


class Collector:
    """Exposes the numbers of every job of every registered monitor."""

    def __init__(self) -> None:
        self._sources: weakref.WeakSet = weakref.WeakSet()

    def watch(self, source: _Source) -> None:
        self._sources.add(source)

    def describe(self) -> list:
        return list(self._families())

    def collect(self) -> Iterator:
        success, up, runs, duration = families = self._families()
        overloaded = GaugeMetricFamily("pitwall_probe_overloaded", OVERLOADED_HELP)
        overloaded_s = CounterMetricFamily("pitwall_probe_overloaded_seconds_total", OVERLOADED_SECONDS_HELP)
        waiting = GaugeMetricFamily("pitwall_probe_runs_waiting", WAITING_HELP)
        limit = GaugeMetricFamily("pitwall_probe_runs_in_flight_limit", LIMIT_HELP)
        schedulers = [s for s in (getattr(source, "scheduler", None) for source in list(self._sources)) if s]
        if schedulers:
            overloaded.add_metric([], max(int(s.overloaded()) for s in schedulers))
            overloaded_s.add_metric([], sum(s.overloaded_seconds() for s in schedulers))
            waiting.add_metric([], sum(s.waiting for s in schedulers))
            limit.add_metric([], sum(s.limit for s in schedulers))
        for source in list(self._sources):
            for key, job in list(source.jobs.items()):
                numbers: Numbers = job.numbers
                if numbers.success is None:
                    continue
                labels = list(key)
                success.add_metric(labels, numbers.success)
                up.add_metric(labels, numbers.up)
                runs.add_metric([*labels, "success"], numbers.passed)
                runs.add_metric([*labels, "failure"], numbers.failed)
                for step, counts in numbers.steps.items():
                    cumulative, buckets = 0.0, []
                    for le, count in zip(_LE, counts[:-1], strict=True):
                        cumulative += count
                        buckets.append((le, cumulative))
                    duration.add_metric([*labels, step], buckets, counts[-1])
        return iter((*families, overloaded, overloaded_s, waiting, limit))

    @staticmethod
    def _families() -> tuple:
        return (
            GaugeMetricFamily("pitwall_probe_success", "1 when the last run passed", labels=LABELS),
            GaugeMetricFamily(
                "pitwall_probe_up", "1 when the probe's state is Up (after thresholds)", labels=LABELS
            ),
            CounterMetricFamily(
                "pitwall_probe_runs_total", "Probe runs by result", labels=[*LABELS, "result"]
            ),
            HistogramMetricFamily(
                "pitwall_probe_duration_seconds", "Request duration per step", labels=[*LABELS, "step"]
            ),
        )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(collector: Collector) -> bytes:
    """What ``generate_latest`` makes of ``collector`` (same lines, labels sorted by name, same
    number format), written directly: the per-probe series are 15 histogram lines and 4 more per
    probe, 90,000 lines at 5,000 probes, and prometheus_client formats each sample through
    several generic layers (0.59 s of CPU for 5,000 probes; this takes a fraction of that)."""
    out: list[str] = []
    success: list[str] = []
    up: list[str] = []
    runs: list[str] = []
    duration: list[str] = []
    for source in list(collector._sources):
        for (kind, namespace, name), job in list(source.jobs.items()):
            numbers: Numbers = job.numbers
            if numbers.success is None:
                continue
            head = f'kind="{_quote(kind)}",'
            tail = f'name="{_quote(name)}",namespace="{_quote(namespace)}"'
            labels = head + tail
            success.append(f"pitwall_probe_success{{{labels}}} {numbers.success}.0\n")
            up.append(f"pitwall_probe_up{{{labels}}} {numbers.up}.0\n")
            runs.append(
                f'pitwall_probe_runs_total{{{labels},result="success"}} {numbers.passed}.0\n'
                f'pitwall_probe_runs_total{{{labels},result="failure"}} {numbers.failed}.0\n'
            )
            for step, counts in numbers.steps.items():
                step_label = f'step="{_quote(step)}"'
                cumulative = 0.0
                for le, count in zip(_LE, counts[:-1], strict=True):
                    cumulative += count
                    duration.append(
                        f'pitwall_probe_duration_seconds_bucket{{{head}le="{le}",{tail},{step_label}}} '
                        f"{floatToGoString(cumulative)}\n"
                    )
                duration.append(
                    f"pitwall_probe_duration_seconds_count{{{labels},{step_label}}} "
                    f"{floatToGoString(cumulative)}\n"
                    f"pitwall_probe_duration_seconds_sum{{{labels},{step_label}}} "
                    f"{floatToGoString(counts[-1])}\n"
                )
    for family, lines in zip(collector._families()[:4], (success, up, runs, duration), strict=True):
        kind = family.type
        name = family.name + ("_total" if kind == "counter" else "")
        out.append(f"# HELP {name} {family.documentation}\n# TYPE {name} {kind}\n")
        out.extend(lines)
    schedulers = [s for s in (getattr(source, "scheduler", None) for source in list(collector._sources)) if s]
    for name, kind, help_text, value in (
        (
            "pitwall_probe_overloaded",
            "gauge",
            OVERLOADED_HELP,
            max((int(s.overloaded()) for s in schedulers), default=None),
        ),
        (
            "pitwall_probe_overloaded_seconds_total",
            "counter",
            OVERLOADED_SECONDS_HELP,
            sum(s.overloaded_seconds() for s in schedulers) if schedulers else None,
        ),
        (
            "pitwall_probe_runs_waiting",
            "gauge",
            WAITING_HELP,
            sum(s.waiting for s in schedulers) if schedulers else None,
        ),
        (
            "pitwall_probe_runs_in_flight_limit",
            "gauge",
            LIMIT_HELP,
            sum(s.limit for s in schedulers) if schedulers else None,
        ),
    ):
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        if value is not None:
            out.append(f"{name} {floatToGoString(value)}\n")
    return "".join(out).encode()


COLLECTOR = Collector()
# Not in prometheus_client's registry: /metrics appends ``render(COLLECTOR)`` (metrics.py).
metrics.EXPOSITIONS.append(lambda: render(COLLECTOR))
