"""spec.traffic.preset: the metric and label names of common exporters, as the PromQL Pitwall sends
and the figures it reads back. A field set in spec.traffic wins over its preset's."""

from __future__ import annotations

import pytest

from pitwall.api.apiproduct import TRAFFIC_PRESETS, Traffic, TrafficPreset
from pitwall.api.base import default_of
from pitwall.errors import InvalidSpec
from pitwall.traffic import figures as fig
from pitwall.traffic import promql


def shape_of(raw: dict) -> promql.Shape:
    """The shape of a raw spec.traffic, parsed as the traffic service parses it."""
    traffic = promql.traffic_of({"traffic": raw})
    assert traffic is not None
    return promql.shape_of(traffic)


def sample(value: float, **labels: str) -> dict:
    return {"metric": labels, "value": [1700000000.0, str(value)]}


def test_every_preset_the_schema_offers_has_a_shape_and_the_default_is_pitwalls():
    assert set(TrafficPreset.__args__) == set(TRAFFIC_PRESETS)
    assert shape_of({}) == shape_of({"preset": "pitwall"}) == promql.Shape()
    assert Traffic().preset == "pitwall"


def test_spring_boot_reads_micrometers_http_server_requests():
    queries = promql.queries(shape_of({"preset": "spring-boot"}), ["payments"])
    assert queries["codes"] == (
        'sum by (application, version, status) (rate(http_server_requests_seconds_count{application=~"payments"}[5m]))'
    )
    assert queries["buckets"] == (
        "sum by (application, version, le) "
        '(rate(http_server_requests_seconds_bucket{application=~"payments"}[5m]))'
    )
    assert "sum by (application, version, uri)" in queries["routes"]
    assert 'status=~"5..|408|504"' in queries["routeErrors"]


def test_ingress_nginx_reads_the_controller_and_takes_the_version_from_pitwalls_service_name():
    shape = shape_of({"preset": "ingress-nginx", "matchLabels": {"namespace": "shop"}})
    queries = promql.queries(shape, ["payments"])
    assert queries["codes"] == (
        "sum by (ingress, service, status) "
        '(rate(nginx_ingress_controller_requests{ingress=~"payments", namespace="shop"}[5m]))'
    )
    assert "nginx_ingress_controller_request_duration_seconds_bucket" in queries["buckets"]
    assert "sum by (ingress, service, path)" in queries["routes"]
    got = fig.assemble(
        shape,
        {
            "codes": [
                sample(9, ingress="payments", service="payments-v2", status="200"),
                sample(1, ingress="payments", service="payments-v2", status="502"),
            ],
            "routes": [sample(10, ingress="payments", service="payments-v2", path="/orders")],
        },
    )
    v2 = got["payments"].versions["v2"]
    assert v2.rps == 10 and v2.error_ratio == pytest.approx(0.1)
    assert list(v2.routes) == ["/orders"]


def test_istio_counts_the_serving_side_once_and_reads_milliseconds():
    shape = shape_of({"preset": "istio"})
    queries = promql.queries(shape, ["payments"])
    assert queries["codes"] == (
        "sum by (destination_canonical_service, destination_canonical_revision, response_code) "
        "(rate(istio_requests_total"
        '{destination_canonical_service=~"payments", reporter="destination"}[5m]))'
    )
    assert "rate(istio_request_duration_milliseconds_bucket{" in queries["buckets"]
    assert "source_workload" in queries["consumers"]
    got = fig.assemble(
        shape,
        {
            "buckets": [
                sample(
                    50, destination_canonical_service="payments", destination_canonical_revision="v1", le="10"
                ),
                sample(
                    100,
                    destination_canonical_service="payments",
                    destination_canonical_revision="v1",
                    le="+Inf",
                ),
            ]
        },
    )
    assert got["payments"].versions["v1"].latency["p50"] == pytest.approx(0.010)  # 10 ms, in seconds


def test_fields_set_in_the_spec_win_over_the_preset_and_values_stay_escaped():
    shape = shape_of(
        {
            "preset": "istio",
            "requestsMetric": "istio_requests_total",
            "labels": {"route": "request_operation", "consumer": "source_app"},
            "matchLabels": {"reporter": "source", "mesh": 'a"b'},
        }
    )
    assert (shape.route, shape.consumer, shape.duration_scale) == ("request_operation", "source_app", 0.001)
    assert promql.selector(shape, ["pay.v"]) == (
        '{destination_canonical_service=~"pay\\\\.v", mesh="a\\"b", reporter="source"}'
    )
    # equal shapes share a batch query, different presets never do
    assert shape_of({"preset": "spring-boot"}) != shape_of({})


def test_spec_traffic_is_read_through_the_model_with_its_defaults():
    assert promql.traffic_of({"versions": []}) is None  # no spec.traffic: not asked about
    traffic = promql.traffic_of({"traffic": {"preset": "istio"}})
    assert traffic is not None
    shape = promql.shape_of(traffic)
    # what the spec leaves out is the model's (so the CRD's) default, not a copy of it
    assert (shape.window, shape.top) == (default_of(Traffic, "window"), default_of(Traffic, "top"))
    assert shape.timeout_codes == tuple(default_of(Traffic, "timeout_codes"))
    assert traffic.degraded_error_ratio == default_of(Traffic, "degraded_error_ratio")
    # an explicit empty list is the user's choice (no timeout codes), not "use the default"
    none = shape_of({"timeoutCodes": []})
    assert none.timeout_codes == () and promql.failing(none) == 'code=~"5.."'


def test_only_fields_the_spec_sets_win_over_the_preset():
    shape = shape_of({"preset": "spring-boot", "labels": {"consumer": "client_id"}, "top": 3})
    spring = TRAFFIC_PRESETS["spring-boot"]
    assert shape.consumer == "client_id" and shape.top == 3
    assert (shape.requests, shape.duration) == (spring["requestsMetric"], spring["durationMetric"])
    assert (shape.product, shape.route, shape.status) == ("application", "uri", "status")
    # an istio spec that names the preset's own match keeps it; its own matches are added
    assert shape_of({"preset": "istio", "matchLabels": {"mesh": "m1"}}).match == (
        ("mesh", "m1"),
        ("reporter", "destination"),
    )


def test_a_traffic_section_the_model_refuses_names_the_field():
    with pytest.raises(InvalidSpec) as refused:
        promql.traffic_of({"traffic": {"top": 50}})
    assert refused.value.message.startswith("spec.traffic.top: Input should be less than or equal to 20")
