"""5,000 probes at a 10 s interval: scheduling lag, CPU per check, memory, API writes (issue 4).

Pitwall phase: a fresh control plane and the operator as a subprocess; 5,000 single-step
Probes (GET on a URL, 200 expected, 10 s interval, 2 s timeout) spread over 4 aiohttp target
servers on 127.0.0.1 that run in their own process (bench.targets), so the operator's CPU is
measured alone. After every probe has run once and one more interval has passed (the creation
burst is over), a measurement window of 3 minutes (--quick: 500 probes, 60 s). Then the operator
and the control plane are stopped and Gatus runs the same 5,000 endpoints against the same target
process for the same window, alone on the machine, measured the same way; then Debian's
blackbox_exporter, driven as Prometheus would drive it (``bench.blackbox``), a second Go reference.

What each number means:

- checks: requests the target servers answered during the window (their own counters), the
  same count for Pitwall and Gatus; Pitwall's ``pitwall_probe_runs_total`` delta cross-checks it.
- scheduling lag p50/p99: start time minus due time of each run in the window, from the delta
  of the operator's ``pitwall_probe_schedule_lag_seconds`` histogram between the window's two
  scrapes. The estimate interpolates linearly inside the bucket holding the quantile (as
  Prometheus' histogram_quantile does); the bucket's upper bound is what the value is at most,
  and the target is judged on that bound.
- CPU seconds per 1,000 checks: (utime + stime) delta of the checker process from
  /proc/<pid>/stat over the window, divided by checks, times 1,000.
- peak RSS: VmHWM from /proc/<pid>/status at the end (the peak since the process started,
  probe creation included); the largest VmRSS seen in the window (sampled every 5 s) too.
- API-server writes per minute: ``pitwall_probe_status_writes_total`` delta per minute, and
  kube-apiserver's own ``apiserver_request_total`` (read at /metrics with the admin client
  certificate) for PATCH on probes/status, and for every mutating verb on every resource.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pitwall import conditions, durations
from pitwall.kube import Kube
from pitwall.probes.reconcile import probe_conditions
from pitwall.probes.stats import Stats
from pitwall_testing.cluster import free_port

from . import blackbox, gatus, scale
from .common import (
    RESULTS,
    ROOT,
    Metric,
    Operator,
    Report,
    apiserver_metrics,
    bounded,
    bucket_delta,
    control_plane,
    histogram_buckets,
    histogram_quantile,
    machine,
    machine_busy_seconds,
    metric_samples,
    metric_sum,
    sample,
    spawn,
    stop_group,
)
from .targets import Targets

NAMESPACE = "bench-probes"
LAG = "pitwall_probe_schedule_lag_seconds"
DURATION = "pitwall_probe_duration_seconds"
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")
MB = 1e6
NOISE_SHARE = 0.5  # the noisy neighbour: half a core, beside every contender alike


@dataclass(frozen=True)
class Size:
    probes: int
    interval: int  # seconds
    window: int  # seconds measured


FULL = Size(probes=5000, interval=10, window=180)
QUICK = Size(probes=500, interval=10, window=60)


def probe(index: int, url: str, interval: int) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Probe",
        "metadata": {"name": f"p{index:05d}", "namespace": NAMESPACE},
        "spec": {"target": {"url": url}, "interval": f"{interval}s", "timeout": "2s"},
    }


def seeded_status(interval: int) -> dict:
    """A probe's status as a long-running operator leaves it: Up, with 90 days of runs every
    ``interval`` (one failure a day), built by the probe engine's own code so the format is real."""
    stats = Stats()
    now = datetime.now(UTC)
    at = now - timedelta(days=90)
    while at < now:
        stats.record(at, at.minute != 0 or at.hour != 3, 12.0)
        at += timedelta(seconds=interval)
    status = stats.to_status(now)
    status.pop("latency", None)
    at = durations.rfc3339(now)
    status.update(
        {
            "state": "Up",
            "consecutiveFailures": 0,
            "consecutiveSuccesses": 100,
            "observedGeneration": 1,
            "lastRun": {"at": at, "result": "Success", "latencyMs": 1.0, "correlationId": str(uuid.uuid4())},
            "conditions": conditions.merge(None, probe_conditions("Up", None), 1, now=at),
        }
    )
    return status


@dataclass
class Window:
    """What one checker process did between two moments."""

    seconds: float
    checks: int  # answered by the targets
    cpu_seconds: float  # the checker's utime + stime
    machine_cpu_seconds: float
    targets_cpu_seconds: float  # the target servers' process, to show it was not the bottleneck
    max_rss: int
    hwm: int


def observe(pid: int, targets: Targets, seconds: int, before=None, after=None) -> Window:
    """Measure ``pid`` for ``seconds``; ``before``/``after`` run just outside the CPU window."""
    if before:
        before()
    answered0, machine0, start = targets.answered(), machine_busy_seconds(), sample(pid)
    targets0 = sample(targets.pid).cpu_seconds
    max_rss = start.rss_bytes
    deadline = start.at + seconds
    while time.monotonic() < deadline:
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        max_rss = max(max_rss, sample(pid).rss_bytes)
    end, machine1, answered1 = sample(pid), machine_busy_seconds(), targets.answered()
    targets1 = sample(targets.pid).cpu_seconds
    if after:
        after()
    return Window(
        end.at - start.at,
        answered1 - answered0,
        end.cpu_seconds - start.cpu_seconds,
        machine1 - machine0,
        targets1 - targets0,
        max(max_rss, end.rss_bytes),
        end.hwm_bytes,
    )


def wait_until(check, timeout: float, what: str, interval: float = 2.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def pitwall_phase(workdir: Path, size: Size, targets: Targets) -> dict:
    with control_plane(workdir) as cluster:

        async def create() -> None:
            async with Kube.from_env(str(cluster.kubeconfig)) as kube:
                await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
                await bounded(
                    (
                        kube.apply(probe(i, targets.url(i), size.interval), field_manager="bench")
                        for i in range(size.probes)
                    ),
                    limit=32,
                )
                # Steady state, not a fresh start: every probe already has 90 days of history in
                # its status (what a long-running operator holds in memory and writes back).
                seeded = seeded_status(size.interval)
                await bounded(
                    (kube.patch_status("Probe", NAMESPACE, f"p{i:05d}", seeded) for i in range(size.probes)),
                    limit=32,
                )

        started = time.monotonic()
        asyncio.run(create())
        created = time.monotonic() - started
        with Operator(cluster, workdir, NAMESPACE) as op:
            return measure(cluster, op, size, targets, created)


def measure(cluster, op: Operator, size: Size, targets: Targets, created: float) -> dict:
    """From the operator's start: every probe run once, one more interval, then the window."""

    def started() -> bool:
        text = op.metrics()
        return (
            metric_sum(text, "pitwall_probe_runs_total") >= size.probes
            and metric_sum(text, "pitwall_reconcile_total", kind="Probe") >= size.probes
            and metric_sum(text, "pitwall_workqueue_depth", kind="Probe") == 0
        )

    ran_once = wait_until(started, 600, "every probe reconciled and run once", interval=5.0)
    time.sleep(size.interval)
    quiet = one_window(cluster, op, size, targets)
    with Noise(op.log_path.parent) as noise:
        loud = one_window(cluster, op, size, targets)
        loud["noise_cpu_seconds"] = noise.cpu_seconds()
    return {"created_s": created, "ran_once_s": ran_once, "off": quiet, "on": loud}


def one_window(cluster, op: Operator, size: Size, targets: Targets) -> dict:
    """One measurement window of the running operator (its scrapes just outside it)."""
    scrapes: dict[str, tuple] = {}

    def scrape(key: str) -> None:
        began = time.perf_counter()
        text = op.metrics()
        took = time.perf_counter() - began  # the operator's scrape alone, not kube-apiserver's
        scrapes[key] = (text, apiserver_metrics(cluster), took)

    window = observe(
        op.pid, targets, size.window, before=lambda: scrape("before"), after=lambda: scrape("after")
    )
    (op0, api0, _), (op1, api1, scrape_s) = scrapes["before"], scrapes["after"]

    def delta(text0, text1, name, **labels):
        return metric_sum(text1, name, **labels) - metric_sum(text0, name, **labels)

    lag = bucket_delta(histogram_buckets(op1, LAG), histogram_buckets(op0, LAG))
    return {
        "window": window,
        "overloaded_s": delta(op0, op1, "pitwall_probe_overloaded_seconds_total"),
        "runs": delta(op0, op1, "pitwall_probe_runs_total"),
        "failures": delta(op0, op1, "pitwall_probe_runs_total", result="failure"),
        "lag_p50": histogram_quantile(0.5, lag),
        "lag_p99": histogram_quantile(0.99, lag),
        "lag_buckets": lag,
        # How long the checks themselves took (all probes' step histograms summed): a slow
        # target holds check slots, and runs due meanwhile wait for one.
        "duration_buckets": bucket_delta(histogram_buckets(op1, DURATION), histogram_buckets(op0, DURATION)),
        "status_writes": delta(op0, op1, "pitwall_probe_status_writes_total"),
        "api_status_patches": delta(
            api0, api1, "apiserver_request_total", verb="PATCH", resource="probes", subresource="status"
        ),
        "api_status_patches_by_code": {
            code: delta(
                api0,
                api1,
                "apiserver_request_total",
                verb="PATCH",
                resource="probes",
                subresource="status",
                code=code,
            )
            for code in sorted(
                {
                    labels.get("code")
                    for name, labels, _ in metric_samples(api1)
                    if name == "apiserver_request_total"
                    and labels.get("resource") == "probes"
                    and labels.get("subresource") == "status"
                    and labels.get("verb") == "PATCH"
                }
            )
        },
        "client_status_patches": delta(
            op0, op1, "pitwall_kube_requests_total", method="PATCH", resource="probes/status"
        ),
        "api_writes": sum(delta(api0, api1, "apiserver_request_total", verb=verb) for verb in WRITE_VERBS),
        "metrics_bytes": len(op1.encode()),
        "metrics_scrape_s": scrape_s,
        "gc": {generation: gc_pauses(op0, op1, generation) for generation in ("0", "1", "2")},
    }


def gc_pauses(text0: str, text1: str, generation: str) -> dict:
    """Collections of one generation in the window: how many, their total and their largest (bound)."""

    def pick(text, suffix):
        return {
            labels.get("le"): value
            for name, labels, value in metric_samples(text)
            if name == f"pitwall_gc_pause_seconds{suffix}" and labels.get("generation") == generation
        }

    buckets0, buckets1 = pick(text0, "_bucket"), pick(text1, "_bucket")
    count = sum(pick(text1, "_count").values()) - sum(pick(text0, "_count").values())
    total = sum(pick(text1, "_sum").values()) - sum(pick(text0, "_sum").values())
    largest = (
        next(
            (
                float(le)
                for le, n in sorted(buckets1.items(), key=lambda kv: float(kv[0]))
                if n - buckets0.get(le, 0) >= count
            ),
            float("inf"),
        )
        if count
        else 0.0
    )
    return {"count": count, "seconds": total, "largest_at_most": largest}


class Noise:
    """The noisy neighbour (``bench.noise``, half a core) for the ``with`` block; its CPU measured."""

    def __init__(self, workdir: Path | None = None, share: float = NOISE_SHARE):
        self.share = share
        self.workdir = workdir or Path(tempfile.gettempdir())
        self.proc: subprocess.Popen | None = None
        self.cpu0 = 0.0

    def __enter__(self) -> Noise:
        self.proc = spawn(
            [sys.executable, "-m", "bench.noise", "--share", str(self.share)],
            log_path=self.workdir / "noise.log",
            cwd=ROOT,
        )
        time.sleep(1)
        self.cpu0 = sample(self.proc.pid).cpu_seconds
        return self

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return sample(self.proc.pid).cpu_seconds - self.cpu0

    def __exit__(self, *exc) -> None:
        stop_group(self.proc)


def two_windows(pid: int, targets: Targets, size: Size, workdir: Path) -> dict:
    """The load-off window, then the same with the noisy neighbour running."""
    quiet = observe(pid, targets, size.window)
    with Noise(workdir) as noise:
        loud = observe(pid, targets, size.window)
        noise_cpu = noise.cpu_seconds()
    return {"off": {"window": quiet}, "on": {"window": loud, "noise_cpu_seconds": noise_cpu}}


def gatus_phase(workdir: Path, size: Size, targets: Targets, concurrency: int) -> dict:
    """Gatus on the same endpoints at ``concurrency``, measured once every endpoint has started
    (it starts them 222 ms apart); ``{"unavailable": reason}`` when it cannot be built or run."""
    try:
        binary = gatus.build()
        cfg = gatus.config(
            [targets.url(i) for i in range(size.probes)], size.interval, free_port(), concurrency
        )
        with gatus.Gatus(binary, workdir / f"gatus-{concurrency}", cfg) as running:
            began = time.monotonic()
            wait_until(
                lambda: gatus.endpoints_started(running.port) >= size.probes,
                size.probes * gatus.START_SPACING_S * 2 + 600,
                "every Gatus endpoint to start",
                interval=10.0,
            )
            all_started = time.monotonic() - began
            time.sleep(size.interval)
            return {
                "concurrency": concurrency,
                "all_started_s": all_started,
                "version": gatus.version(binary),
                **two_windows(running.pid, targets, size, workdir),
            }
    except gatus.Unavailable as exc:
        return {"concurrency": concurrency, "unavailable": str(exc)}


def blackbox_phase(workdir: Path, size: Size, targets: Targets) -> dict:
    """blackbox_exporter on the same targets, driven like Prometheus would; alone on the machine
    but for its driver, whose CPU is reported beside it."""
    try:
        path = blackbox.binary()
        urls = [targets.url(i) for i in range(size.probes)]
        running = blackbox.Exporter(path, workdir / "blackbox", free_port(), urls, size.interval, 2)
        with running:
            first = targets.answered()
            wait_until(
                lambda: targets.answered() - first >= size.probes,
                600,
                "blackbox_exporter to check every target",
            )
            time.sleep(size.interval)
            driver0 = sample(running.driver_pid).cpu_seconds
            windows = two_windows(running.pid, targets, size, workdir)
            driver_cpu = sample(running.driver_pid).cpu_seconds - driver0
        return {**windows, "driver_cpu_seconds": driver_cpu, "driver_counts": running.driver_counts()}
    except blackbox.Unavailable as exc:
        return {"unavailable": str(exc)}


PHASES = ("pitwall", "gatus", "blackbox", "overload", "scale")
# Measured alone on the machine, so a measurement of earlier the same day can stand in (reuse).
REFERENCES = {"pitwall": "pitwall", "gatus": "gatus", "blackbox": "blackbox_exporter"}


def parse_phases(text: str | None) -> tuple[str, ...]:
    """``pitwall,gatus`` -> the phases in their fixed order; ValueError names an unknown one."""
    if not text:
        return PHASES
    wanted = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in PHASES]
    if unknown or not wanted:
        raise ValueError(
            f"unknown probe benchmark phase(s) {unknown or text!r}; choose from {', '.join(PHASES)}"
        )
    return tuple(p for p in PHASES if p in wanted)


def run(workdir: Path, quick: bool = False, phases: tuple[str, ...] = PHASES) -> Report:
    """The phases asked for, in order; Pitwall, Gatus and blackbox_exporter not asked for are
    taken from a run of the same size on the same machine earlier the same day, if any
    (:func:`reusable`), and labelled so in the report."""
    size = QUICK if quick else FULL
    took: dict[str, float] = {}

    def timed(name, fn, *args):
        started = time.monotonic()
        print(f"   phase {name} ...", flush=True)
        try:
            return fn(*args)
        finally:
            took[name] = time.monotonic() - started
            print(f"   phase {name} took {took[name] / 60:.1f} min", flush=True)

    def guarded(name, fn, *args) -> dict:
        """overload and scale: a failure is reported, the other phases' numbers are kept."""
        try:
            return timed(name, fn, *args)
        except Exception as exc:
            return {"failed": f"{exc!r} (logs in {workdir})"}

    ours = theirs = exporter = overloaded = scaled = None
    with Targets(servers=4) as targets:
        if "pitwall" in phases:
            ours = timed("pitwall", pitwall_phase, workdir, size, targets)
        if "gatus" in phases:
            theirs = timed(
                "gatus",
                lambda: [
                    gatus_phase(workdir, size, targets, c)
                    for c in (gatus.DEFAULT_CONCURRENCY, gatus.SUSTAINING)
                ],
            )
        if "blackbox" in phases:
            exporter = timed("blackbox", blackbox_phase, workdir, size, targets)
        if "overload" in phases:
            overloaded = guarded("overload", scale.overload_phase, workdir, size, targets)
            show(scale.overload_rows(size, overloaded))
        if "scale" in phases:
            scaled = guarded("scale", scale.scale_phase, workdir, size, targets)
            show(scale.scale_rows(size, scaled))
    reused: dict[str, dict] = {}
    found = {"pitwall": ours, "gatus": theirs, "blackbox": exporter}
    for phase in REFERENCES:
        if phase not in phases:
            earlier = reusable(phase, size, quick)
            if earlier is not None:
                found[phase], reused[phase] = earlier
    return report(
        size,
        quick,
        found["pitwall"],
        found["gatus"],
        found["blackbox"],
        phases=phases,
        reused=reused,
        took=took,
        overloaded=overloaded,
        scaled=scaled,
    )


def show(rows: list[Metric]) -> None:
    """A phase's rows as soon as it ends (the whole report comes after the last phase)."""
    print("\n".join("| " + " | ".join(row.cells()) + " |" for row in rows), flush=True)


def reusable(phase: str, size: Size, quick: bool, path: Path | None = None):
    """(data, origin) of ``phase`` from the newest run in ``results/probes.json`` measured the
    same day (UTC) on a machine of the same kind (CPU model, cores, memory) at the same size;
    ``origin`` says when, at what load and commit it was measured. None when there is none."""
    path = path or RESULTS / "probes.json"
    if not path.exists():
        return None
    here = machine()
    same_machine = (here["cpu_model"], here["nproc"], here["memory_gib"])
    same_size = (quick, size.probes, size.interval, size.window)
    for past in reversed(json.loads(path.read_text())):
        m, p, extra = past.get("machine") or {}, past.get("params") or {}, past.get("extra") or {}
        if (m.get("cpu_model"), m.get("nproc"), m.get("memory_gib")) != same_machine:
            continue
        if (p.get("quick"), p.get("probes"), p.get("interval_s"), p.get("window_s")) != same_size:
            continue
        origin = (extra.get("reused") or {}).get(phase) or {
            "date": m.get("date", ""),
            "loadavg": m.get("loadavg", ""),
            "commit": m.get("commit", ""),
        }
        data = extra.get(REFERENCES[phase])
        if origin["date"][:10] != here["date"][:10] or not measured(phase, data):
            continue
        return revive(data), origin
    return None


def measured(phase: str, data) -> bool:
    if phase == "gatus":
        return isinstance(data, list) and any(isinstance(c, dict) and "off" in c for c in data)
    return isinstance(data, dict) and "off" in data and "on" in data


def revive(value):
    """The JSON form back: dicts with exactly a Window's fields become Windows."""
    if isinstance(value, dict):
        if set(value) == set(Window.__dataclass_fields__):
            return Window(**value)
        return {k: revive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [revive(v) for v in value]
    return value


def lag_ms(estimate: float, bound: float) -> str:
    if bound == float("inf"):
        return f"> {estimate * 1000:g} (past the last bucket)"
    return f"{estimate * 1000:.1f} / {bound * 1000:g}"


def over(buckets: dict[float, float], bound: float) -> float:
    """How many observations of cumulative ``buckets`` exceeded ``bound`` (one of the bounds)."""
    return max(buckets.values(), default=0.0) - buckets.get(bound, 0.0)


def per_thousand(window: Window) -> float:
    return window.cpu_seconds / window.checks * 1000 if window.checks else float("nan")


LOADS = (("off", "no background load"), ("on", "background load of half a core"))


def pitwall_rows(size: Size, ours: dict, load: str, judged: bool) -> tuple[list[Metric], float]:
    """Pitwall's rows for one window; targets are judged on the load-on window (issue 18)."""
    w: Window = ours["window"]
    minutes = w.seconds / 60
    due = size.probes * w.seconds / size.interval
    (p50, p50_bound), (p99, p99_bound) = ours["lag_p50"], ours["lag_p99"]
    cpu = per_thousand(w)
    share = w.cpu_seconds / w.seconds * 100

    def target(text: str, met: bool) -> tuple[str, bool | None]:
        return (text, met) if judged else ("", None)

    rows = [
        Metric(f"**Pitwall, {load}**", ""),
        Metric("checks in the window (target side)", f"{w.checks:,} of ~{due:,.0f} due"),
        Metric("checks counted by pitwall_probe_runs_total", f"{ours['runs']:,.0f}"),
        Metric("failed checks", f"{ours['failures']:,.0f}", "", *target("0", ours["failures"] == 0)),
        Metric("scheduling lag p50 (estimate / at most)", lag_ms(p50, p50_bound), "ms"),
        Metric(
            "scheduling lag p99 (estimate / at most)",
            lag_ms(p99, p99_bound),
            "ms",
            *target("< 100 ms", p99_bound <= 0.1),
        ),
        Metric(
            "seconds the scheduler was overloaded (pitwall_probe_overloaded_seconds_total)",
            ours.get("overloaded_s", 0.0),
            "s",
        ),
        Metric(
            "check duration p99 (estimate / at most); checks over 100 ms",
            f"{lag_ms(*histogram_quantile(0.99, ours['duration_buckets']))} ms; "
            f"{over(ours['duration_buckets'], 0.1):,.0f}",
        ),
        Metric("runs that waited over 100 ms for their start", f"{over(ours['lag_buckets'], 0.1):,.0f}"),
        Metric("CPU seconds per 1,000 checks (operator)", cpu, "s"),
        Metric("operator CPU use in the window", share, "% of one core", *target("< 60 %", share < 60)),
        Metric(
            "whole machine CPU use in the window",
            w.machine_cpu_seconds / w.seconds * 100,
            "% of one core (all processes)",
        ),
        Metric(
            "target servers' CPU use in the window", w.targets_cpu_seconds / w.seconds * 100, "% of one core"
        ),
        Metric("operator peak RSS (VmHWM)", w.hwm / MB, "MB", *target("< 300 MB", w.hwm < 300 * MB)),
        Metric("operator largest VmRSS in the window", w.max_rss / MB, "MB"),
        Metric(
            "status writes per minute (pitwall_probe_status_writes_total)", ours["status_writes"] / minutes
        ),
        Metric(
            "PATCH probes/status sent per minute (pitwall_kube_requests_total)",
            ours["client_status_patches"] / minutes,
        ),
        Metric("kube-apiserver PATCH probes/status per minute", ours["api_status_patches"] / minutes),
        Metric(
            "  of which by response code",
            ", ".join(
                f"{code}: {n / minutes:,.1f}" for code, n in ours["api_status_patches_by_code"].items()
            ),
        ),
        Metric("kube-apiserver mutating requests per minute (all clients)", ours["api_writes"] / minutes),
        *(
            Metric(
                f"garbage collections, generation {g}: count / total / largest (at most)",
                f"{v['count']:,.0f} / {v['seconds'] * 1000:,.0f} ms / {v['largest_at_most'] * 1000:g} ms",
            )
            for g, v in ours["gc"].items()
        ),
        Metric(
            "operator /metrics size / scrape time",
            f"{ours['metrics_bytes'] / MB:.1f} MB / {ours['metrics_scrape_s']:.2f} s",
            "",
            *target("< 0.5 s", ours["metrics_scrape_s"] < 0.5),
        ),
    ]
    if "noise_cpu_seconds" in ours:
        rows.append(
            Metric(
                "the background load's own CPU use",
                ours["noise_cpu_seconds"] / w.seconds * 100,
                "% of one core",
            )
        )
    return rows, cpu


def reference_rows(name: str, phase: dict, load: str, cpu: float | None, judged: bool) -> list[Metric]:
    w: Window = phase[load]["window"]
    ref = per_thousand(w)
    label = dict(LOADS)[load]
    rows = [
        Metric(
            f"{name}, {label}: checks / CPU s per 1,000 checks / CPU use / peak RSS",
            f"{w.checks:,} / {ref:.3f} s / {w.cpu_seconds / w.seconds * 100:.1f} % / {w.hwm / MB:.1f} MB",
        )
    ]
    if "noise_cpu_seconds" in phase[load]:
        rows.append(
            Metric(
                "  the background load's own CPU use",
                phase[load]["noise_cpu_seconds"] / w.seconds * 100,
                "% of one core",
            )
        )
    if cpu is None:  # Pitwall neither measured nor reused
        return rows
    ratio = cpu / ref if ref else float("inf")
    rows.append(
        Metric(
            f"  Pitwall / {name} CPU per check ({label})",
            ratio,
            "x",
            *(("<= 1x", ratio <= 1) if judged else ("", None)),
        )
    )
    return rows


def reused_label(origin: dict | None) -> str:
    if not origin:
        return ""
    return (
        f" (reused: measured {origin['date']}, load average at its end {origin['loadavg']}, "
        f"commit {origin['commit']})"
    )


def report(
    size: Size,
    quick: bool,
    ours: dict | None,
    theirs: list[dict] | None,
    exporter: dict | None,
    *,
    phases: tuple[str, ...] = PHASES,
    reused: dict[str, dict] | None = None,
    took: dict[str, float] | None = None,
    overloaded: dict | None = None,
    scaled: dict | None = None,
) -> Report:
    reused = reused or {}
    metrics: list[Metric] = []
    notes = []
    cpus: dict[str, float | None] = {"off": None, "on": None}
    if ours is not None:
        metrics += [
            Metric(
                f"create {size.probes:,} Probes and seed their history (32 at a time){reused_label(reused.get('pitwall'))}",
                ours["created_s"],
                "s",
            ),
            Metric("operator start to every probe reconciled and run once", ours["ran_once_s"], "s"),
        ]
        for load, label in LOADS:
            rows, cpus[load] = pitwall_rows(
                size, ours[load], label + reused_label(reused.get("pitwall")), judged=load == "on"
            )
            metrics += rows
    else:
        metrics.append(Metric("Pitwall", "not run (not in --phases, no run of today to reuse)"))
    for phase in theirs if theirs is not None else []:
        name = f"Gatus (concurrency {phase['concurrency']})"
        if "unavailable" in phase:
            metrics.append(Metric(name, "not run"))
            notes.append(f"{name} could not be run here: {phase['unavailable']}")
            continue
        metrics.append(
            Metric(
                f"**{name}**, {phase['version']}{reused_label(reused.get('gatus'))}: every endpoint started after",
                phase["all_started_s"],
                "s",
            )
        )
        for load, _ in LOADS:
            metrics += reference_rows(
                name,
                phase,
                load,
                cpus[load],
                judged=load == "on" and phase["concurrency"] == gatus.SUSTAINING,
            )
    if theirs is None:
        metrics.append(Metric("Gatus", "not run (not in --phases, no run of today to reuse)"))
    if exporter is None:
        metrics.append(Metric("blackbox_exporter", "not run (not in --phases, no run of today to reuse)"))
    elif "unavailable" in exporter:
        metrics.append(Metric("blackbox_exporter", "not run"))
        notes.append(f"blackbox_exporter could not be run here: {exporter['unavailable']}")
    else:
        metrics.append(Metric(f"**blackbox_exporter**{reused_label(reused.get('blackbox'))}", ""))
        for load, _ in LOADS:
            metrics += reference_rows("blackbox_exporter", exporter, load, cpus[load], judged=load == "on")
        checks = sum(exporter[load]["window"].checks for load, _ in LOADS)
        metrics += [
            Metric(
                "  its driver (playing Prometheus), CPU seconds per 1,000 checks (both windows)",
                exporter["driver_cpu_seconds"] / checks * 1000 if checks else float("nan"),
                "s",
            ),
            Metric(
                "  its checks over 100 ms / all its checks (whole run, probe_duration_seconds)",
                f"{exporter['driver_counts'].get('over_100ms', 'n/a')} / "
                f"{sum(v for k, v in exporter['driver_counts'].items() if k != 'over_100ms'):,}",
            ),
        ]
    if overloaded is not None:
        metrics += scale.overload_rows(size, overloaded)
    if scaled is not None:
        metrics += scale.scale_rows(size, scaled)
    for phase, origin in reused.items():
        notes.append(
            f"{phase}: not measured in this run but reused from the run of {origin['date']} on this machine "
            f"(load average at its end {origin['loadavg']}, commit {origin['commit']}); its ratios to this "
            "run's numbers compare measurements taken at different times."
        )
    if took:
        notes.append(
            "Wall time of each phase: "
            + ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in took.items())
        )
    method = [
        f"{size.probes:,} Probes, each one GET of `http://127.0.0.1:<port>/isUp` (4 aiohttp servers in a separate "
        f"process), interval {size.interval}s, timeout 2s, failureThreshold default. Before the operator "
        "sees them, each Probe's status gets 90 days of history (as the engine writes it), so memory and "
        "write sizes are those of a long-running installation, not of a fresh one.",
        "Pitwall: a fresh local control plane and `python -m pitwall run --namespace bench-probes` as a "
        "subprocess, started after the Probes exist (a restart); the window starts once every probe was "
        "reconciled (work queue empty) and ran once, plus one interval.",
        f"Window: {size.window} s. The operator's /metrics and kube-apiserver's /metrics are scraped just before "
        "the CPU window opens and just after it closes, so their cost is outside it.",
        "Lag: delta of the `pitwall_probe_schedule_lag_seconds` histogram over the window; p50/p99 interpolated "
        "inside their bucket, `at most` = the bucket's upper bound (the target is judged on that).",
        "CPU: (utime + stime) delta of the process from /proc/<pid>/stat; checks: requests the target servers "
        "answered in the window (same counter for Pitwall and Gatus).",
        "RSS: VmHWM (peak since start) and VmRSS sampled every 5 s, from /proc/<pid>/status.",
        "Gatus (bench/gatus.py: --gatus-bin / PITWALL_GATUS_BIN, or built with `go build .` from a source tree "
        "of github.com/TwiN/gatus into ~/.cache/pitwall/gatus): the same endpoints, interval and target process, "
        "run after the operator and control plane are stopped, at its default concurrency (3) and at "
        f"{gatus.SUSTAINING} (Pitwall's checks in flight), each measured only once every endpoint has a result "
        "(it starts them 222 ms apart), with the same windows and /proc measurements.",
        f"Background load: `python -m bench.noise --share {NOISE_SHARE}` (a process that wants half a core, "
        "20 ms periods) beside each contender in turn: every contender is measured for one window without it, "
        "then one window with it; the targets of issue 18 are judged on the window with it.",
        "blackbox_exporter (Debian's `prometheus-blackbox-exporter`, installed with apt-get when missing): module "
        "`http_200` (one GET, 200 expected, no redirects, 2 s timeout), asked for each target on its own phase of "
        "the interval by a driver process (`bench/scraper.py`, aiohttp) as Prometheus would; run last, with the "
        "same window and /proc measurements. Its CPU per check includes answering the scrape (an HTTP request "
        "and a metrics page per check), work Gatus and Pitwall do not do per check; the driver's CPU is shown "
        "apart and not counted.",
    ]
    if "overload" in phases or "scale" in phases:
        method += scale.SCALE_METHOD
    return Report(
        "probes",
        "Probe engine at 5,000 probes, beside Gatus (issue 4)",
        {
            "quick": quick,
            "probes": size.probes,
            "interval_s": size.interval,
            "window_s": size.window,
            "background_load_cores": NOISE_SHARE,
            "phases": ",".join(phases),
        },
        metrics,
        method,
        notes,
        extra={
            "pitwall": plain(ours),
            "gatus": [plain(phase) for phase in theirs] if theirs is not None else None,
            "blackbox_exporter": plain(exporter),
            "overload": scale.plain(overloaded),
            "scale": scale.plain(scaled),
            "reused": reused,
            "phase_seconds": took or {},
        },
    )


def plain(value):
    """JSON-ready: windows as their fields."""
    if isinstance(value, Window):
        return vars(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
