"""The AlertRule reconciler through the in-memory API, its receivers behind a second MockTransport:
an alert fires, escalates, is acknowledged by annotation and resolves; a deleted rule resolves."""

from __future__ import annotations

import json

import httpx
import pytest
from tests.unit.kubeapi import Clock, KubeAPI, condition, runtime

from pitwall import durations
from pitwall.alerts import reconcile as alerts

NS = "shop"


class Receivers:
    """Every notification request, as the receivers would see it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict]] = []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"ok": True})

    def events(self, path: str) -> list[str]:
        return [body["commonAnnotations"]["event"] if "commonAnnotations" in body else body.get("status", "")
                for p, body in self.seen if p == path]


def probe(ready: str, since: str) -> dict:
    return {"apiVersion": "pitwall.dev/v1alpha1", "kind": "Probe",
            "metadata": {"name": "checkout", "namespace": NS, "labels": {"tier": "revenue-critical"}},
            "spec": {"target": {"url": "http://checkout.example/isUp"}},
            "status": {"state": "Down" if ready == "False" else "Up",
                       "conditions": [{"type": "Ready", "status": ready, "reason": "Down" if ready == "False" else "Up",
                                       "message": "step isUp: 503", "lastTransitionTime": since}]}}


def rule(**annotations) -> dict:
    return {"apiVersion": "pitwall.dev/v1alpha1", "kind": "AlertRule",
            "metadata": {"name": "checkout-down", "namespace": NS, "annotations": annotations},
            "spec": {"severity": "critical",
                     "selector": {"kinds": ["Probe"], "matchLabels": {"tier": "revenue-critical"}},
                     "when": {"condition": "Ready", "status": "False", "for": "1m"},
                     "receivers": [{"name": "ops", "type": "webhook", "url": "https://hooks.example/ops"},
                                   {"name": "lead", "type": "webhook", "url": "https://hooks.example/lead",
                                    "escalationOnly": True}],
                     "escalation": [{"after": "10m", "receivers": ["lead"]}],
                     "repeatInterval": "4h"}}


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(durations, "now", clock)
    return clock


@pytest.fixture
def world(clock):
    api, receivers = KubeAPI(), Receivers()
    api.put(probe("False", durations.rfc3339(clock.advance(0))))
    api.put(rule())
    rt = runtime(api)
    rt.alerts.http = httpx.AsyncClient(transport=receivers.transport)
    return api, rt, receivers


def alert_records(api: KubeAPI) -> list[dict]:
    return api.get("AlertRule", NS, "checkout-down")["status"].get("alerts") or []


async def test_fire_escalate_acknowledge_resolve(world, clock):
    api, rt, receivers = world
    await alerts.reconcile(rt, NS, "checkout-down")
    assert [r["state"] for r in alert_records(api)] == ["pending"]
    assert receivers.seen == []                         # not yet for the whole minute

    clock.advance(61)
    await alerts.reconcile(rt, NS, "checkout-down")
    record = alert_records(api)[0]
    assert record["state"] == "firing" and record["object"] == {"kind": "Probe", "name": "checkout"}
    assert receivers.events("/ops") == ["firing"] and receivers.events("/lead") == []
    obj = api.get("AlertRule", NS, "checkout-down")
    assert condition(obj, "Firing")["status"] == "True"
    assert "AlertFiring" in api.reasons("checkout-down")

    clock.advance(10 * 60)
    await alerts.reconcile(rt, NS, "checkout-down")
    assert receivers.events("/lead") == ["escalation"]

    api.put(rule(**{"pitwall.dev/acknowledge": record["key"], "pitwall.dev/acknowledged-by": "alice"}))
    await alerts.reconcile(rt, NS, "checkout-down")
    record = alert_records(api)[0]
    assert record["acknowledgedBy"] == "alice"
    annotations = api.get("AlertRule", NS, "checkout-down")["metadata"].get("annotations") or {}
    assert "pitwall.dev/acknowledge" not in annotations       # consumed, so it is not applied twice
    assert "Acknowledged" in api.reasons("checkout-down")
    clock.advance(5 * 3600)
    await alerts.reconcile(rt, NS, "checkout-down")
    assert receivers.events("/ops") == ["firing"]       # acknowledged: no reminder

    api.put(probe("True", durations.rfc3339(clock.advance(1))))
    await alerts.reconcile(rt, NS, "checkout-down")
    assert alert_records(api)[0]["state"] == "resolved"
    assert receivers.events("/ops") == ["firing", "resolved"]
    assert receivers.events("/lead") == ["escalation", "resolved"]
    assert condition(api.get("AlertRule", NS, "checkout-down"), "Firing")["status"] == "False"
    assert "AlertResolved" in api.reasons("checkout-down")


async def test_a_deleted_rule_resolves_what_it_fired(world, clock):
    api, rt, receivers = world
    clock.advance(61)
    await alerts.reconcile(rt, NS, "checkout-down")
    assert receivers.events("/ops") == ["firing"]

    await rt.kube.delete("AlertRule", NS, "checkout-down")
    await alerts.reconcile(rt, NS, "checkout-down")
    assert receivers.events("/ops") == ["firing", "resolved"]


async def test_a_missing_secret_stalls_with_a_reason_and_sends_nothing(world):
    api, rt, receivers = world
    body = rule()
    body["spec"]["receivers"] = [{"name": "ops", "type": "msteams", "secretRef": {"name": "teams", "key": "url"}}]
    body["spec"]["escalation"] = []
    api.put(body)
    assert await alerts.reconcile(rt, NS, "checkout-down") == 60.0
    obj = api.get("AlertRule", NS, "checkout-down")
    assert condition(obj, "Stalled")["reason"] == "SecretNotFound"
    assert "Secret teams (key url) not found" in condition(obj, "Stalled")["message"]
    assert api.reasons("checkout-down") == ["SecretNotFound"]
    assert receivers.seen == []
