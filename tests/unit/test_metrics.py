"""Operator metrics that are not tied to a domain."""

from __future__ import annotations

import gc

from prometheus_client import REGISTRY

from pitwall import metrics


def _count(generation: str) -> float:
    return REGISTRY.get_sample_value("pitwall_gc_pause_seconds_count", {"generation": generation}) or 0.0


def test_garbage_collector_pauses_are_measured_once_per_collection():
    metrics.watch_gc()
    metrics.watch_gc()  # idempotent: one callback, not two
    before = _count("2")

    gc.collect()

    assert _count("2") == before + 1
    assert REGISTRY.get_sample_value("pitwall_gc_pause_seconds_sum", {"generation": "2"}) > 0


def test_created_series_are_not_exported():
    assert "_created" not in metrics.generate_latest().decode()


async def test_the_metrics_endpoint_is_gzipped_when_accepted_and_parses_with_every_probe_series():
    """What Prometheus gets from /metrics: a page its parser reads, with each per-probe family
    (success, up, runs, last step durations), the step-duration histogram per namespace and the
    engine's overload series; gzip when the scraper accepts it, plain text otherwise."""
    import gzip
    from types import SimpleNamespace

    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    from pitwall.probes.scheduler import Scheduler
    from pitwall.probes.telemetry import COLLECTOR, Numbers
    from pitwall_testing.cluster import free_port

    class Monitor:  # what the collector reads from one: jobs and a scheduler
        def __init__(self) -> None:
            self.scheduler = Scheduler()
            self.jobs = {}

    monitor = Monitor()
    for i in range(200):
        key = ("Probe", "metrics-test", f"probe-{i}")
        numbers = Numbers()
        numbers.record(i % 7 != 3, True, [("token", 0.002), ("call", 0.03 * (i % 40))], key[:2])
        monitor.jobs[key] = SimpleNamespace(numbers=numbers)
    COLLECTOR.watch(monitor)
    port = free_port()
    runner = await metrics.serve("127.0.0.1", port)
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            url = f"http://127.0.0.1:{port}/metrics"
            async with session.get(url, headers={"Accept-Encoding": "gzip"}) as response:
                assert response.status == 200
                assert response.headers["Content-Encoding"] == "gzip"
                zipped = await response.read()
            async with session.get(url, headers={"Accept-Encoding": "identity"}) as response:
                assert "Content-Encoding" not in response.headers
                plain = await response.read()
    finally:
        await runner.cleanup()

    text = gzip.decompress(zipped).decode()
    assert len(zipped) * 5 < len(plain)
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, kind in {
        "pitwall_probe_success": "gauge",
        "pitwall_probe_up": "gauge",
        "pitwall_probe_runs": "counter",
        "pitwall_probe_step_duration_seconds": "gauge",
        "pitwall_probe_duration_seconds": "histogram",
        "pitwall_probe_overloaded": "gauge",
        "pitwall_probe_overloaded_seconds": "counter",
        "pitwall_probe_runs_waiting": "gauge",
        "pitwall_probe_runs_in_flight_limit": "gauge",
    }.items():
        assert families[name].type == kind, name

    def ours(name: str) -> list:
        return [s for s in families[name].samples if s.labels.get("namespace") == "metrics-test"]

    assert len(ours("pitwall_probe_success")) == len(ours("pitwall_probe_up")) == 200
    assert len(ours("pitwall_probe_runs")) == 400
    assert len(ours("pitwall_probe_step_duration_seconds")) == 400
    histogram = {
        (s.name, s.labels["step"], s.labels.get("le")): s.value
        for s in ours("pitwall_probe_duration_seconds")
    }
    assert histogram["pitwall_probe_duration_seconds_count", "call", None] == 200
    assert histogram["pitwall_probe_duration_seconds_bucket", "token", "0.005"] == 200
    assert not any("name" in s.labels for s in families["pitwall_probe_duration_seconds"].samples)


async def test_metrics_and_health_are_answered_while_the_operators_event_loop_is_blocked():
    """The endpoints have a thread and a loop of their own: a scrape or a kubelet probe does not
    wait for the operator's loop (busy running checks, or stuck)."""
    import json
    import threading
    import urllib.error
    import urllib.request

    from pitwall_testing.cluster import free_port

    port = free_port()
    server = await metrics.serve("127.0.0.1", port)
    answers: dict[str, tuple[int, bytes]] = {}
    done = threading.Event()

    def scrape() -> None:
        for path in ("/metrics", "/healthz"):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
                    answers[path] = response.status, response.read()
            except urllib.error.HTTPError as error:  # /healthz: 503 if another test failed a task
                answers[path] = error.code, error.read()
        done.set()

    try:
        threading.Thread(target=scrape, daemon=True).start()
        answered = done.wait(timeout=30)  # blocks this event loop meanwhile, as a stuck one would
    finally:
        await server.cleanup()
    assert answered, "no answer while the operator's event loop was blocked"
    assert answers["/metrics"][0] == 200 and b"# TYPE pitwall_leader gauge" in answers["/metrics"][1]
    assert json.loads(answers["/healthz"][1])["status"] in {"ok", "failed", "stuck"}
