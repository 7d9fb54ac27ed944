"""The AlertRule reconciler through the in-memory API, its receivers behind a second MockTransport:
an alert fires, escalates, is acknowledged by annotation and resolves; a deleted rule resolves."""

from __future__ import annotations

import json

import httpx
import pytest
from tests.unit.kubeapi import Clock, KubeAPI, condition, runtime
from tests.unit.test_api_models import undeclared

from pitwall import durations
from pitwall.alerts import reconcile as alerts
from pitwall.api import AlertRule, crdgen

NS = "shop"


class Receivers:
    """Every notification request, as the receivers would see it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict]] = []
        self.answer = 200
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.path, json.loads(request.content)))
        return httpx.Response(self.answer, json={"ok": self.answer < 300})

    def events(self, path: str) -> list[str]:
        return [
            body["commonAnnotations"]["event"] if "commonAnnotations" in body else body.get("status", "")
            for p, body in self.seen
            if p == path
        ]


def probe(ready: str, since: str) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Probe",
        "metadata": {"name": "checkout", "namespace": NS, "labels": {"tier": "revenue-critical"}},
        "spec": {"target": {"url": "http://checkout.example/isUp"}},
        "status": {
            "state": "Down" if ready == "False" else "Up",
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": "Down" if ready == "False" else "Up",
                    "message": "step isUp: 503",
                    "lastTransitionTime": since,
                }
            ],
        },
    }


def rule(**annotations) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "AlertRule",
        "metadata": {"name": "checkout-down", "namespace": NS, "annotations": annotations},
        "spec": {
            "severity": "critical",
            "selector": {"kinds": ["Probe"], "matchLabels": {"tier": "revenue-critical"}},
            "when": {"condition": "Ready", "status": "False", "for": "1m"},
            "receivers": [
                {"name": "ops", "type": "webhook", "url": "https://hooks.example/ops"},
                {
                    "name": "lead",
                    "type": "webhook",
                    "url": "https://hooks.example/lead",
                    "escalationOnly": True,
                },
            ],
            "escalation": [{"after": "10m", "receivers": ["lead"]}],
            "repeatInterval": "4h",
        },
    }


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(durations, "now", clock)
    monkeypatch.setenv("PITWALL_FINALIZER_GRACE", "1e9")  # the fake API stamps deletions in the past
    monkeypatch.setenv("PITWALL_DELIVERY_BASE_DELAY", "0.001")
    return clock


@pytest.fixture
def world(clock):
    api, receivers = KubeAPI(), Receivers()
    api.put(probe("False", durations.rfc3339(clock.advance(0))))
    api.put(rule())
    rt = runtime(api)
    rt.alerts.http = httpx.AsyncClient(transport=receivers.transport)
    return api, rt, receivers


async def reconcile(rt, name: str = "checkout-down") -> float | None:
    """A reconcile, the outbox's send round it asks for, and the reconcile that records the
    results (in the operator these follow each other on their own workers)."""
    wake = await alerts.reconcile(rt, NS, name)
    await rt.alerts.sender.run_once(NS, name)
    await alerts.reconcile(rt, NS, name)
    return wake


def alert_records(api: KubeAPI) -> list[dict]:
    return api.get("AlertRule", NS, "checkout-down")["status"].get("alerts") or []


async def test_fire_escalate_acknowledge_resolve(world, clock):
    api, rt, receivers = world
    await reconcile(rt)
    assert [r["state"] for r in alert_records(api)] == ["pending"]
    assert receivers.seen == []  # not yet for the whole minute

    clock.advance(61)
    await reconcile(rt)
    record = alert_records(api)[0]
    assert record["state"] == "firing" and record["object"] == {"kind": "Probe", "name": "checkout"}
    assert receivers.events("/ops") == ["firing"] and receivers.events("/lead") == []
    obj = api.get("AlertRule", NS, "checkout-down")
    assert condition(obj, "Firing")["status"] == "True"
    assert "AlertFiring" in api.reasons("checkout-down")

    clock.advance(10 * 60)
    await reconcile(rt)
    assert receivers.events("/lead") == ["escalation"]

    api.put(rule(**{"pitwall.dev/acknowledge": record["key"], "pitwall.dev/acknowledged-by": "alice"}))
    await reconcile(rt)
    record = alert_records(api)[0]
    assert record["acknowledgedBy"] == "alice"
    annotations = api.get("AlertRule", NS, "checkout-down")["metadata"].get("annotations") or {}
    assert "pitwall.dev/acknowledge" not in annotations  # consumed, so it is not applied twice
    assert "Acknowledged" in api.reasons("checkout-down")
    clock.advance(5 * 3600)
    await reconcile(rt)
    assert receivers.events("/ops") == ["firing"]  # acknowledged: no reminder

    api.put(probe("True", durations.rfc3339(clock.advance(1))))
    await reconcile(rt)
    assert alert_records(api)[0]["state"] == "resolved"
    assert receivers.events("/ops") == ["firing", "resolved"]
    assert receivers.events("/lead") == ["escalation", "resolved"]
    assert condition(api.get("AlertRule", NS, "checkout-down"), "Firing")["status"] == "False"
    assert "AlertResolved" in api.reasons("checkout-down")


async def test_a_deleted_rule_resolves_what_it_fired(world, clock):
    api, rt, receivers = world
    clock.advance(61)
    await reconcile(rt)
    assert receivers.events("/ops") == ["firing"]

    assert "pitwall.dev/cleanup" in api.get("AlertRule", NS, "checkout-down")["metadata"]["finalizers"]
    await rt.kube.delete("AlertRule", NS, "checkout-down")  # held by Pitwall's finalizer ...
    await reconcile(rt)
    assert receivers.events("/ops") == ["firing", "resolved"]
    await alerts.reconcile(rt, NS, "checkout-down")  # ... until the resolve is delivered
    assert api.get("AlertRule", NS, "checkout-down") is None


async def test_a_permanent_refusal_is_recorded_once_and_not_retried(world, clock):
    api, rt, receivers = world
    receivers.answer = 400
    clock.advance(61)
    await reconcile(rt)
    record = alert_records(api)[0]
    assert receivers.events("/ops") == ["firing"]
    assert record["deliveries"][-1]["ok"] is False and not record.get("outstanding")
    assert "NotificationFailed" in api.reasons("checkout-down")
    clock.advance(3600)
    await reconcile(rt)
    assert receivers.events("/ops") == ["firing"]  # never again


async def test_a_transient_failure_is_owed_again_later_not_at_once(world, clock):
    api, rt, receivers = world
    receivers.answer = 503
    clock.advance(61)
    await reconcile(rt)
    tries = len(receivers.events("/ops"))
    record = alert_records(api)[0]
    assert record["outstanding"][0]["tries"] == 1 and record["outstanding"][0]["due"] > record["since"]
    await reconcile(rt)
    assert len(receivers.events("/ops")) == tries  # not before it is due
    receivers.answer = 200
    clock.advance(120)
    await reconcile(rt)
    assert not alert_records(api)[0].get("outstanding")
    assert receivers.events("/ops")[-1] == "firing"


async def test_a_missing_secret_stalls_with_a_reason_and_sends_nothing(world):
    api, rt, receivers = world
    body = rule()
    body["spec"]["receivers"] = [
        {"name": "ops", "type": "msteams", "secretRef": {"name": "teams", "key": "url"}}
    ]
    body["spec"]["escalation"] = []
    api.put(body)
    assert await reconcile(rt) == 60.0
    obj = api.get("AlertRule", NS, "checkout-down")
    assert condition(obj, "Stalled")["reason"] == "SecretNotFound"
    assert "Secret teams (key url) not found" in condition(obj, "Stalled")["message"]
    assert api.reasons("checkout-down") == ["SecretNotFound"]
    assert receivers.seen == []


async def test_a_retry_due_within_the_same_second_still_goes_out(world, clock):
    """The outbox keeps what it just sent out of the next round; a retry is a new try, not a copy
    (ids carry the try count: due times alone can share a second)."""
    api, rt, receivers = world
    rt.alerts.retry_base = 0.2
    receivers.answer = 503
    clock.advance(61)
    await reconcile(rt)
    assert alert_records(api)[0]["outstanding"][0]["tries"] == 1
    receivers.answer = 200
    clock.advance(0.3)
    await reconcile(rt)
    assert not alert_records(api)[0].get("outstanding")
    assert alert_records(api)[0]["deliveries"][-1]["ok"] is True


async def test_a_refire_waits_for_the_last_incidents_resolve(world, clock):
    """Seen in the chaos run: the condition came back while the resolve was being retried, the
    new incident replaced the record and the resolve was lost. Now the resolve goes first."""
    api, rt, receivers = world
    clock.advance(61)
    await reconcile(rt)
    receivers.answer = 503
    api.put(probe("True", durations.rfc3339(clock.advance(1))))
    await reconcile(rt)  # resolve owed, its try failed
    assert alert_records(api)[0]["outstanding"][0]["event"] == "resolved"
    api.put(probe("False", durations.rfc3339(clock.advance(1))))
    clock.advance(61)
    await alerts.reconcile(rt, NS, "checkout-down")  # down again, past when.for
    record = alert_records(api)[0]
    assert record["state"] == "resolved" and record["outstanding"][0]["event"] == "resolved"
    receivers.answer = 200
    clock.advance(120)
    await reconcile(rt)  # the resolve is delivered ...
    await reconcile(rt)  # ... then the new incident fires
    assert receivers.events("/ops")[-2:] == ["resolved", "firing"]
    assert alert_records(api)[0]["state"] == "firing"


async def test_a_spec_the_model_refuses_stalls_with_the_field_named_and_sends_nothing(world, clock):
    api, rt, receivers = world
    stale = rule()
    # stored before the bound existed, say: the model (and so the CRD today) refuses it
    stale["spec"]["receivers"][0]["type"] = "carrier-pigeon"
    api.put(stale)
    clock.advance(61)
    assert await reconcile(rt) is None
    obj = api.get("AlertRule", NS, "checkout-down")
    stalled = condition(obj, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    assert stalled["message"] == (
        "spec.receivers[0].type: Input should be 'msteams', 'slack', 'opsgenie', 'pagerduty', 'email' or 'webhook'"
    )
    assert condition(obj, "Firing")["status"] == "Unknown"
    assert api.reasons("checkout-down") == ["InvalidSpec"]
    assert receivers.seen == []


async def test_the_status_written_declares_every_field(world, clock):
    api, rt, receivers = world
    clock.advance(61)
    await reconcile(rt)
    clock.advance(601)  # escalated
    await reconcile(rt)
    obj = api.get("AlertRule", NS, "checkout-down")
    status = obj["status"]
    assert status["firing"] == 1 and status["observedGeneration"] is not None
    record = status["alerts"][0]
    assert {"ackDeadline", "deliveries", "notified", "escalationStep", "message"} <= set(record)
    assert record["escalationStep"] == 1 and receivers.events("/lead") == ["escalation"]
    assert undeclared(crdgen.openapi_schema(AlertRule), obj) == []
