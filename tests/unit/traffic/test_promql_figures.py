"""The pure half of traffic: PromQL built from spec.traffic, Prometheus answers read into figures,
status written compactly and coalesced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pitwall.api.apiproduct import Traffic
from pitwall.traffic import figures as fig
from pitwall.traffic import promql, view


def shape_of(raw: dict) -> promql.Shape:
    """The shape of a raw spec.traffic, parsed as the traffic service parses it."""
    traffic = promql.traffic_of({"traffic": raw})
    assert traffic is not None
    return promql.shape_of(traffic)


def sample(value: float, **labels: str) -> dict:
    return {"metric": labels, "value": [1700000000.0, str(value)]}


def test_defaults_fit_the_common_exporter_and_one_query_per_family_covers_a_batch():
    shape = shape_of({})
    queries = promql.queries(shape, ["orders", "payments"])
    assert set(queries) == {
        "codes",
        "buckets",
        "consumers",
        "consumerErrors",
        "routes",
        "routeErrors",
        "weekAgo",
    }
    assert queries["codes"] == (
        'sum by (product, version, code) (rate(http_requests_total{product=~"orders|payments"}[5m]))'
    )
    assert "http_request_duration_seconds_bucket" in queries["buckets"]
    assert "topk by (product, version) (5," in queries["consumers"]
    assert 'code=~"5..|408|504"' in queries["consumerErrors"]
    assert "offset 1w" in queries["weekAgo"]


def test_label_names_matches_and_values_from_the_spec_are_used_and_escaped():
    shape = shape_of(
        {
            "requestsMetric": "api_calls_total",
            "labels": {"product": "service", "status": "status"},
            "matchLabels": {"namespace": 'shop"x'},
            "window": "1m",
            "timeoutCodes": ["599"],
        }
    )
    sel = promql.selector(shape, ["a.b"])
    assert sel == '{service=~"a\\\\.b", namespace="shop\\"x"}'
    assert 'status=~"5..|599"' in promql.failing(shape)
    assert promql.product_value("payments", Traffic(productValue="pay")) == "pay"
    assert promql.product_value("payments", Traffic()) == "payments"


def test_batches_bound_the_products_per_query():
    batches = promql.batches([f"p{i:03}" for i in range(250)], size=100)
    assert [len(b) for b in batches] == [100, 100, 50]


def test_histogram_quantile_interpolates_like_prometheus():
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert fig.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert fig.histogram_quantile(0.9, buckets) == pytest.approx(0.5)
    assert fig.histogram_quantile(0.95, buckets) == pytest.approx(0.75)
    assert fig.histogram_quantile(0.99, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    assert fig.histogram_quantile(0.99, [(0.1, 1.0), (float("inf"), 10.0)]) == pytest.approx(0.1)


def test_answers_become_figures_by_class_with_top_consumers_and_routes():
    shape = promql.Shape()
    answers = {
        "codes": [
            sample(18, product="pay", version="v1", code="200"),
            sample(1, product="pay", version="v1", code="404"),
            sample(0.5, product="pay", version="v1", code="503"),
            sample(0.5, product="pay", version="v1", code="504"),
            sample(3, product="pay", version="v2", code="200"),
        ],
        "buckets": [
            sample(10, product="pay", version="v1", le="0.1"),
            sample(20, product="pay", version="v1", le="+Inf"),
        ],
        "consumers": [sample(15, product="pay", version="v1", consumer="acme")],
        "consumerErrors": [sample(1, product="pay", version="v1", consumer="globex")],
        "routes": [sample(20, product="pay", version="v1", route="/orders/{id}")],
        "weekAgo": [sample(10, product="pay", version="v1")],
    }
    got = fig.assemble(shape, answers)["pay"]
    v1 = got.versions["v1"]
    assert v1.rps == 20 and v1.client == 1 and v1.server == 0.5 and v1.timeouts == 0.5
    assert v1.error_ratio == pytest.approx(0.05)
    assert v1.latency["p50"] == pytest.approx(0.1)
    status = fig.status(got, at=datetime(2026, 1, 1, tzinfo=UTC), window="5m", top=5, degraded_ratio=0.05)
    assert status["state"] == "erroring"
    entry = status["versions"][0]
    assert entry["name"] == "v1" and entry["weekAgoRps"] == 10 and entry["timeoutRatio"] == 0.025
    assert [c["name"] for c in entry["topConsumers"]] == ["acme", "globex"]
    assert entry["topConsumers"][1] == {"name": "globex", "errorsPerSecond": 1.0}
    assert entry["topRoutes"] == [{"name": "/orders/{id}", "rps": 20.0}]
    assert view.week_change(entry) == "+100%"
    assert "v1 20/s 5.0% failed" in view.summary(status)


def test_no_answer_is_unknown_never_zero_and_no_requests_is_idle():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    unknown = fig.status(
        None, at=at, window="5m", top=5, degraded_ratio=0.05, error="Prometheus is unreachable"
    )
    assert unknown["state"] == "unknown" and "versions" not in unknown
    assert fig.status(fig.Figures(), at=at, window="5m", top=5, degraded_ratio=0.05)["state"] == "idle"
    assert fig.value({"value": [0, "NaN"]}) == 0.0


def test_status_is_coalesced_unless_a_version_starts_or_stops_erroring():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    ok = {"state": "ok", "versions": [{"name": "v1", "rps": 10, "errorRatio": 0.001}]}
    ok_later = {"state": "ok", "versions": [{"name": "v1", "rps": 11, "errorRatio": 0.002}]}
    bad = {"state": "erroring", "versions": [{"name": "v1", "rps": 10, "errorRatio": 0.2}]}
    assert fig.due(None, None, ok, at, 0.05)
    assert not fig.due(ok, at, ok_later, at + timedelta(seconds=20), 0.05)
    assert fig.due(ok, at, ok_later, at + timedelta(seconds=61), 0.05)
    assert fig.due(ok, at, bad, at + timedelta(seconds=1), 0.05)
