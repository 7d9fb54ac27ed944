"""Traffic conditions of AlertRules: parsed from the spec, judged from figures (pure)."""

from __future__ import annotations

import pytest

from pitwall.alerts.rules import TrafficCondition, judge_traffic, parse_rule
from pitwall.errors import InvalidSpec
from pitwall.traffic.figures import Figures, Share, VersionFigures

HOOK = [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}]


def spec(**traffic) -> dict:
    return {
        "severity": "critical",
        "selector": {"kinds": ["ApiProduct"]},
        "receivers": HOOK,
        "when": {"for": "30s"},
        "traffic": traffic,
    }


def figures() -> Figures:
    v1 = VersionFigures(
        "v1",
        rps=10.0,
        server=1.5,
        client=2.0,
        timeouts=0.5,
        week_ago=40.0,
        latency={"p50": 0.01, "p95": 0.2, "p99": 0.9},
        consumers={"acme": Share("acme", 8.0, 2.0), "globex": Share("globex", None, 0.1)},
    )
    v2 = VersionFigures("v2", rps=5.0, latency={"p99": 0.1})
    return Figures({"v1": v1, "v2": v2})


def test_a_traffic_rule_fires_on_its_traffic_condition_after_when_for():
    rule = parse_rule("shop", "errors", spec(signal="errorRate", above=0.05))
    assert (rule.when.condition, rule.when.status, rule.when.for_) == ("Traffic", "True", 30.0)
    assert rule.traffic == TrafficCondition(signal="errorRate", above=0.05)
    assert rule.summary == "{message}"


@pytest.mark.parametrize(
    "traffic, reason",
    [
        ({"signal": "errorRate"}, "needs above"),
        ({"signal": "requestRate"}, "needs below"),
        ({"signal": "loudness", "above": 1}, "spec.traffic.signal: Input should be 'errorRate', "),
        ({"signal": "failedRequests", "above": 5, "over": "x"}, "spec.traffic.over: 'x' is not a duration"),
    ],
)
def test_a_traffic_condition_that_cannot_work_is_refused_with_the_field(traffic, reason):
    with pytest.raises(InvalidSpec) as exc:
        parse_rule("shop", "r", spec(**traffic))
    assert reason in exc.value.message


def test_error_rate_per_version_per_class_and_below_the_minimum_rate_not_judged():
    got = {
        v.name: v
        for v in judge_traffic(
            TrafficCondition(signal="errorRate", above=0.15), "shop", figures(), ["v1", "v2"]
        )
    }
    assert got["shop/v1"].breached and "20.0%" in got["shop/v1"].message  # (1.5 + 0.5) / 10
    assert not got["shop/v2"].breached
    client = judge_traffic(
        TrafficCondition(signal="errorRate", above=0.15, error_class="client"), "shop", figures(), ["v1"]
    )
    assert client[0].breached and "(client)" in client[0].message
    idle = judge_traffic(
        TrafficCondition(signal="errorRate", above=0.01, min_rps=20), "shop", figures(), ["v1"]
    )
    assert not any(v.breached for v in idle) and "not judged" in idle[0].message


def test_latency_no_traffic_and_a_drop_against_last_week():
    slow = judge_traffic(
        TrafficCondition(signal="latency", above=500, per="product"), "shop", figures(), ["v1", "v2"]
    )
    assert [(v.name, v.breached) for v in slow] == [("shop", True)] and "900ms" in slow[0].message
    silent = {
        v.name: v.breached
        for v in judge_traffic(TrafficCondition(signal="noTraffic"), "shop", figures(), ["v1", "v2", "v3"])
    }
    assert silent == {"shop/v1": False, "shop/v2": False, "shop/v3": True}  # v3 served nothing at all
    drop = judge_traffic(
        TrafficCondition(signal="requestRate", below=0.5, week_ago_ratio=True), "shop", figures(), ["v1"]
    )
    assert drop[0].breached and "25% of last week" in drop[0].message
    floor = judge_traffic(TrafficCondition(signal="requestRate", below=6), "shop", figures(), ["v1", "v2"])
    assert [v.breached for v in floor] == [False, True]


def test_per_consumer_and_failed_requests_and_no_figures():
    per = judge_traffic(
        TrafficCondition(signal="errorRate", above=0.2, per="consumer"), "shop", figures(), ["v1"]
    )
    assert [(v.name, v.breached) for v in per] == [("shop/v1/acme", True)]  # globex: rate unknown
    war = judge_traffic(
        TrafficCondition(signal="failedRequests", above=100, per="product", war_room=True),
        "shop",
        figures(),
        ["v1"],
        failed=250.0,
    )
    assert war[0].breached and "250 failed requests over 10m" in war[0].message
    assert war[0].value == 250.0  # what status.warRoom.failedRequests records when the room opens
    assert judge_traffic(TrafficCondition(signal="errorRate", above=0.1), "shop", None, ["v1"]) == []
