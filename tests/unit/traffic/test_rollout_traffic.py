"""rollout.analysis.traffic: the verdict on a version's real traffic, no data included (pure)."""

from __future__ import annotations

from pitwall.api.apiproduct import TrafficAnalysis
from pitwall.products import analysis
from pitwall.traffic.figures import VersionFigures


def traffic_verdict(criteria: dict, *args, **kwargs):
    """The verdict on rollout.analysis.traffic as the product reconciler parses it."""
    return analysis.traffic_verdict(TrafficAnalysis.model_validate(criteria), *args, **kwargs)


BAD = VersionFigures("v2", rps=20.0, server=4.0, latency={"p99": 0.3})
GOOD = VersionFigures("v2", rps=20.0, server=0.1, latency={"p99": 0.3})


def test_errors_or_latency_over_the_criteria_fail_the_rollout():
    failed = traffic_verdict({"maxErrorRatio": 0.05}, BAD, None, since_rollout=30, rate_window=15)
    assert failed.verdict == "fail" and "20.0% of requests failed (max 5.0%)" in failed.message
    slow = traffic_verdict(
        {"maxLatencyMs": 250, "quantile": "p99"}, GOOD, None, since_rollout=30, rate_window=15
    )
    assert slow.verdict == "fail" and "p99 latency 300ms" in slow.message
    assert (
        traffic_verdict(
            {"maxErrorRatio": 0.05, "maxLatencyMs": 500}, GOOD, None, since_rollout=30, rate_window=15
        ).verdict
        == "pass"
    )


def test_no_data_is_an_explicit_verdict():
    quiet = VersionFigures("v2", rps=0.01)
    assert (
        traffic_verdict({"maxErrorRatio": 0.05}, quiet, None, since_rollout=30, rate_window=15).verdict
        == "wait"
    )
    assert (
        traffic_verdict(
            {"maxErrorRatio": 0.05, "noData": "pass"},
            None,
            "Prometheus is unreachable",
            since_rollout=30,
            rate_window=15,
        ).verdict
        == "pass"
    )
    early = traffic_verdict(
        {"maxErrorRatio": 0.05, "noData": "fail"}, None, "x", since_rollout=5, rate_window=15
    )
    assert early.verdict == "wait"  # the rate window still holds the old image's calls
    late = traffic_verdict(
        {"maxErrorRatio": 0.05, "noData": "fail"}, quiet, None, since_rollout=20, rate_window=15
    )
    assert late.verdict == "fail" and "noData: fail" in late.message
