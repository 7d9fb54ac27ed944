"""The traffic cycle when Prometheus does not answer: every product's traffic is unknown with the
reason (never zero), and the products are woken so their status says so."""

from __future__ import annotations

import asyncio

from pitwall.runtime import Runtime, Settings
from pitwall.traffic.service import TrafficService
from pitwall_testing.cluster import free_port


def product(name: str, traffic: dict | None) -> dict:
    spec: dict = {"versions": [{"name": "v1", "image": "x"}]}
    if traffic is not None:
        spec["traffic"] = traffic
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "ApiProduct",
        "metadata": {"name": name, "namespace": "shop", "uid": name},
        "spec": spec,
    }


def test_an_unreachable_prometheus_makes_traffic_unknown_with_the_reason():
    async def scenario() -> tuple[dict | None, dict | None, list]:
        rt = Runtime(
            kube=None,
            settings=Settings(
                prometheus_url=f"http://127.0.0.1:{free_port()}",  # nothing listens
                prometheus_timeout=2.0,
            ),
        )
        rt.stores["ApiProduct"].prime(product("cart", {"window": "1m"}))
        rt.stores["ApiProduct"].prime(product("plain", None))
        woken = []
        rt.enqueue = lambda kind, ns, name, after=0.0: woken.append((kind, ns, name))  # type: ignore[method-assign]
        service = TrafficService(rt)
        await service.start()
        assert service._task is not None
        service._task.cancel()
        await service.cycle()
        reading = service.reading("shop", "cart")
        await service.stop()
        return (
            service.status_for("shop", "cart"),
            service.status_for("shop", "plain"),
            [woken, reading.error if reading else None],
        )

    cart, plain, (woken, error) = asyncio.run(scenario())
    assert cart is not None and cart["state"] == "unknown" and "versions" not in cart
    assert "unreachable" in cart["message"] and cart["window"] == "1m"
    assert plain is None  # no spec.traffic: never asked
    assert ("ApiProduct", "shop", "cart") in woken and error == cart["message"]


def test_a_traffic_alert_keeps_its_state_while_prometheus_has_no_figures():
    from datetime import UTC, datetime

    from pitwall.alerts import traffic as traffic_rules
    from pitwall.alerts.rules import parse_rule
    from pitwall.traffic.promql import Shape
    from pitwall.traffic.service import Reading

    class Silent:
        def reading(self, namespace: str, name: str) -> Reading:
            return Reading(
                None,
                "Prometheus http://prom:9090 is unreachable: ConnectError",
                datetime(2026, 1, 1, tzinfo=UTC),
                Shape(),
                0.05,
            )

    rt = Runtime(kube=None, settings=Settings())
    rt.stores["ApiProduct"].prime(product("cart", {}))
    rt.traffic = Silent()  # type: ignore[assignment]
    rule = parse_rule(
        "shop",
        "errors",
        {
            "severity": "critical",
            "selector": {"kinds": ["ApiProduct"]},
            "receivers": [{"name": "h", "type": "webhook", "url": "http://h"}],
            "traffic": {"signal": "errorRate", "above": 0.05},
        },
    )
    records = [
        {"key": "a", "object": {"kind": "ApiProduct", "name": "cart/v1"}, "state": "firing"},
        {"key": "b", "object": {"kind": "ApiProduct", "name": "cart/v2"}, "state": "resolved"},
    ]
    seen = asyncio.run(traffic_rules.observations(rt, rule, "shop", records))
    assert [(o.name, o.status) for o in seen] == [("cart/v1", "True"), ("cart/v2", "False")]
    assert "unreachable" in seen[0].message


def test_a_product_whose_traffic_the_model_refuses_is_left_out_and_the_others_are_asked(caplog):
    rt = Runtime(kube=None, settings=Settings(prometheus_url="http://127.0.0.1:9"))
    rt.stores["ApiProduct"].prime(product("cart", {"preset": "istio", "top": 3}))
    rt.stores["ApiProduct"].prime(product("broken", {"top": 50}))  # stored around the schema
    rt.stores["ApiProduct"].prime(product("plain", None))
    service = TrafficService(rt)
    with caplog.at_level("WARNING", logger="pitwall.traffic"):
        first, second = service.products(), service.products()
    assert set(first) == set(second) == {("shop", "cart")}
    traffic = first[("shop", "cart")][1]
    assert (traffic.preset, traffic.top, traffic.window) == ("istio", 3, "5m")
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "shop/broken" in warned[0] and "spec.traffic.top" in warned[0]
