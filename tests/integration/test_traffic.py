"""Real traffic: a real Prometheus (Debian's prometheus) scrapes real local API servers that serve
calls with known failure shares; the operator reads it through --prometheus-url.

Tolerances: request rates within 25% of the generated rate (rate() over a 15 s window scraped
every second, on a loaded machine), failure shares within 4 percentage points.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from pitwall_testing.prometheus import Prometheus, TrafficServer
from tests.conftest import Operator, eventually

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus")


@pytest.fixture
def servers():
    started = []

    def start(product: str, version: str, **kwargs) -> TrafficServer:
        server = TrafficServer(product, version, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def prometheus(tmp_path):
    running = []

    def start(targets: list[str], backfill: str | None = None) -> Prometheus:
        prom = Prometheus(tmp_path / f"prom{len(running)}", targets)
        if backfill:
            prom.backfill(backfill)
        running.append(prom.start())
        return prom

    yield start
    for prom in running:
        prom.stop()


def traffic_operator(cluster, namespace, tmp_path, prom: Prometheus, *args: str) -> Operator:
    return Operator(
        cluster,
        tmp_path,
        namespace=namespace,
        extra_env={"PITWALL_DELIVERY_BASE_DELAY": "0.05", "PITWALL_TRAFFIC_WRITE_EVERY": "2"},
        extra_args=["--prometheus-url", prom.url, "--traffic-interval", "1", *args],
    ).start()


def pitwall(cluster, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "pitwall", *args], env=cluster.env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def product(name: str, versions: list[str], **traffic) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "ApiProduct",
        "metadata": {"name": name, "labels": {"tier": "revenue-critical"}},
        "spec": {
            "versions": [{"name": v, "image": f"registry.example.com/{name}:{v}"} for v in versions],
            "traffic": {"window": "15s", **traffic},
        },
    }


def version_traffic(kubectl, name: str, version: str) -> dict:
    traffic = ((kubectl.get("apiproduct", name) or {}).get("status") or {}).get("traffic") or {}
    return next((v for v in traffic.get("versions") or [] if v["name"] == version), {})


def within(version: dict, rps: float, **ratios: float) -> bool:
    """The request rate within 25% and each named ratio within 4 points: the module's tolerances.

    The first readings after a version starts serving are low while rate()'s window fills, so a
    test waits for these, not for a first non-zero reading."""
    return version.get("rps", 0) == pytest.approx(rps, rel=0.25) and all(
        version.get(key, -1) == pytest.approx(ratio, abs=0.04) for key, ratio in ratios.items()
    )


def test_product_status_shows_the_traffic_that_was_served(
    cluster, namespace, tmp_path, kubectl, servers, prometheus
):
    v1 = servers("shop", "v1", rps=20, error_ratio=0.10, consumers=("acme", "globex"))
    v2 = servers("shop", "v2", rps=10, error_ratio=0.0, consumers=("initech",))
    prom = prometheus([v1.target, v2.target])
    op = traffic_operator(cluster, namespace, tmp_path, prom)
    try:
        kubectl.apply(product("shop", ["v1", "v2"]))

        def settled():
            one, two = version_traffic(kubectl, "shop", "v1"), version_traffic(kubectl, "shop", "v2")
            return (one, two) if within(one, 20, serverErrorRatio=0.10) and within(two, 10) else None

        try:
            one, two = eventually(settled, timeout=120, message="traffic of both versions in status")
        except AssertionError:
            print(json.dumps(kubectl.get("apiproduct", "shop").get("status"), indent=1))
            print([m for m in op.metrics().splitlines() if "traffic" in m or "error" in m])
            print(op.log()[-5000:])
            raise
        assert one["clientErrorRatio"] == 0 and one["timeoutRatio"] == 0
        assert two.get("errorRatio") == 0
        assert 0 < one["p50Ms"] <= one["p95Ms"] <= one["p99Ms"] < 1000
        assert {c["name"] for c in one["topConsumers"]} == {"acme", "globex"}
        assert [c["name"] for c in two["topConsumers"]] == ["initech"]
        routes = {r["name"] for r in one["topRoutes"]}
        assert routes == {"/orders/{id}", "/orders"}  # templates, never /orders/123
        traffic = kubectl.get("apiproduct", "shop")["status"]["traffic"]
        assert traffic["state"] == "erroring" and traffic["window"] == "15s"

        # What the support engineer reads: pitwall traffic and pitwall status.
        rows = {
            r["version"]: r for r in json.loads(pitwall(cluster, "traffic", "-n", namespace, "-o", "json"))
        }
        assert rows["v1"]["product"] == "shop" and rows["v1"]["failed"].endswith("%")
        assert "acme" in rows["v1"]["consumers"]
        status = json.loads(pitwall(cluster, "status", "-n", namespace, "-o", "json"))
        shop = next(r for r in status if r["kind"] == "ApiProduct")
        assert "traffic erroring: v1 " in shop["detail"]
    finally:
        op.stop()


def test_an_istio_mesh_is_read_with_the_istio_preset(
    cluster, namespace, tmp_path, kubectl, servers, prometheus
):
    """Istio's own metric and label names, durations in milliseconds, every request reported by
    both sidecars: the preset counts the serving side once and reads milliseconds as such."""
    api = servers("mesh", "v1", rps=20, error_ratio=0.10, consumers=("checkout", "billing"), exporter="istio")
    prom = prometheus([api.target])
    op = traffic_operator(cluster, namespace, tmp_path, prom)
    try:
        kubectl.apply(product("mesh", ["v1"], preset="istio"))
        seen: list[dict] = []

        def settled():
            seen.append(version_traffic(kubectl, "mesh", "v1"))
            # 20 a second, not 40: the caller's reports are left out.
            return seen[-1] if within(seen[-1], 20, serverErrorRatio=0.10) else None

        try:
            v1 = eventually(settled, timeout=120, message="the mesh's traffic in status")
        except AssertionError:
            print("last reading:", json.dumps(seen[-1:]))
            raise
        assert {c["name"] for c in v1["topConsumers"]} == {"checkout", "billing"}  # source_workload
        assert 0 < v1["p50Ms"] <= v1["p99Ms"] < 1000  # milliseconds read as milliseconds
        assert "topRoutes" not in v1 or v1["topRoutes"] == []  # Istio's standard labels have no route
    finally:
        op.stop()


def traffic_rule(name: str, hook: str, traffic: dict, **spec) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "AlertRule",
        "metadata": {"name": name},
        "spec": {
            "severity": "critical",
            "selector": {"kinds": ["ApiProduct"], "matchLabels": {"tier": "revenue-critical"}},
            "when": {"for": "2s"},
            "receivers": [{"name": "hook", "type": "webhook", "url": hook}],
            "repeatInterval": "1h",
            "traffic": traffic,
            **spec,
        },
    }


def rule_alerts(kubectl, name: str) -> list[dict]:
    return ((kubectl.get("alertrule", name) or {}).get("status") or {}).get("alerts") or []


def test_an_error_rate_rule_fires_and_resolves_and_the_war_room_opens(
    cluster, namespace, tmp_path, kubectl, servers, prometheus
):
    from tests.helpers.receiver import Recorder

    api = servers("cart", "v1", rps=20, error_ratio=0.0)
    prom = prometheus([api.target])
    op = traffic_operator(cluster, namespace, tmp_path, prom)
    try:
        with Recorder() as rec:
            kubectl.apply(product("cart", ["v1"]))
            kubectl.apply(
                traffic_rule(
                    "cart-errors",
                    rec.url + "/errors",
                    {"signal": "errorRate", "above": 0.05, "per": "version"},
                )
            )
            kubectl.apply(
                traffic_rule(
                    "war-room",
                    rec.url + "/war-room",
                    {"signal": "failedRequests", "above": 40, "over": "15s", "warRoom": True},
                    when={"for": "0s"},
                )
            )
            eventually(
                lambda: version_traffic(kubectl, "cart", "v1").get("rps", 0) > 10,
                timeout=60,
                message="healthy traffic seen",
            )
            assert rule_alerts(kubectl, "cart-errors") == [] and rec.paths("/errors") == []

            api.set(error_ratio=0.25)  # 5 failed requests a second: 75 per 15 s
            fired = eventually(lambda: rec.paths("/errors"), timeout=60, message="error-rate alert delivered")
            body = fired[0]["body"]
            assert body["status"] == "firing"
            alert = next(a for a in rule_alerts(kubectl, "cart-errors") if a["state"] == "firing")
            assert alert["object"] == {"kind": "ApiProduct", "name": "cart/v1"}
            assert "errorRate (failed)" in alert["subject"] and "above 5.0%" in alert["subject"]

            room = eventually(
                lambda: (
                    (kubectl.get("alertrule", "war-room")["status"].get("warRoom") or {}).get("state")
                    == "open"
                    and kubectl.get("alertrule", "war-room")["status"]["warRoom"]
                ),
                timeout=60,
                message="war room open",
            )
            assert room["products"] == ["cart"] and room["threshold"] == 40
            assert room["failedRequests"] > 40  # what passed the threshold
            assert eventually(lambda: rec.paths("/war-room"), message="war room receivers paged")
            assert any(e["reason"] == "WarRoomOpened" for e in kubectl.events("war-room"))
            assert any(e["reason"] == "WarRoomOpened" for e in kubectl.events("cart"))

            api.set(error_ratio=0.0)
            resolved = eventually(
                lambda: [r for r in rec.paths("/errors") if r["body"]["status"] == "resolved"],
                timeout=90,
                message="error-rate alert resolved",
            )
            assert resolved
            eventually(
                lambda: kubectl.get("alertrule", "war-room")["status"]["warRoom"]["state"] == "closed",
                timeout=60,
                message="war room closed",
            )
    finally:
        op.stop()


def test_a_rollout_whose_new_version_serves_20_percent_errors_is_rolled_back_by_traffic(
    cluster, namespace, tmp_path, kubectl, servers, prometheus
):
    from tests.conftest import condition

    api = servers("quotes", "v1", rps=20, error_ratio=0.0)
    prom = prometheus([api.target])
    op = traffic_operator(cluster, namespace, tmp_path, prom)
    try:
        body = product("quotes", ["v1"])
        body["spec"]["rollout"] = {
            "analysisWindow": "5m",
            "analysis": {"traffic": {"maxErrorRatio": 0.05, "noData": "wait"}},
        }
        body["spec"]["versions"][0]["image"] = "registry.example.com/quotes:1.0"
        kubectl.apply(body)
        eventually(
            lambda: (
                (kubectl.get("apiproduct", "quotes").get("status") or {})
                .get("versions", [{}])[0]
                .get("lastGoodImage")
                == "registry.example.com/quotes:1.0"
            ),
            timeout=60,
            message="1.0 good",
        )
        eventually(lambda: version_traffic(kubectl, "quotes", "v1").get("rps", 0) > 10, timeout=60)
        assert condition(kubectl.get("apiproduct", "quotes"), "RolledBack").get("status") == "False"

        body["spec"]["versions"][0]["image"] = "registry.example.com/quotes:1.1"
        kubectl.apply(body)
        api.set(error_ratio=0.20)  # the new image fails one call in five
        obj = eventually(
            lambda: (lambda o: o if condition(o, "RolledBack").get("status") == "True" else None)(
                kubectl.get("apiproduct", "quotes")
            ),
            timeout=90,
            message="rolled back by traffic analysis",
        )
        assert obj["status"]["rolledBack"][0] == {
            **obj["status"]["rolledBack"][0],
            "failedImage": "registry.example.com/quotes:1.1",
            "restoredImage": "registry.example.com/quotes:1.0",
        }
        event = [e for e in kubectl.events("quotes") if e["reason"] == "RolledBack"][0]["message"]
        assert "failed the traffic analysis" in event and "of requests failed (max 5.0%)" in event
        eventually(
            lambda: (
                kubectl.get("deployment", "quotes-v1")["spec"]["template"]["spec"]["containers"][0]["image"]
                == "registry.example.com/quotes:1.0"
            )
        )
    finally:
        op.stop()


def last_week(product: str, version: str, rps: float, span: float = 1800.0, step: float = 5.0) -> str:
    """OpenMetrics samples of a counter growing ``rps`` a second around this time a week ago."""
    import time as _time

    start = _time.time() - 7 * 86400 - span
    lines = ["# HELP http_requests HTTP requests served", "# TYPE http_requests counter"]
    labels = f'product="{product}",version="{version}",consumer="acme",route="/orders/{{id}}",code="200"'
    for i in range(int(2 * span / step)):
        lines.append(f"http_requests_total{{{labels}}} {i * step * rps:.0f} {start + i * step:.3f}")
    return "\n".join([*lines, "# EOF", ""])


def test_the_digest_shows_stability_and_calls_against_the_same_time_a_week_ago(
    cluster, namespace, tmp_path, kubectl, servers, prometheus
):
    from tests.helpers.receiver import Recorder

    api = servers("ledger", "v1", rps=20, error_ratio=0.05)
    prom = prometheus([api.target], backfill=last_week("ledger", "v1", rps=10))  # promtool create-blocks-from
    op = traffic_operator(cluster, namespace, tmp_path, prom)
    try:
        with Recorder() as rec:
            kubectl.apply(product("ledger", ["v1"]))
            eventually(lambda: version_traffic(kubectl, "ledger", "v1").get("rps", 0) > 10, timeout=60)
            kubectl.apply(
                {
                    "apiVersion": "pitwall.dev/v1alpha1",
                    "kind": "AlertRule",
                    "metadata": {"name": "update"},
                    "spec": {
                        "severity": "low",
                        "selector": {"kinds": ["ApiProduct"]},
                        "receivers": [{"name": "team", "type": "webhook", "url": rec.url + "/digest"}],
                        "digest": {"interval": "20s", "receivers": ["team"]},
                    },
                }
            )
            body = eventually(
                lambda: rec.paths("/digest") and rec.paths("/digest")[-1]["body"],
                timeout=90,
                message="a digest",
            )
            live = body["traffic"]["environments"]["live"]
            assert body["traffic"]["period"] == "20s"
            assert live["weekAgoCalls"] == pytest.approx(200, rel=0.3)  # 10/s a week ago
            assert live["calls"] == pytest.approx(400, rel=0.3)  # 20/s now
            assert live["weekOverWeekPercent"] == pytest.approx(100, abs=45)
            assert live["successPercent"] == pytest.approx(95, abs=2.5)  # one call in 20 fails
    finally:
        op.stop()


def test_correlation_ids_link_to_the_log_search(cluster, namespace, tmp_path, kubectl):
    from pitwall_testing.cluster import free_port
    from tests.integration.test_probes import probe

    template = "https://logs.example/app/discover#/?query={correlationId}"
    op = Operator(cluster, tmp_path, namespace=namespace, extra_args=["--log-search-url", template]).start()
    try:
        kubectl.apply(probe("gone", {"url": f"http://127.0.0.1:{free_port()}/isUp"}, failureThreshold=1))
        failure = eventually(
            lambda: ((kubectl.get("probe", "gone") or {}).get("status") or {}).get("lastFailure"),
            message="a failed run",
        )
        assert failure["logsUrl"] == template.replace("{correlationId}", failure["correlationId"])
        down = eventually(lambda: [e for e in kubectl.events("gone") if e["reason"] == "ProbeDown"])
        assert "(logs: https://logs.example/app/discover#/?query=" in down[0]["message"]
        rows = json.loads(pitwall(cluster, "status", "-n", namespace, "-o", "json"))
        assert "logs https://logs.example/" in next(r for r in rows if r["kind"] == "Probe")["detail"]
    finally:
        op.stop()
    bad = subprocess.run(
        [sys.executable, "-m", "pitwall", "run", "--log-search-url", "https://logs.example/"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "must contain {correlationId}" in bad.stderr
