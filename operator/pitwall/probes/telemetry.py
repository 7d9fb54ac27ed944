"""Per-probe Prometheus series, kept as plain numbers on each job and exposed by one collector.

Per probe (labels ``kind``, ``namespace``, ``name``): ``pitwall_probe_success``,
``pitwall_probe_up``, ``pitwall_probe_runs_total{result}`` and
``pitwall_probe_step_duration_seconds{step}`` (the step's seconds in the probe's last run, as
blackbox_exporter's ``probe_duration_seconds`` and Gatus' ``gatus_results_duration_seconds``).
The distribution of step durations, ``pitwall_probe_duration_seconds``, is one histogram per
kind, namespace and step, not one per probe: per probe it was 14 series a step (11 buckets,
``+Inf``, count, sum), 80% of /metrics at 5,000 probes (11 MB, 90,000 samples, for
Prometheus 90,000 series to keep), and a probe's own latency percentiles are in its status.

As prometheus_client metric children these would cost about 30 Python objects per probe (a
value and a lock per bucket, a child object per label set). Here each job carries a
:class:`Numbers` (a few ints and the last durations) and :data:`DURATIONS` the histograms; the
page is written directly at scrape time (:func:`render`). A deleted probe's series go with its
job; a namespace's histograms go from the page with its last probe.
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
LIMIT_HELP = "Probe runs allowed in flight: --probe-concurrency, lower while the event loop is late (the CPU cannot keep up)"
SUCCESS_HELP = "1 when the last run passed"
UP_HELP = "1 when the probe's state is Up (after thresholds)"
RUNS_HELP = "Probe runs by result"
STEP_HELP = "Seconds each step took in the probe's last run (a step that did not run has no series)"
DURATION_HELP = "Step durations of every run of the probes of one kind in one namespace"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LE = [floatToGoString(b) for b in BUCKETS] + ["+Inf"]
LABELS = ["kind", "namespace", "name"]

Where = tuple[str, str]  # (kind, namespace): one histogram per step


class Durations:
    """Step durations of every run, per (kind, namespace) and step: counts per bucket (not
    cumulative; the last but one is +Inf), then the sum.

    Counts only grow, even when probes go (a histogram is a counter: Prometheus would read a
    drop as a restart); a (kind, namespace) without a probe left is just not shown."""

    def __init__(self) -> None:
        self.groups: dict[Where, dict[str, array]] = {}

    def observe(self, where: Where, step: str, seconds: float) -> None:
        group = self.groups.get(where)
        if group is None:
            group = self.groups[where] = {}
        counts = group.get(step)
        if counts is None:
            counts = group[step] = array("d", bytes(8 * (len(BUCKETS) + 2)))
        counts[bisect_left(BUCKETS, seconds)] += 1  # le: a bucket includes its bound
        counts[-1] += seconds


DURATIONS = Durations()


class Numbers:
    """One probe's series: last result, state after thresholds, run counts, last step durations."""

    __slots__ = ("success", "up", "passed", "failed", "last", "labels")

    def __init__(self) -> None:
        self.success: int | None = None  # None until the first run
        self.up = 0
        self.passed = 0
        self.failed = 0
        self.last: dict[str, float] = {}  # step -> seconds, in the last run
        self.labels: str | None = None  # its labels as written on the page (render's cache)

    def record(
        self,
        ok: bool,
        up: bool,
        durations: Iterable[tuple[str, float]],
        where: Where,
        into: Durations = DURATIONS,
    ) -> None:
        """One run of the probe ``where`` = (kind, namespace): whether it passed, whether the
        probe is Up now, seconds per step that ran (into the histograms too)."""
        self.success, self.up = int(ok), int(up)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        last = {}
        for step, seconds in durations:
            last[step] = seconds
            into.observe(where, step, seconds)
        self.last = last


class _Source(Protocol):
    @property
    def jobs(self) -> Mapping[tuple[str, str, str], Any]: ...  # key -> an object with ``numbers``


def _cumulative(counts: array) -> tuple[list[tuple[str, float]], float]:
    """Buckets as Prometheus has them (cumulative, by ``le``) and the sum."""
    cumulative, buckets = 0.0, []
    for le, count in zip(_LE, counts[:-1], strict=True):
        cumulative += count
        buckets.append((le, cumulative))
    return buckets, counts[-1]


class Collector:
    """Exposes the numbers of every job of every registered monitor, and their histograms.

    The page itself is written by :func:`render`; this prometheus_client collector makes the
    same families (tests compare the two byte for byte)."""

    def __init__(self, durations: Durations = DURATIONS) -> None:
        self._sources: weakref.WeakSet = weakref.WeakSet()
        self.durations = durations

    def watch(self, source: _Source) -> None:
        self._sources.add(source)

    def describe(self) -> list:
        return list(self._families())

    def jobs(self) -> list[tuple[tuple[str, str, str], Numbers]]:
        """Every probe that ran, with its numbers (a snapshot: the loop may change the jobs)."""
        # dict.copy(), not list(d.items()): this runs on the metrics server's thread, and building
        # the list can start a garbage collection, whose callbacks let the loop change the dict
        # midway ("dictionary changed size during iteration"); the copy is one C call.
        return [
            (key, job.numbers)
            for source in list(self._sources)
            for key, job in source.jobs.copy().items()
            if job.numbers.success is not None
        ]

    def histograms(self, jobs: list) -> list[tuple[Where, str, array]]:
        """The histograms of every (kind, namespace) that has a probe now, in a stable order."""
        present = {key[:2] for key, _ in jobs}
        return [
            (where, step, counts)
            for where, group in sorted(self.durations.groups.copy().items(), key=lambda item: item[0])
            if where in present
            for step, counts in sorted(group.copy().items(), key=lambda item: item[0])
        ]

    def schedulers(self) -> list:
        return [s for s in (getattr(source, "scheduler", None) for source in list(self._sources)) if s]

    def collect(self) -> Iterator:
        success, up, runs, step_seconds, duration = families = self._families()
        overloaded = GaugeMetricFamily("pitwall_probe_overloaded", OVERLOADED_HELP)
        overloaded_s = CounterMetricFamily("pitwall_probe_overloaded_seconds_total", OVERLOADED_SECONDS_HELP)
        waiting = GaugeMetricFamily("pitwall_probe_runs_waiting", WAITING_HELP)
        limit = GaugeMetricFamily("pitwall_probe_runs_in_flight_limit", LIMIT_HELP)
        schedulers = self.schedulers()
        if schedulers:
            overloaded.add_metric([], max(int(s.overloaded()) for s in schedulers))
            overloaded_s.add_metric([], sum(s.overloaded_seconds() for s in schedulers))
            waiting.add_metric([], sum(s.waiting for s in schedulers))
            limit.add_metric([], sum(s.limit for s in schedulers))
        jobs = self.jobs()
        for key, numbers in jobs:
            labels = list(key)
            success.add_metric(labels, numbers.success)
            up.add_metric(labels, numbers.up)
            runs.add_metric([*labels, "success"], numbers.passed)
            runs.add_metric([*labels, "failure"], numbers.failed)
            for step, seconds in numbers.last.items():  # replaced by each run, never changed
                step_seconds.add_metric([*labels, step], seconds)
        for (kind, namespace), step, counts in self.histograms(jobs):
            duration.add_metric([kind, namespace, step], *_cumulative(counts))
        return iter((*families, overloaded, overloaded_s, waiting, limit))

    @staticmethod
    def _families() -> tuple:
        return (
            GaugeMetricFamily("pitwall_probe_success", SUCCESS_HELP, labels=LABELS),
            GaugeMetricFamily("pitwall_probe_up", UP_HELP, labels=LABELS),
            CounterMetricFamily("pitwall_probe_runs_total", RUNS_HELP, labels=[*LABELS, "result"]),
            GaugeMetricFamily("pitwall_probe_step_duration_seconds", STEP_HELP, labels=[*LABELS, "step"]),
            HistogramMetricFamily(
                "pitwall_probe_duration_seconds", DURATION_HELP, labels=["kind", "namespace", "step"]
            ),
        )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _count(value: int) -> str:
    """``floatToGoString`` of a whole number, the usual case without its generic path."""
    return f"{value}.0" if value < 1_000_000 else floatToGoString(value)


def render(collector: Collector) -> bytes:
    """What ``generate_latest`` makes of ``collector`` (same lines, labels sorted by name, same
    number format), written directly: the per-probe series are about 5 lines per probe, 25,000
    at 5,000 probes, and prometheus_client formats each sample through several generic layers
    (about ten times slower). Each probe's labels are written once and kept on its numbers."""
    success: list[str] = []
    up: list[str] = []
    runs: list[str] = []
    step_seconds: list[str] = []
    jobs = collector.jobs()
    for (kind, namespace, name), numbers in jobs:
        labels = numbers.labels
        if labels is None:  # a probe's key never changes: its numbers move to its next job
            labels = numbers.labels = (
                f'kind="{_quote(kind)}",name="{_quote(name)}",namespace="{_quote(namespace)}"'
            )
        success.append(f"pitwall_probe_success{{{labels}}} {numbers.success}.0\n")
        up.append(f"pitwall_probe_up{{{labels}}} {numbers.up}.0\n")
        runs.append(
            f'pitwall_probe_runs_total{{{labels},result="success"}} {_count(numbers.passed)}\n'
            f'pitwall_probe_runs_total{{{labels},result="failure"}} {_count(numbers.failed)}\n'
        )
        for step, seconds in numbers.last.items():  # replaced by each run, never changed
            step_seconds.append(
                f'pitwall_probe_step_duration_seconds{{{labels},step="{_quote(step)}"}} {floatToGoString(seconds)}\n'
            )
    duration: list[str] = []
    for (kind, namespace), step, counts in collector.histograms(jobs):
        head = f'kind="{_quote(kind)}",'
        tail = f'namespace="{_quote(namespace)}",step="{_quote(step)}"'
        buckets, total = _cumulative(counts)
        for le, cumulative in buckets:
            duration.append(
                f'pitwall_probe_duration_seconds_bucket{{{head}le="{le}",{tail}}} {floatToGoString(cumulative)}\n'
            )
        duration.append(
            f"pitwall_probe_duration_seconds_count{{{head}{tail}}} {floatToGoString(buckets[-1][1])}\n"
            f"pitwall_probe_duration_seconds_sum{{{head}{tail}}} {floatToGoString(total)}\n"
        )
    out: list[str] = []
    for family, lines in zip(collector._families(), (success, up, runs, step_seconds, duration), strict=True):
        kind = family.type
        name = family.name + ("_total" if kind == "counter" else "")
        out.append(f"# HELP {name} {family.documentation}\n# TYPE {name} {kind}\n")
        out.extend(lines)
    schedulers = collector.schedulers()
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
