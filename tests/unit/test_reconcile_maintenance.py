"""The MaintenanceWindow and ApiProduct reconcilers together through the in-memory API: a window
starts (page up, Service switched, notices), ends (switched back, page gone) and is deleted."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from tests.unit.kubeapi import Clock, KubeAPI, condition, runtime
from tests.unit.test_api_models import undeclared
from tests.unit.test_reconcile_products import product, rolled_out

from pitwall import api as models
from pitwall import durations
from pitwall.api import crdgen
from pitwall.maintenance import reconcile as maintenance
from pitwall.products import reconcile as products

NS = "shop"


class Receiver:
    def __init__(self) -> None:
        self.notices: list[str] = []
        self.answer = 204
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.notices.append(json.loads(request.content)["kind"])
        return httpx.Response(self.answer)


def window(clock: Clock, start_in: float, minutes: int = 30, **meta) -> dict:
    start = clock.moment + timedelta(seconds=start_in)
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "MaintenanceWindow",
        "metadata": {"name": "upgrade", "namespace": NS, **meta},
        "spec": {
            "reason": "Core banking upgrade",
            "schedule": {"start": durations.rfc3339(start), "duration": f"{minutes}m"},
            "targets": {"apiProducts": {"names": ["orders"]}},
            "notice": {
                "leadTime": "5m",
                "receivers": [{"name": "ops", "type": "webhook", "url": "https://hooks.example/ops"}],
            },
        },
    }


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(durations, "now", clock)
    monkeypatch.setenv("PITWALL_FINALIZER_GRACE", "1e9")  # the fake API stamps deletions in the past
    return clock


@pytest.fixture
async def world(clock):
    api, receiver = KubeAPI(), Receiver()
    api.put(product("registry.example.com/orders:1.0"))
    rt = runtime(api, image="ghcr.io/pitwall-dev/pitwall:test")
    rt.maintenance.http = httpx.AsyncClient(transport=receiver.transport)
    await products.reconcile(rt, NS, "orders")
    rolled_out(api)
    await products.reconcile(rt, NS, "orders")
    return api, rt, receiver


async def reconcile(rt) -> float | None:
    """A reconcile, the outbox's send round for the notices it recorded, and the reconcile that
    records their delivery (in the operator these follow each other on their own workers)."""
    wake = await maintenance.reconcile(rt, NS, "upgrade")
    await rt.maintenance.sender.run_once(NS, "upgrade")
    await maintenance.reconcile(rt, NS, "upgrade")
    return wake


def role(api: KubeAPI) -> str:
    return api.get("Service", NS, "orders-v1")["spec"]["selector"]["pitwall.dev/role"]


def notices_recorded(api: KubeAPI) -> list[str]:
    return [n["kind"] for n in api.get("MaintenanceWindow", NS, "upgrade")["status"].get("notices") or []]


async def test_a_window_starts_switches_to_the_page_and_ends_on_time(world, clock):
    api, rt, receiver = world
    api.put(window(clock, start_in=600))

    wake = await reconcile(rt)
    assert api.get("MaintenanceWindow", NS, "upgrade")["status"]["phase"] == "Scheduled"
    assert wake == pytest.approx(300, abs=1)  # the advance notice, 5 minutes before
    assert receiver.notices == []

    clock.advance(300)
    wake = await reconcile(rt)
    assert receiver.notices == ["advance"]
    assert wake == pytest.approx(270, abs=1)  # the page starts 30 s before the window
    clock.advance(270)
    await reconcile(rt)
    page = api.get("Deployment", NS, "orders-v1-maintenance")
    assert page["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/pitwall-dev/pitwall:test"
    assert page["metadata"]["ownerReferences"][0]["kind"] == "MaintenanceWindow"
    assert role(api) == "api"  # not before the start

    clock.advance(30)
    wake = await reconcile(rt)
    mw = api.get("MaintenanceWindow", NS, "upgrade")
    assert mw["status"]["phase"] == "Active" and condition(mw, "Active")["status"] == "True"
    assert mw["status"]["affected"]["apiProducts"] == [
        {"name": "orders", "versions": ["v1"], "effect": "Unavailable"}
    ]
    assert receiver.notices == ["advance", "start"]
    assert undeclared(crdgen.openapi_schema(models.MaintenanceWindow), mw) == []  # written through the model
    assert "WindowActive" in api.reasons("upgrade")
    assert wake == pytest.approx(1800, abs=1)
    await products.reconcile(rt, NS, "orders")
    assert role(api) == "maintenance-page"
    obj = api.get("ApiProduct", NS, "orders")
    assert obj["status"]["state"] == "Maintenance" and condition(obj, "InMaintenance")["status"] == "True"
    assert api.get("Deployment", NS, "orders-v1")["spec"]["replicas"] == 2  # its own pods untouched

    clock.advance(1800)
    await reconcile(rt)
    done = api.get("MaintenanceWindow", NS, "upgrade")["status"]
    assert done["phase"] == "Completed" and "activeSince" not in done  # cleared by the model's patch
    # the page stays while the Service still sends traffic to it: never a version without endpoints
    assert api.get("Deployment", NS, "orders-v1-maintenance") is not None
    await products.reconcile(rt, NS, "orders")
    assert role(api) == "api"
    await reconcile(rt)
    assert api.get("Deployment", NS, "orders-v1-maintenance") is None
    assert condition(api.get("ApiProduct", NS, "orders"), "InMaintenance")["status"] == "False"
    assert receiver.notices == ["advance", "start", "end"]
    assert notices_recorded(api) == ["advance", "start", "end"]
    # woken again afterwards: nothing is sent twice
    await reconcile(rt)
    assert receiver.notices == ["advance", "start", "end"]


async def test_deleting_an_active_window_takes_the_page_down_and_says_so(world, clock):
    api, rt, receiver = world
    api.put(window(clock, start_in=-60, finalizers=["pitwall.dev/finalizer"]))
    await reconcile(rt)
    await products.reconcile(rt, NS, "orders")
    assert role(api) == "maintenance-page"
    assert receiver.notices == ["start"]  # opened a minute ago: no advance notice

    await rt.kube.delete("MaintenanceWindow", NS, "upgrade")  # held by the finalizers
    await reconcile(rt)
    assert receiver.notices == ["start", "end"]
    assert api.get("MaintenanceWindow", NS, "upgrade")["status"]["phase"] == "Cancelled"
    assert "pitwall.dev/cleanup" in api.get("MaintenanceWindow", NS, "upgrade")["metadata"]["finalizers"]
    await products.reconcile(rt, NS, "orders")
    assert role(api) == "api"  # switched back first ...
    await reconcile(rt)
    assert api.get("Deployment", NS, "orders-v1-maintenance") is None  # ... then the page goes
    assert "pitwall.dev/cleanup" not in api.get("MaintenanceWindow", NS, "upgrade")["metadata"]["finalizers"]


async def test_a_window_deleted_outright_leaves_no_page_behind(world, clock):
    api, rt, _ = world
    api.put(window(clock, start_in=-60))
    await reconcile(rt)
    assert api.get("Deployment", NS, "orders-v1-maintenance") is not None

    await rt.kube.delete("MaintenanceWindow", NS, "upgrade")  # Pitwall's own finalizer holds it
    await reconcile(rt)
    await products.reconcile(rt, NS, "orders")
    assert role(api) == "api"
    await reconcile(rt)
    assert api.get("Deployment", NS, "orders-v1-maintenance") is None
    assert api.get("MaintenanceWindow", NS, "upgrade") is None  # and then it goes


async def test_notices_never_hold_up_the_window_and_a_refusal_is_tried_once(world, clock):
    api, rt, receiver = world
    receiver.answer = 400
    api.put(window(clock, start_in=-60))
    await maintenance.reconcile(rt, NS, "upgrade")
    mw = api.get("MaintenanceWindow", NS, "upgrade")
    assert mw["status"]["phase"] == "Active" and receiver.notices == []  # opened before any send
    assert mw["status"]["notices"][0]["pending"][0]["name"] == "ops"
    await rt.maintenance.sender.run_once(NS, "upgrade")
    await maintenance.reconcile(rt, NS, "upgrade")
    entry = api.get("MaintenanceWindow", NS, "upgrade")["status"]["notices"][0]
    assert entry["failed"] == ["ops"] and "400" in entry["error"] and "pending" not in entry
    assert "NoticeFailed" in api.reasons("upgrade")
    clock.advance(60)
    await reconcile(rt)
    assert receiver.notices == ["start"]  # tried once, never again


async def test_an_impossible_schedule_stalls_with_a_reason(world):
    api, rt, _ = world
    body = window(Clock(), 0)
    body["spec"]["schedule"] = {"start": "2026-03-02T10:00:00Z", "cron": "0 22 * * SAT", "duration": "1h"}
    api.put(body)
    await reconcile(rt)
    mw = api.get("MaintenanceWindow", NS, "upgrade")
    assert condition(mw, "Stalled")["reason"] == "InvalidSchedule"
    assert "both start and cron" in condition(mw, "Stalled")["message"]
    assert api.get("Deployment", NS, "orders-v1-maintenance") is None


async def test_a_spec_the_model_refuses_stalls_naming_the_field_and_keeps_the_window_closed(world, clock):
    api, rt, receiver = world
    body = window(clock, start_in=-60)
    # stored around the schema (admitted before the enum existed, say): the model refuses it
    body["spec"]["notice"]["receivers"][0]["type"] = "carrier-pigeon"
    api.put(body)
    await reconcile(rt)
    mw = api.get("MaintenanceWindow", NS, "upgrade")
    stalled = condition(mw, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert stalled["message"].startswith("spec.notice.receivers[0].type: Input should be 'msteams'")
    assert condition(mw, "Active")["status"] == "False"
    assert api.get("Deployment", NS, "orders-v1-maintenance") is None and receiver.notices == []

    body["spec"]["notice"]["receivers"][0]["type"] = "webhook"  # fixed: the window opens
    api.put(body)
    await reconcile(rt)
    assert api.get("MaintenanceWindow", NS, "upgrade")["status"]["phase"] == "Active"
    assert receiver.notices == ["start"]


async def test_a_deleted_window_whose_spec_does_not_parse_still_goes(world, clock):
    api, rt, _ = world
    body = window(clock, start_in=-60)
    api.put(body)
    await reconcile(rt)
    await products.reconcile(rt, NS, "orders")
    assert role(api) == "maintenance-page"
    body = api.get("MaintenanceWindow", NS, "upgrade")
    body["spec"]["reason"] = ""  # stored around the schema's minLength
    api.put(body)
    await rt.kube.delete("MaintenanceWindow", NS, "upgrade")  # Pitwall's own finalizer holds it
    await maintenance.reconcile(rt, NS, "upgrade")
    assert api.get("MaintenanceWindow", NS, "upgrade")["status"]["phase"] == "Cancelled"
    await products.reconcile(rt, NS, "orders")
    assert role(api) == "api"  # switched back first ...
    await maintenance.reconcile(rt, NS, "upgrade")
    assert api.get("Deployment", NS, "orders-v1-maintenance") is None  # ... then the page goes
    assert api.get("MaintenanceWindow", NS, "upgrade") is None
