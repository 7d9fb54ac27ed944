"""Alert latency: probe target down -> first notification at a receiver (issue 6).

One Probe (interval 1 s, timeout 1 s, failureThreshold 1) on a local target, one AlertRule on
it (``when: Ready=False for 0s``, a webhook receiver), on a fresh control plane with the operator
as a subprocess. The target and the receiver are aiohttp servers on 127.0.0.1 in this process,
so one clock (``time.perf_counter``) stamps everything. Each of 50 runs (--quick: 10):

1. take the target down (a flag the target reads: the outage starts at that instant, ``down``);
2. wait for the firing notification at the receiver (``notified``);
3. after a random 0-1 s, bring the target back up (``up``) and wait for the resolve
   notification, then a random 0.2-1 s pause, so the next outage starts at a random point of
   the probe's 1 s cycle.

What each number means:

- ``notified - down - budget``, with budget = failureThreshold x interval + for = 1 s: the
  issue's measure. The probe's next run comes 0-1 s after the outage starts, so a perfect
  pipeline scores between -1 s and 0 s; the target is p99 under 1 s.
- ``notified - down``: the raw time a person waits.
- ``notified - first failing check``: from the probe's first request that met the outage
  (its arrival at the target) to the notification: Pitwall's own pipeline (check, status write,
  watch event, rule evaluation, delivery), free of the probe's cadence.
- ``resolved - up`` and ``resolved - first passing check``: the same two for the resolve
  (successThreshold 1), from the moment the target is back (after a random 0-1 s wait, so this
  too starts at a random point of the cycle).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from pitwall.kube import Kube

from .common import Metric, Operator, Report, control_plane, percentile

NAMESPACE = "bench-alerts"
INTERVAL_S, FAILURE_THRESHOLD, FOR_S = 1, 1, 0
BUDGET = FAILURE_THRESHOLD * INTERVAL_S + FOR_S
WAIT = 30.0  # the longest a run waits for a notification before counting it missed


@dataclass
class Stage:
    """The target and the receiver, both in this process, stamping on one clock."""

    up: bool = True
    checks: list[tuple[float, bool]] = field(default_factory=list)  # (arrived at, answered 200)
    notifications: list[tuple[float, str]] = field(default_factory=list)  # (at, firing|resolved)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        async def is_up(request: web.Request) -> web.Response:
            self.checks.append((time.perf_counter(), self.up))
            if self.up:
                return web.json_response({"status": "up"})
            return web.json_response({"error": "down (bench)"}, status=503)

        async def hook(request: web.Request) -> web.Response:
            at = time.perf_counter()
            body = await request.json()
            self.notifications.append((at, body.get("status", "?")))
            self.arrived.set()
            return web.json_response({"ok": True})

        app = web.Application()
        app.add_routes([web.get("/isUp", is_up), web.post("/hook", hook)])
        return app

    async def next_notification(self, status: str, after: float, within: float) -> float | None:
        deadline = time.perf_counter() + within
        while True:
            found = [at for at, s in self.notifications if s == status and at >= after]
            if found:
                return found[0]
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                return None


def manifests(url: str) -> list[dict]:
    meta = {"namespace": NAMESPACE}
    return [
        {
            "apiVersion": "pitwall.dev/v1alpha1",
            "kind": "Probe",
            "metadata": {"name": "checkout", "labels": {"tier": "bench"}, **meta},
            "spec": {
                "target": {"url": url + "/isUp"},
                "interval": f"{INTERVAL_S}s",
                "timeout": "1s",
                "failureThreshold": FAILURE_THRESHOLD,
            },
        },
        {
            "apiVersion": "pitwall.dev/v1alpha1",
            "kind": "AlertRule",
            "metadata": {"name": "checkout-down", **meta},
            "spec": {
                "severity": "critical",
                "selector": {"kinds": ["Probe"], "matchLabels": {"tier": "bench"}},
                "when": {"condition": "Ready", "status": "False", "for": f"{FOR_S}s"},
                "receivers": [{"name": "hook", "type": "webhook", "url": url + "/hook"}],
                "repeatInterval": "1h",
            },
        },
    ]


async def measure(kubeconfig: Path, runs: int) -> dict:
    stage = Stage()
    runner = web.AppRunner(stage.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with Kube.from_env(str(kubeconfig)) as kube:
            await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
            for obj in manifests(url):
                await kube.apply(obj, field_manager="bench")
            await _wait_up(kube)
            return await _runs(stage, runs)
    finally:
        await runner.cleanup()


async def _wait_up(kube: Kube) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        probe = await kube.get("Probe", NAMESPACE, "checkout")
        rule = await kube.get("AlertRule", NAMESPACE, "checkout-down")
        rule_ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in ((rule or {}).get("status") or {}).get("conditions") or []
        )
        if ((probe or {}).get("status") or {}).get("state") == "Up" and rule_ready:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("the probe never went Up or the rule never became Ready")


async def _runs(stage: Stage, runs: int) -> dict:
    rng = random.Random(6)
    rows, missed = [], 0
    for _ in range(runs):
        down = time.perf_counter()
        stage.up = False
        notified = await stage.next_notification("firing", down, WAIT)
        await asyncio.sleep(rng.uniform(0.0, 1.0))  # come back at a random point of the cycle too
        up = time.perf_counter()
        stage.up = True
        resolved = await stage.next_notification("resolved", up, WAIT)
        if notified is None or resolved is None:
            missed += 1
            await asyncio.sleep(5)  # let a late notification land outside the next run
            continue
        first_fail = next(at for at, ok in stage.checks if at >= down and not ok)
        first_pass = next(at for at, ok in stage.checks if at >= up and ok)
        firings = sum(1 for at, s in stage.notifications if s == "firing" and down <= at < up)
        rows.append(
            {
                "down": down,
                "first_fail": first_fail,
                "notified": notified,
                "up": up,
                "first_pass": first_pass,
                "resolved": resolved,
                "firings": firings,
            }
        )
        await asyncio.sleep(rng.uniform(0.2, 1.0))
    return {"rows": rows, "missed": missed, "notifications": len(stage.notifications)}


def run(workdir: Path, quick: bool = False) -> Report:
    runs = 10 if quick else 50
    with control_plane(workdir) as cluster, Operator(cluster, workdir, NAMESPACE):
        data = asyncio.run(measure(cluster.kubeconfig, runs))
    rows = data["rows"]
    since_down = [r["notified"] - r["down"] for r in rows]
    budgeted = [s - BUDGET for s in since_down]
    pipeline = [r["notified"] - r["first_fail"] for r in rows]
    resolve = [r["resolved"] - r["up"] for r in rows]
    resolve_pipeline = [r["resolved"] - r["first_pass"] for r in rows]
    duplicates = sum(r["firings"] - 1 for r in rows)

    def ms(values: list[float], q: float) -> float:
        return percentile(values, q) * 1000

    p99 = ms(budgeted, 0.99)
    metrics = [
        Metric("notified - down - budget, p50", ms(budgeted, 0.5), "ms"),
        Metric("notified - down - budget, p99", p99, "ms", "< 1000 ms", p99 < 1000),
        Metric("notified - down, p50", ms(since_down, 0.5), "ms"),
        Metric("notified - down, p99", ms(since_down, 0.99), "ms"),
        Metric("notified - first failing check, p50", ms(pipeline, 0.5), "ms"),
        Metric("notified - first failing check, p99", ms(pipeline, 0.99), "ms"),
        Metric("resolved - up, p50", ms(resolve, 0.5), "ms"),
        Metric("resolved - up, p99", ms(resolve, 0.99), "ms"),
        Metric("resolved - first passing check, p50", ms(resolve_pipeline, 0.5), "ms"),
        Metric("resolved - first passing check, p99", ms(resolve_pipeline, 0.99), "ms"),
        Metric(
            "runs timed / missed (no notification within 30 s)",
            f"{len(rows)} / {data['missed']}",
            "",
            f"{runs} / 0",
            data["missed"] == 0,
        ),
        Metric("duplicate firing notifications", duplicates, "", "0", duplicates == 0),
    ]
    method = [
        "A fresh local control plane and `python -m pitwall run --namespace bench-alerts` as a subprocess.",
        f"Probe: GET on a local aiohttp target, interval {INTERVAL_S}s, timeout 1s, failureThreshold "
        f"{FAILURE_THRESHOLD}. AlertRule: Probe Ready=False for {FOR_S}s, severity critical, one webhook "
        "receiver (Alertmanager v4 payload) on a local aiohttp server. Budget = failureThreshold x interval + "
        f"for = {BUDGET} s.",
        f"{runs} runs: target down (an in-process flag), wait for the `firing` webhook, after a random 0-1 s target "
        "up, wait for the `resolved` webhook, pause 0.2-1 s (random, seeded) so outages start at random points of the cycle.",
        "All times on one clock (time.perf_counter) in the benchmark process, which also runs the target and "
        "the receiver; p50/p99 by linear interpolation between closest ranks.",
    ]
    return Report(
        "alerts",
        "Alert latency: target down to first notification (issue 6)",
        {
            "quick": quick,
            "runs": runs,
            "interval_s": INTERVAL_S,
            "failure_threshold": FAILURE_THRESHOLD,
            "for_s": FOR_S,
        },
        metrics,
        method,
        extra=data,
    )
