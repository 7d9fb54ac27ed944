"""The operator's /metrics at N probes: how long it takes to render and to scrape, and its size.

A micro-benchmark beside ``make bench``'s full run (issue 18 item 3: the scrape under 0.5 s at
5,000 probes). It fills the per-probe series the way the monitor does after each run (every
probe of kind Probe in one of ``--namespaces`` namespaces, ``--steps`` steps, ``--runs`` runs
each), then:

- renders the whole page (``metrics.exposition``) ``--rounds`` times in this process and reports
  the best CPU time (``time.process_time``) and the size;
- serves it with the operator's own /metrics endpoint (``metrics.serve``) and scrapes it with
  ``curl`` in another process, without and with ``Accept-Encoding: gzip`` (what Prometheus
  sends), reporting the best wall time and the bytes sent; with ``--busy N``, while N tasks
  keep this process's event loop busy (1 ms of CPU each per turn of the loop: a turn of N ms,
  like an overloaded operator's).

    PYTHONPATH=operator .venv/bin/python bench/metrics_scrape.py [--probes 5000] [--steps 1] [--busy 100]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import random
import subprocess
import time
from types import SimpleNamespace

from pitwall import metrics
from pitwall.probes import telemetry
from pitwall.probes.scheduler import Scheduler
from pitwall_testing.cluster import free_port


class Source:
    """What the collector reads from a monitor: its jobs and its scheduler (weakly referenced)."""

    def __init__(self, jobs: dict) -> None:
        self.jobs = jobs
        self.scheduler = Scheduler()


def populate(probes: int, steps: int, runs: int, namespaces: int) -> Source:
    """A monitor-like source: ``jobs`` keyed (kind, namespace, name), each with its numbers."""
    rng = random.Random(1)
    step_names = ["check"] if steps == 1 else [f"step-{i}" for i in range(steps)]
    record = telemetry.Numbers.record
    grouped = "where" in inspect.signature(record).parameters  # since 2026-11-29 19:00
    jobs = {}
    for i in range(probes):
        key = ("Probe", f"bench-probes-{i % namespaces}", f"bench-probe-{i:05d}")
        numbers = telemetry.Numbers()
        for run in range(runs):
            durations = [(step, rng.lognormvariate(-4.5, 1.0)) for step in step_names]
            ok = run % 50 != 7
            if grouped:
                numbers.record(ok, True, durations, key[:2])
            else:
                numbers.record(ok, True, durations)
        jobs[key] = SimpleNamespace(numbers=numbers)
    return Source(jobs)


def curl(url: str, gzip: bool) -> tuple[float, int]:
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", url]
    if gzip:
        args[1:1] = ["-H", "Accept-Encoding: gzip"]
    seconds, size = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
    return float(seconds), int(size)


async def burn(milliseconds: float) -> None:
    """One of ``--busy`` tasks keeping this process's event loop busy, as an overloaded
    operator's is with checks: ``milliseconds`` of CPU per turn of the loop."""
    while True:
        until = time.perf_counter() + milliseconds / 1000
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(0)


async def scrape(rounds: int, busy: int) -> dict[str, tuple[float, int]]:
    port = free_port()
    runner = await metrics.serve("127.0.0.1", port)
    url = f"http://127.0.0.1:{port}/metrics"
    burners = [asyncio.create_task(burn(1.0)) for _ in range(busy)]
    try:
        out = {}
        for gzip in (False, True):
            results = [await asyncio.to_thread(curl, url, gzip) for _ in range(rounds)]
            out["gzip" if gzip else "plain"] = min(results)
        return out
    finally:
        for task in burners:
            task.cancel()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--probes", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--namespaces", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="tasks taking 1 ms of CPU per turn of the loop while it is scraped",
    )
    args = parser.parse_args()

    source = populate(args.probes, args.steps, args.runs, args.namespaces)
    telemetry.COLLECTOR.watch(source)
    renders = []
    for _ in range(args.rounds):
        began = time.process_time()
        page = metrics.exposition()
        renders.append(time.process_time() - began)
    lines = page.count(b"\n") - page.count(b"\n#")
    print(
        f"{args.probes} probes x {args.steps} step(s), {args.namespaces} namespace(s): "
        f"{len(page) / 1e6:.2f} MB, {lines:,} samples; render CPU best {min(renders):.3f} s "
        f"(rounds {', '.join(f'{r:.3f}' for r in renders)})"
    )
    for how, (seconds, size) in asyncio.run(scrape(args.rounds, args.busy)).items():
        print(f"scrape ({how}): best {seconds:.3f} s, {size / 1e6:.2f} MB sent")


if __name__ == "__main__":
    main()
