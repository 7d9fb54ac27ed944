"""Traffic (issue 16): the query load Pitwall puts on Prometheus, and errors -> alert delivered.

Part 1, query load at 500 products: a real Prometheus (Debian's ``prometheus``) scrapes, every
5 s, one synthetic exporter that publishes the default shape for 500 products x 2 versions
(2 consumers, 2 route templates, 200/500 codes, a 12-bucket duration histogram: 32,000 series).
The traffic service runs its cycles against it with 500 ApiProducts (same shape) in its watch
cache (no API server needed for this part). Reported: queries per cycle, queries per second at
the default 30 s ``--traffic-interval``, the cycle's wall time, and the Prometheus CPU time one
cycle costs (``/proc/<pid>/stat`` around idle-subtracted cycles).

Part 2, errors -> alert delivered: a fresh control plane, the operator as a subprocess
(``PITWALL_PROMETHEUS_URL``, ``--traffic-interval`` 5 s), one product whose real API server (20
calls/s) is scraped every 1 s, an AlertRule ``errorRate above 0.05 for 0s`` with a webhook
receiver in this process. Each run switches the API to 20% failures at ``t0`` and stamps the
firing notification's arrival; then back to 0% until the resolve arrives. The delay is the sum
of the scrape interval, the rate window filling past the threshold (window 30 s: 5% of 30 s of
20% failures = 7.5 s), the traffic cycle (0-5 s) and the rule's evaluation and delivery.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web

from pitwall.kube import Kube

from .common import Metric, Operator, Report, control_plane, percentile

PRODUCTS = 500
NAMESPACE = "bench-traffic"


# -- part 1 --------------------------------------------------------------------------------------
def _exposition(started: float, products: int) -> bytes:
    """Counters growing at fixed rates since ``started``: 500 products, the default shape."""
    elapsed = time.monotonic() - started + 60.0
    buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    out = ["# TYPE http_requests_total counter", "# TYPE http_request_duration_seconds histogram"]
    for p in range(products):
        for v in ("v1", "v2"):
            base = f'product="p{p:04d}",version="{v}"'
            for consumer in ("acme", "globex"):
                for route in ("/orders/{id}", "/orders"):
                    out.append(
                        f'http_requests_total{{{base},consumer="{consumer}",route="{route}",code="200"}} '
                        f"{elapsed * 4.75:.0f}"
                    )
                    out.append(
                        f'http_requests_total{{{base},consumer="{consumer}",route="{route}",code="500"}} '
                        f"{elapsed * 0.25:.0f}"
                    )
            for route in ("/orders/{id}", "/orders"):
                for i, le in enumerate(buckets):
                    out.append(
                        f'http_request_duration_seconds_bucket{{{base},route="{route}",le="{le}"}} '
                        f"{elapsed * 10 * (i + 1) / len(buckets):.0f}"
                    )
                out.append(
                    f'http_request_duration_seconds_bucket{{{base},route="{route}",le="+Inf"}} '
                    f"{elapsed * 10:.0f}"
                )
    return ("\n".join(out) + "\n").encode()


def _cpu_seconds(pid: int) -> float:
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _query_load(workdir: Path, products: int, cycles: int) -> dict:
    from pitwall.runtime import Runtime, Settings
    from pitwall.traffic.service import TrafficService
    from pitwall_testing.prometheus import Prometheus

    started = time.monotonic()
    cache: dict[str, tuple[float, bytes]] = {}

    async def metrics(_request: web.Request) -> web.Response:
        now = time.monotonic()
        if "m" not in cache or now - cache["m"][0] > 2:
            cache["m"] = (now, _exposition(started, products))
        return web.Response(body=cache["m"][1], content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    prom = Prometheus(workdir / "prom-load", [f"127.0.0.1:{port}"], scrape_interval="5s").start()
    try:
        await asyncio.sleep(40)  # the 5m rate window needs a few scrapes; 30 s of history is enough
        settings = Settings(prometheus_url=prom.url, traffic_interval=30.0)
        rt = Runtime(kube=None, settings=settings)  # type: ignore[arg-type] - no API server in part 1
        for p in range(products):
            rt.stores["ApiProduct"].prime(
                {
                    "apiVersion": "pitwall.dev/v1alpha1",
                    "kind": "ApiProduct",
                    "metadata": {"name": f"p{p:04d}", "namespace": NAMESPACE, "uid": f"u{p}"},
                    "spec": {
                        "versions": [{"name": "v1", "image": "x"}, {"name": "v2", "image": "x"}],
                        "traffic": {"window": "30s"},
                    },
                }
            )
        service = TrafficService(rt)
        await service.start()
        assert service._task is not None
        service._task.cancel()  # cycles are driven here, one at a time
        walls, queries, cpu = [], [], []
        assert prom.proc is not None
        for _ in range(cycles):
            idle_before = _cpu_seconds(prom.proc.pid)
            await asyncio.sleep(3)
            idle = _cpu_seconds(prom.proc.pid) - idle_before
            sent, before, t0 = service.source.sent, _cpu_seconds(prom.proc.pid), time.perf_counter()
            await service.cycle()
            wall = time.perf_counter() - t0
            walls.append(wall)
            queries.append(service.source.sent - sent)
            cpu.append(max(0.0, _cpu_seconds(prom.proc.pid) - before - idle / 3 * wall))
        reading = service.reading(NAMESPACE, "p0042")
        rps = reading.figures.rps if reading and reading.figures else 0.0
        await service.stop()
        return {"walls": walls, "queries": queries, "cpu": cpu, "sample_rps": rps}
    finally:
        prom.stop()
        await runner.cleanup()


# -- part 2 --------------------------------------------------------------------------------------
async def _delay(workdir: Path, runs: int) -> dict:
    from pitwall_testing.prometheus import Prometheus, TrafficServer

    notes: list[tuple[float, str]] = []
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        notes.append((time.perf_counter(), (await request.json()).get("status", "?")))
        arrived.set()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook_url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    api = TrafficServer("pay", "v1", rps=20, error_ratio=0.0).start()
    prom = Prometheus(workdir / "prom-delay", [api.target]).start()
    rows, missed = [], 0
    try:
        with (
            control_plane(workdir) as cluster,
            Operator(
                cluster,
                workdir,
                NAMESPACE,
                extra_env={
                    "PITWALL_PROMETHEUS_URL": prom.url,
                    "PITWALL_TRAFFIC_INTERVAL": "5",
                    "PITWALL_TRAFFIC_WRITE_EVERY": "5",
                },
            ),
        ):
            async with Kube.from_env(str(cluster.kubeconfig)) as kube:
                await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
                await kube.apply(
                    {
                        "apiVersion": "pitwall.dev/v1alpha1",
                        "kind": "ApiProduct",
                        "metadata": {"name": "pay", "namespace": NAMESPACE},
                        "spec": {
                            "versions": [{"name": "v1", "image": "registry.example.com/pay:1"}],
                            "traffic": {"window": "30s"},
                        },
                    },
                    field_manager="bench",
                )
                await kube.apply(
                    {
                        "apiVersion": "pitwall.dev/v1alpha1",
                        "kind": "AlertRule",
                        "metadata": {"name": "pay-errors", "namespace": NAMESPACE},
                        "spec": {
                            "severity": "critical",
                            "selector": {"kinds": ["ApiProduct"]},
                            "when": {"for": "0s"},
                            "repeatInterval": "1h",
                            "receivers": [{"name": "hook", "type": "webhook", "url": hook_url}],
                            "traffic": {"signal": "errorRate", "above": 0.05},
                        },
                    },
                    field_manager="bench",
                )
                await asyncio.sleep(45)  # the 30 s window fills with healthy calls
                for _ in range(runs):
                    t0 = time.perf_counter()
                    api.set(error_ratio=0.20)
                    fired = await _wait(notes, "firing", t0, 120)
                    api.set(error_ratio=0.0)
                    t1 = time.perf_counter()
                    resolved = await _wait(notes, "resolved", t1, 180)
                    if fired is None or resolved is None:
                        missed += 1
                        continue
                    rows.append({"fired_s": fired - t0, "resolved_s": resolved - t1})
                    await asyncio.sleep(35)  # the window empties of failures before the next run
    finally:
        prom.stop()
        api.stop()
        await runner.cleanup()
    return {"rows": rows, "missed": missed}


async def _wait(notes: list[tuple[float, str]], status: str, after: float, within: float) -> float | None:
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        found = [at for at, s in notes if s == status and at >= after]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    return None


def run(workdir: Path, quick: bool = False) -> Report:
    cycles, runs = (2, 2) if quick else (5, 5)
    load = asyncio.run(_query_load(workdir, PRODUCTS, cycles))
    delay = asyncio.run(_delay(workdir, runs))
    per_cycle = max(load["queries"])
    fired = [r["fired_s"] for r in delay["rows"]]
    resolved = [r["resolved_s"] for r in delay["rows"]]
    metrics = [
        Metric("products (same shape) / series in Prometheus", f"{PRODUCTS} / 32,000"),
        Metric("queries per traffic cycle", per_cycle, "", "few, not per version", per_cycle <= 50),
        Metric("queries per second at the default 30 s interval", per_cycle / 30.0, "q/s"),
        Metric(
            "cycle wall time, max", max(load["walls"]), "s", "< 30 s (the interval)", max(load["walls"]) < 30
        ),
        Metric("Prometheus CPU per cycle, mean", sum(load["cpu"]) / len(load["cpu"]), "s"),
        Metric("errors start -> alert delivered, p50", percentile(fired, 0.5) if fired else "n/a", "s"),
        Metric("errors start -> alert delivered, max", max(fired) if fired else "n/a", "s"),
        Metric(
            "errors stop -> resolve delivered, p50", percentile(resolved, 0.5) if resolved else "n/a", "s"
        ),
        Metric("runs timed / missed", f"{len(delay['rows'])} / {delay['missed']}"),
    ]
    return Report(
        name="traffic",
        title="Traffic: query load on Prometheus and errors -> alert delivered (issue 16)",
        params={
            "quick": quick,
            "products": PRODUCTS,
            "cycles": cycles,
            "runs": runs,
            "window": "30s",
            "scrape_interval_part2": "1s",
            "traffic_interval_part2": "5s",
            "threshold": 0.05,
            "error_ratio": 0.2,
        },
        metrics=metrics,
        method=[line.strip() for line in (__doc__ or "").split("\n\n")[1:3]],
        notes=[
            "The alert delay is dominated by the rate window: with a 30 s window a 20% failure share needs "
            "7.5 s to pass 5%; a shorter window or a higher share fires sooner, a 5m window later.",
            f"A sample product's rate read in part 1: {load['sample_rps']:.1f} requests/s (40 published: 2 "
            "versions x 20).",
            "Part 1's cycle time is the query-rate bound at work: 35 queries at the default "
            "--prometheus-qps 5 take about 7 s.",
        ],
        extra={"load": load, "delay": delay},
    )
