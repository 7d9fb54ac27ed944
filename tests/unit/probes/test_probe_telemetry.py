"""Per-probe series as Prometheus scrapes them: success, up, runs by result, step durations as a
cumulative histogram; a probe's series go when its job goes."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pitwall.probes.monitor import Monitor
from pitwall.probes.telemetry import Collector, Numbers
from pitwall.runtime import Runtime, Settings

from .test_probe_monitor import job


class Source:
    """What the collector reads: a monitor's jobs (weakly referenced, as monitors are)."""

    def __init__(self, jobs: dict):
        self.jobs = jobs


def scrape(collector: Collector) -> dict:
    registry = CollectorRegistry()
    registry.register(collector)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }


def sample(metric: str, /, **labels: str) -> tuple:
    return metric, tuple(sorted(labels.items()))


def test_numbers_are_exposed_as_gauges_counters_and_a_cumulative_histogram():
    numbers = Numbers()
    numbers.record(True, False, [("token", 0.004), ("call", 0.3)])
    numbers.record(True, True, [("token", 0.005), ("call", 12.0)])
    numbers.record(False, True, [("token", 0.02)])
    source = Source(
        {
            ("Probe", "shop", "login"): SimpleNamespace(numbers=numbers),
            ("Probe", "shop", "never-ran"): SimpleNamespace(numbers=Numbers()),
        }
    )
    collector = Collector()
    collector.watch(source)

    samples = scrape(collector)
    probe = {"kind": "Probe", "namespace": "shop", "name": "login"}
    assert samples[sample("pitwall_probe_success", **probe)] == 0
    assert samples[sample("pitwall_probe_up", **probe)] == 1
    assert samples[sample("pitwall_probe_runs_total", **probe, result="success")] == 2
    assert samples[sample("pitwall_probe_runs_total", **probe, result="failure")] == 1

    def bucket(step: str, le: str) -> float:
        return samples[sample("pitwall_probe_duration_seconds_bucket", **probe, le=le, step=step)]

    assert bucket("token", "0.005") == 2  # a bucket includes its upper bound
    assert bucket("token", "0.025") == 3
    assert bucket("call", "0.25") == 0 and bucket("call", "0.5") == 1
    assert bucket("call", "10.0") == 1 and bucket("call", "+Inf") == 2
    assert samples[sample("pitwall_probe_duration_seconds_count", **probe, step="call")] == 2
    assert abs(samples[sample("pitwall_probe_duration_seconds_sum", **probe, step="call")] - 12.3) < 1e-9
    assert not any(dict(labels).get("name") == "never-ran" for _, labels in samples)


async def test_a_monitored_probe_has_series_until_it_is_removed(demo):
    monitor = Monitor(Runtime(kube=None, settings=Settings()))
    collector = Collector()
    collector.watch(monitor)
    monitor.upsert(job(monitor, "isup", demo.url, []), {})
    key = ("Probe", "shop", "isup")
    labels = {"kind": "Probe", "namespace": "shop", "name": "isup"}
    try:
        await monitor.run(key)
        await monitor.run(key)
        samples = scrape(collector)
        assert samples[sample("pitwall_probe_success", **labels)] == 1
        assert samples[sample("pitwall_probe_runs_total", **labels, result="success")] == 2
        assert samples[sample("pitwall_probe_duration_seconds_count", **labels, step="check")] == 2

        monitor.upsert(job(monitor, "isup", demo.url, []), {})  # a watch echo replaces the job
        assert scrape(collector)[sample("pitwall_probe_runs_total", **labels, result="success")] == 2

        monitor.remove(key)
        assert not any(dict(found).get("name") == "isup" for _, found in scrape(collector))
    finally:
        await monitor.stop()


def test_the_hand_written_exposition_is_byte_for_byte_what_prometheus_client_writes():
    from prometheus_client import generate_latest as prometheus_text

    from pitwall import metrics
    from pitwall.probes.scheduler import Scheduler
    from pitwall.probes.telemetry import COLLECTOR, render

    jobs = {}
    for i in range(30):
        numbers = Numbers()
        for run in range(3):
            numbers.record(run != i % 3, bool(i % 2), [("check", 0.004 * i), ("second step", 7.5)])
        jobs[("Probe", f"ns-{i % 4}", f'p{i}"quoted\\back\nline')] = SimpleNamespace(numbers=numbers)
    jobs[("Backend", "ns", "never-ran")] = SimpleNamespace(numbers=Numbers())
    source = Source(jobs)
    source.scheduler = Scheduler()
    collector = Collector()
    collector.watch(source)
    registry = CollectorRegistry()
    registry.register(collector)
    assert render(collector) == prometheus_text(registry)

    # /metrics carries the operator's own probes' series once (not also through the registry).
    COLLECTOR.watch(source)
    page = metrics.exposition().decode()
    assert page.count('pitwall_probe_success{kind="Probe",name="p1') == 11  # p1, p10-p19
    assert page.count("# TYPE pitwall_probe_success gauge") == 1
