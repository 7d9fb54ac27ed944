"""Per-probe series as Prometheus scrapes them: success, up, runs by result, each step's seconds
in the last run; step durations as one cumulative histogram per kind, namespace and step; a
probe's series go when its job goes, a namespace's histograms when its last probe goes."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pitwall.probes.monitor import Monitor
from pitwall.probes.telemetry import Collector, Durations, Numbers
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


def test_numbers_are_exposed_as_gauges_counters_and_a_histogram_per_namespace():
    durations = Durations()
    login, logout, elsewhere = Numbers(), Numbers(), Numbers()
    login.record(True, False, [("token", 0.004), ("call", 0.3)], ("Probe", "shop"), durations)
    login.record(True, True, [("token", 0.005), ("call", 12.0)], ("Probe", "shop"), durations)
    login.record(False, True, [("token", 0.02)], ("Probe", "shop"), durations)
    logout.record(True, True, [("call", 0.2)], ("Probe", "shop"), durations)
    elsewhere.record(True, True, [("call", 0.2)], ("Probe", "bank"), durations)
    source = Source(
        {
            ("Probe", "shop", "login"): SimpleNamespace(numbers=login),
            ("Probe", "shop", "logout"): SimpleNamespace(numbers=logout),
            ("Probe", "bank", "pay"): SimpleNamespace(numbers=elsewhere),
            ("Probe", "shop", "never-ran"): SimpleNamespace(numbers=Numbers()),
        }
    )
    collector = Collector(durations)
    collector.watch(source)

    samples = scrape(collector)
    probe = {"kind": "Probe", "namespace": "shop", "name": "login"}
    assert samples[sample("pitwall_probe_success", **probe)] == 0
    assert samples[sample("pitwall_probe_up", **probe)] == 1
    assert samples[sample("pitwall_probe_runs_total", **probe, result="success")] == 2
    assert samples[sample("pitwall_probe_runs_total", **probe, result="failure")] == 1
    # the last run's steps only: its "call" did not run
    assert samples[sample("pitwall_probe_step_duration_seconds", **probe, step="token")] == 0.02
    assert sample("pitwall_probe_step_duration_seconds", **probe, step="call") not in samples
    assert (
        samples[sample("pitwall_probe_step_duration_seconds", **{**probe, "name": "logout"}, step="call")]
        == 0.2
    )

    shop = {"kind": "Probe", "namespace": "shop"}

    def bucket(step: str, le: str) -> float:
        return samples[sample("pitwall_probe_duration_seconds_bucket", **shop, le=le, step=step)]

    assert bucket("token", "0.005") == 2  # a bucket includes its upper bound
    assert bucket("token", "0.025") == 3
    assert bucket("call", "0.1") == 0 and bucket("call", "0.25") == 1 and bucket("call", "0.5") == 2
    assert bucket("call", "10.0") == 2 and bucket("call", "+Inf") == 3  # login and logout
    assert samples[sample("pitwall_probe_duration_seconds_count", **shop, step="call")] == 3
    assert abs(samples[sample("pitwall_probe_duration_seconds_sum", **shop, step="call")] - 12.5) < 1e-9
    assert (
        samples[sample("pitwall_probe_duration_seconds_count", kind="Probe", namespace="bank", step="call")]
        == 1
    )
    assert not any(dict(labels).get("name") == "never-ran" for _, labels in samples)
    assert not any(
        "name" in dict(labels) for name, labels in samples if name.startswith("pitwall_probe_duration")
    )

    # a namespace's histograms leave the page with its last probe, and never go back
    del source.jobs[("Probe", "bank", "pay")]
    assert not any(dict(labels).get("namespace") == "bank" for _, labels in scrape(collector))
    source.jobs[("Probe", "shop", "new")] = SimpleNamespace(numbers=Numbers())
    source.jobs[("Probe", "shop", "new")].numbers.record(
        True, True, [("call", 0.01)], ("Probe", "shop"), durations
    )
    del source.jobs[("Probe", "shop", "logout")]
    assert scrape(collector)[sample("pitwall_probe_duration_seconds_count", **shop, step="call")] == 4


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
        assert samples[sample("pitwall_probe_step_duration_seconds", **labels, step="check")] > 0
        assert (
            samples[
                sample("pitwall_probe_duration_seconds_count", kind="Probe", namespace="shop", step="check")
            ]
            >= 2
        )

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

    durations = Durations()
    jobs = {}
    for i in range(30):
        numbers = Numbers()
        key = ("Probe" if i % 5 else "Backend", f'ns-{i % 4}"quoted\\back\nline', f'p{i}"quoted\\back\nline')
        for run in range(3):
            steps = [("check", 0.004 * i), ("second step", 7.5 + 1e7 * i)][: 1 + (run + i) % 2]
            numbers.record(run != i % 3, bool(i % 2), steps, key[:2], durations)
        jobs[key] = SimpleNamespace(numbers=numbers)
    jobs[("Backend", "ns", "never-ran")] = SimpleNamespace(numbers=Numbers())
    source = Source(jobs)
    source.scheduler = Scheduler()
    collector = Collector(durations)
    collector.watch(source)
    registry = CollectorRegistry()
    registry.register(collector)
    assert render(collector) == prometheus_text(registry)
    assert render(collector) == prometheus_text(registry)  # with the labels kept from the first

    # /metrics carries the operator's own probes' series once (not also through the registry).
    COLLECTOR.watch(source)
    page = metrics.exposition().decode()
    assert page.count('pitwall_probe_success{kind="Probe",name="p1') == 9  # p1, p11-p14, p16-p19
    assert page.count("# TYPE pitwall_probe_success gauge") == 1
