"""The Backend reconciler through the in-memory API: health from a referenced Probe, the impact
matrix, and what a product that depends on the backend shows."""

from __future__ import annotations

import httpx
import pytest
from tests.unit.kubeapi import KubeAPI, condition, runtime
from tests.unit.test_reconcile_products import product, rolled_out

from pitwall.backends import reconcile as backends
from pitwall.products import reconcile as products

NS = "shop"


def probe(state: str) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Probe",
        "metadata": {"name": "ledger-up", "namespace": NS},
        "spec": {"target": {"url": "http://ledger.example/health"}},
        "status": {"state": state, "consecutiveFailures": 3 if state == "Down" else 0},
    }


def backend() -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Backend",
        "metadata": {"name": "ledger", "namespace": NS},
        "spec": {"probeRef": {"name": "ledger-up"}},
    }


@pytest.fixture
async def world():
    api = KubeAPI()
    api.put(probe("Up"))
    api.put(backend())
    api.put(
        product(
            "registry.example.com/orders:1.0",
            backends=[{"name": "ledger", "criticality": "critical"}],
            consumers=[{"name": "acme", "versions": ["v1"], "contact": {"email": "ops@acme.example"}}],
        )
    )
    rt = runtime(api)
    await products.reconcile(rt, NS, "orders")
    rolled_out(api)
    await backends.reconcile(rt, NS, "ledger")
    await products.reconcile(rt, NS, "orders")
    return api, rt


async def test_a_critical_backend_down_makes_its_products_unavailable_and_clears(world):
    api, rt = world
    assert api.get("Backend", NS, "ledger")["status"]["state"] == "Available"
    assert api.get("ApiProduct", NS, "orders")["status"]["state"] == "Available"

    api.put(probe("Down"))
    await backends.reconcile(rt, NS, "ledger")
    ledger = api.get("Backend", NS, "ledger")
    assert ledger["status"]["state"] == "Unavailable"
    assert ledger["status"]["impact"] == {
        "apiProducts": [{"name": "orders", "criticality": "critical", "effect": "Unavailable"}],
        "consumers": [
            {
                "name": "acme",
                "apiProduct": "orders",
                "versions": ["v1"],
                "contact": {"email": "ops@acme.example"},
            }
        ],
    }
    assert condition(ledger, "Available")["status"] == "False"
    assert "affects: orders" in condition(ledger, "Available")["message"]
    event = [e for e in api.events("ledger") if e["reason"] == "BackendUnavailable"]
    assert event and event[0]["type"] == "Warning" and "Available -> Unavailable" in event[0]["message"]

    await products.reconcile(rt, NS, "orders")
    orders = api.get("ApiProduct", NS, "orders")
    assert orders["status"]["state"] == "Unavailable"
    assert condition(orders, "Ready")["reason"] == "BackendUnavailable"
    assert orders["status"]["backends"] == [
        {"name": "ledger", "criticality": "critical", "state": "Unavailable", "effect": "Unavailable"}
    ]

    api.put(probe("Up"))
    await backends.reconcile(rt, NS, "ledger")
    await products.reconcile(rt, NS, "orders")
    assert api.get("ApiProduct", NS, "orders")["status"]["state"] == "Available"
    assert api.reasons("ledger")[-1] == "BackendAvailable"


@pytest.mark.parametrize(
    ("criticality", "state", "effect"),
    [("degradable", "Degraded", "Degraded"), ("optional", "Available", "None")],
)
async def test_degradable_and_optional_backends_hurt_less(world, criticality, state, effect):
    api, rt = world
    api.put(
        product("registry.example.com/orders:1.0", backends=[{"name": "ledger", "criticality": criticality}])
    )
    api.put(probe("Down"))
    await backends.reconcile(rt, NS, "ledger")
    assert api.get("Backend", NS, "ledger")["status"]["impact"]["apiProducts"][0]["effect"] == effect
    await products.reconcile(rt, NS, "orders")
    assert api.get("ApiProduct", NS, "orders")["status"]["state"] == state


async def test_a_missing_probe_stalls_the_backend(world):
    api, rt = world
    await rt.kube.delete("Probe", NS, "ledger-up")
    assert await backends.reconcile(rt, NS, "ledger") == 60.0
    ledger = api.get("Backend", NS, "ledger")
    assert ledger["status"]["state"] == "Unknown"
    assert condition(ledger, "Stalled")["reason"] == "ProbeNotFound"


async def test_waiting_for_status_writes_leaves_the_probe_clients_open_until_stop(world):
    _, rt = world
    client = httpx.AsyncClient()
    rt.monitor._clients["key"] = client
    await rt.monitor.writes_done()
    assert not client.is_closed  # a write barrier, not a shutdown
    await rt.monitor.stop()
    assert client.is_closed
