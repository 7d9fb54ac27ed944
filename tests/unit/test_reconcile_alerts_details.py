"""Notifications carry the firing condition's details (failing step, reason, correlation id, log
link) even when sent from the outbox after a restart: the details are stored, masked and
bounded, with the alert in status (``status.alerts[].message``)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from tests.unit.kubeapi import Clock, KubeAPI, runtime

from pitwall import durations
from pitwall.alerts import reconcile as alerts

NS = "shop"
TEAMS_URL = "https://teams.example/workflows/hook-s3cr3t-t0ken"
DETAILS = (
    "step isUp: HTTP 503 (expected 200), correlation id 7f3a9c2e-1b4d, "
    "logs https://logs.example/search?q=7f3a9c2e-1b4d"
)


def probe(message: str, since: str) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Probe",
        "metadata": {"name": "checkout", "namespace": NS, "labels": {"tier": "revenue-critical"}},
        "spec": {"target": {"url": "http://checkout.example/isUp"}},
        "status": {
            "state": "Down",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "Down",
                    "message": message,
                    "lastTransitionTime": since,
                }
            ],
        },
    }


def rule() -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "AlertRule",
        "metadata": {"name": "checkout-down", "namespace": NS},
        "spec": {
            "severity": "critical",
            "selector": {"kinds": ["Probe"], "matchLabels": {"tier": "revenue-critical"}},
            "when": {"condition": "Ready", "status": "False", "for": "1m"},
            "receivers": [
                {"name": "ops", "type": "webhook", "url": "https://hooks.example/ops"},
                {"name": "chat", "type": "msteams", "secretRef": {"name": "teams", "key": "url"}},
            ],
        },
    }


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(durations, "now", clock)
    monkeypatch.setenv("PITWALL_FINALIZER_GRACE", "1e9")
    monkeypatch.setenv("PITWALL_DELIVERY_BASE_DELAY", "0.001")
    return clock


def world(api: KubeAPI, seen: list):
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"ok": True})

    rt = runtime(api)
    rt.alerts.http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return rt


def setup(clock: Clock, message: str) -> KubeAPI:
    api = KubeAPI()
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "teams", "namespace": NS, "labels": {"pitwall.dev/use": "receivers"}},
            "data": {"url": base64.b64encode(TEAMS_URL.encode()).decode()},
        }
    )
    api.put(probe(message, durations.rfc3339(clock.advance(0))))
    api.put(rule())
    return api


def teams_text(body: dict) -> str:
    return json.dumps(body["attachments"][0]["content"])


async def test_details_reach_the_payloads_across_a_restart_between_record_and_send(clock):
    api, seen = setup(clock, DETAILS), []
    rt = world(api, seen)
    await alerts.reconcile(rt, NS, "checkout-down")
    clock.advance(61)
    await alerts.reconcile(rt, NS, "checkout-down")  # fired: owed notifications recorded
    record = api.get("AlertRule", NS, "checkout-down")["status"]["alerts"][0]
    assert record["outstanding"] and record["message"] == DETAILS
    assert seen == []

    rt = world(api, seen)  # a restart: nothing kept in memory
    await rt.alerts.sender.run_once(NS, "checkout-down")
    hook = next(body for path, body in seen if path == "/ops")
    assert hook["status"] == "firing"
    assert hook["alerts"][0]["annotations"]["description"] == DETAILS
    card = teams_text(next(body for path, body in seen if path == "/workflows/hook-s3cr3t-t0ken"))
    assert "Details" in card and "HTTP 503 (expected 200)" in card and "7f3a9c2e-1b4d" in card
    assert "https://logs.example/search?q=7f3a9c2e-1b4d" in card


async def test_stored_details_are_bounded_and_never_hold_a_receiver_secret(clock):
    leaked = f"step isUp: upstream echoed {TEAMS_URL} " + "x" * 5000
    api, seen = setup(clock, leaked), []
    rt = world(api, seen)
    await alerts.reconcile(rt, NS, "checkout-down")
    clock.advance(61)
    await alerts.reconcile(rt, NS, "checkout-down")
    record = api.get("AlertRule", NS, "checkout-down")["status"]["alerts"][0]
    assert record["message"].startswith("step isUp: upstream echoed ****")
    assert len(record["message"]) <= 1000
    await rt.alerts.sender.run_once(NS, "checkout-down")
    assert seen and "s3cr3t" not in json.dumps([body for _, body in seen])
    assert "s3cr3t" not in json.dumps(api.get("AlertRule", NS, "checkout-down"))
