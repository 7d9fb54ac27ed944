"""What every benchmark shares: the machine, a control plane, the operator, /proc numbers, results.

Every process a benchmark starts is started here or in its own module with
``start_new_session=True`` and stopped by its process group, so a benchmark leaves nothing
running whether it finishes, fails or is interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the machine -------------------------------------------------------------------------------
def machine() -> dict:
    """What the numbers were measured on: cores, memory, CPU model, versions, date, commit."""
    meminfo = Path("/proc/meminfo").read_text()
    mem_kib = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal:")))
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        platform.processor() or "unknown",
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kib / 2**20, 1),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kopf": importlib.metadata.version("kopf"),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "commit": _git("rev-parse", "--short", "HEAD")
        + (" (with local changes)" if _git("status", "--porcelain", "operator") else ""),
    }


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return proc.stdout.strip()


# -- processes ---------------------------------------------------------------------------------
@dataclass
class ProcSample:
    """One look at a process: CPU seconds used so far (user + system), RSS now and peak RSS."""

    at: float  # time.monotonic()
    cpu_seconds: float
    rss_bytes: int  # VmRSS
    hwm_bytes: int  # VmHWM: the peak RSS since the process started


def sample(pid: int) -> ProcSample:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    return ProcSample(
        time.monotonic(),
        (utime + stime) / CLK_TCK,
        int(status["VmRSS"].split()[0]) * 1024,
        int(status["VmHWM"].split()[0]) * 1024,
    )


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (all cores, /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def stop_group(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it after ``grace`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def wait_http(url: str, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready at {url} after {timeout:.0f}s")


def spawn(args: list[str], *, log_path: Path, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """``args`` as the leader of its own process group (``stop_group`` stops it and its children),
    stdout and stderr appended to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def spawn_ready(
    args: list[str],
    *,
    log_path: Path,
    cwd: Path,
    url: str,
    timeout: float,
    what: str,
    env: dict | None = None,
) -> subprocess.Popen:
    """``spawn``, then wait until ``url`` answers 200. If it does not, the process is stopped and
    a RuntimeError carries the end of its log."""
    proc = spawn(args, log_path=log_path, cwd=cwd, env=env)
    try:
        wait_http(url, proc, timeout, what)
    except RuntimeError as exc:
        stop_group(proc)
        tail = log_path.read_text(errors="replace")[-400:]
        raise RuntimeError(f"{what} did not start: {exc}: {tail}") from None
    except BaseException:
        stop_group(proc)
        raise
    return proc


@contextlib.contextmanager
def control_plane(workdir: Path) -> Iterator:
    """A fresh local control plane (etcd, API server, controller-manager, scheduler, kwok) with
    Pitwall's CRDs installed; stopped on exit."""
    from pitwall_testing.cluster import Cluster

    with Cluster.start(workdir / "cluster") as cluster:
        cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
        cluster.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=pitwall",
        )
        yield cluster


def apiserver_metrics(cluster) -> str:
    """kube-apiserver's own /metrics, read with the admin client certificate."""
    status, body = cluster._get("/metrics")
    if status != 200:
        raise RuntimeError(f"kube-apiserver /metrics answered {status}")
    return body.decode()


class Operator:
    """``python -m pitwall run`` as a real subprocess (the same start as tests/conftest.py)."""

    def __init__(
        self,
        cluster,
        workdir: Path,
        namespace: str,
        extra_env: dict | None = None,
        args: list[str] | None = None,
        label: str = "",
    ):
        """``args``: more ``pitwall run`` arguments; ``label``: told apart in its log's name
        (several replicas of one namespace)."""
        from pitwall_testing.cluster import POD_ADDRESS_REWRITE, free_port

        self.cluster = cluster
        self.namespace = namespace
        self.metrics_port = free_port()
        self.ports = [self.metrics_port, free_port(), free_port()]
        self.env = {**cluster.env, "PITWALL_ENDPOINT_REWRITE": POD_ADDRESS_REWRITE, **(extra_env or {})}
        self.args = list(args or [])
        self.log_path = workdir / f"operator-{namespace}{'-' + label if label else ''}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Operator:
        metrics, statuspage, internal = self.ports
        args = [
            sys.executable,
            "-m",
            "pitwall",
            "run",
            "--namespace",
            self.namespace,
            "--metrics-port",
            str(metrics),
            "--statuspage-port",
            str(statuspage),
            "--internal-port",
            str(internal),
            *self.args,
        ]
        self.proc = spawn_ready(
            args,
            log_path=self.log_path,
            cwd=ROOT,
            env=self.env,
            url=f"http://127.0.0.1:{metrics}/readyz",
            timeout=60,
            what="the operator",
        )
        return self

    def __exit__(self, *exc) -> None:
        stop_group(self.proc, grace=15)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()


async def bounded(coros, limit: int = 16) -> None:
    """Await ``coros`` with at most ``limit`` running at once."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coro):
        async with semaphore:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


# -- Prometheus text ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def metric_samples(text: str) -> tuple[tuple[str, dict, float], ...]:
    """Every sample of a /metrics page; parsed once per page (a page of 5,000 probes is 10 MB,
    and a window's numbers read it a dozen times). Treat the result as read-only."""
    return tuple(
        (s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples
    )


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every sample called ``name`` whose labels include ``labels``."""
    return sum(
        value
        for sample_name, sample_labels, value in metric_samples(text)
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


def histogram_buckets(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of histogram ``name`` by upper bound (``le``), summed over labels."""
    buckets: dict[float, float] = {}
    for sample_name, labels, value in metric_samples(text):
        if sample_name == f"{name}_bucket":
            bound = float(labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
    return dict(sorted(buckets.items()))


def bucket_delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {bound: count - before.get(bound, 0.0) for bound, count in after.items()}


def histogram_quantile(q: float, buckets: dict[float, float]) -> tuple[float, float]:
    """(estimate, upper bound) of quantile ``q`` from cumulative buckets.

    The estimate interpolates linearly inside the bucket that holds the quantile, as
    Prometheus' ``histogram_quantile`` does; the upper bound is that bucket's ``le``, the most
    the true value can be. Observations past the last finite bucket give ``inf`` bounds.
    """
    total = buckets.get(float("inf"), 0.0)
    if total <= 0:
        return float("nan"), float("nan")
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets.items():
        if count >= rank:
            if bound == float("inf"):
                return lower_bound, bound
            inside = count - lower_count
            fraction = (rank - lower_count) / inside if inside else 1.0
            return lower_bound + (bound - lower_bound) * fraction, bound
        lower_bound, lower_count = bound, count
    return float("nan"), float("nan")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linear between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -- results -----------------------------------------------------------------------------------
@dataclass
class Metric:
    """One reported number: what it is, its value and unit, and the target it is held to."""

    label: str
    value: float | str
    unit: str = ""
    target: str = ""
    met: bool | None = None

    def cells(self) -> list[str]:
        value = self.value
        if isinstance(value, float):
            value = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        met = {True: "yes", False: "**no**", None: ""}[self.met]
        return [self.label, f"{value} {self.unit}".strip(), self.target, met]


@dataclass
class Report:
    """One benchmark run: what was run (``params``), the numbers, and how they were measured."""

    name: str
    title: str
    params: dict
    metrics: list[Metric]
    method: list[str]
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # raw data kept in the JSON only
    machine: dict = field(default_factory=machine)

    def markdown(self) -> str:
        m = self.machine
        lines = [
            f"## {m['date']} · {'quick' if self.params.get('quick') else 'full'} run"
            + (f" (phases {self.params['phases']})" if self.params.get("phases") else ""),
            "",
            f"Machine: {m['nproc']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
            f"Python {m['python']}, kopf {m['kopf']}, commit {m['commit']}; load average at the end "
            f"{m['loadavg']}.",
            "",
            "Parameters: " + ", ".join(f"{k}={v}" for k, v in self.params.items()) + ".",
            "",
            "| what | value | target | met |",
            "|---|---|---|---|",
        ]
        lines += ["| " + " | ".join(metric.cells()) + " |" for metric in self.metrics]
        lines += ["", "How it was measured:", ""] + [f"- {line}" for line in self.method]
        if self.notes:
            lines += ["", "Notes:", ""] + [f"- {line}" for line in self.notes]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path = RESULTS) -> Path:
        """Append this run to ``<name>.md`` and ``<name>.json`` (a list of runs)."""
        directory.mkdir(parents=True, exist_ok=True)
        md = directory / f"{self.name}.md"
        head = "" if md.exists() else f"# {self.title}\n\nEach run is appended below, newest last.\n\n"
        with md.open("a") as out:
            out.write(head + self.markdown() + "\n")
        js = directory / f"{self.name}.json"
        runs = json.loads(js.read_text()) if js.exists() else []
        runs.append(asdict(self))
        js.write_text(json.dumps(runs, indent=1, default=str) + "\n")
        return md
