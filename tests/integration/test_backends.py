"""Backend health and the impact matrix, against the real control plane and real local servers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import condition, eventually
from tests.helpers.demo import DemoAPI
from tests.integration.test_products import product, ready


@pytest.fixture
def demo():
    with DemoAPI() as api:
        yield api


def backend(name: str, url: str) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Backend",
        "metadata": {"name": name},
        "spec": {
            "displayName": name,
            "owner": {"team": "providers", "contact": f"{name}@example.com"},
            "health": {"url": url, "interval": "1s", "timeout": "1s", "failureThreshold": 2},
        },
    }


def consumer(name: str, versions: list[str]) -> dict:
    return {"name": name, "versions": versions, "contact": {"email": f"ops@{name}.example"}}


def pitwall(cluster, namespace, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pitwall", *args, "-n", namespace],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def backend_state(kubectl, name):
    return ((kubectl.get("backend", name) or {}).get("status") or {}).get("state")


@pytest.fixture
def marketplace(operator, kubectl, demo):
    for name in ("core-banking", "fx-rates", "geo"):
        kubectl.apply(backend(name, f"{demo.url}/backends/{name}/health"))
    kubectl.apply(
        product(
            "payments",
            [
                {"name": "v1", "image": "registry.example.com/payments:1"},
                {"name": "v2", "image": "registry.example.com/payments:2"},
            ],
            backends=[
                {"name": "core-banking", "criticality": "critical"},
                {"name": "fx-rates", "criticality": "degradable"},
            ],
            consumers=[consumer("acme", ["v2"]), consumer("globex", ["v1", "v2"])],
        )
    )
    kubectl.apply(
        product(
            "accounts",
            [{"name": "v1", "image": "registry.example.com/accounts:1"}],
            backends=[
                {"name": "core-banking", "criticality": "critical"},
                {"name": "geo", "criticality": "optional"},
            ],
            consumers=[consumer("initech", ["v1"]), consumer("umbrella", ["v1"])],
        )
    )
    for name in ("core-banking", "fx-rates", "geo"):
        eventually(lambda n=name: backend_state(kubectl, n) == "Available", message=f"{name} Available")
    eventually(lambda: ready(kubectl, "payments") and ready(kubectl, "accounts"))
    return demo


def test_critical_backend_down_propagates_and_clears(marketplace, kubectl, cluster):
    demo = marketplace
    demo.admin("down", what="backend:core-banking")
    eventually(lambda: backend_state(kubectl, "core-banking") == "Unavailable", message="core-banking down")
    for name in ("payments", "accounts"):
        obj = eventually(
            lambda n=name: (lambda o: o if condition(o, "Available").get("status") == "False" else None)(
                kubectl.get("apiproduct", n)
            ),
            message=f"{name} unavailable",
        )
        assert condition(obj, "Available")["reason"] == "BackendUnavailable"
        assert "core-banking" in condition(obj, "Available")["message"]
        assert condition(obj, "Ready")["status"] == "False"
        assert {b["name"]: b["state"] for b in obj["status"]["backends"]}["core-banking"] == "Unavailable"
    assert any(e["reason"] == "BackendUnavailable" for e in kubectl.events("core-banking"))

    out = pitwall(cluster, kubectl.namespace, "impact", "core-banking", "-o", "json")
    report = json.loads(out.stdout)
    assert report["state"] == "Unavailable"
    assert sorted(p["name"] for p in report["apiProducts"]) == ["accounts", "payments"]
    assert sorted(c["name"] for c in report["consumers"]) == ["acme", "globex", "initech", "umbrella"]
    table = pitwall(cluster, kubectl.namespace, "impact", "core-banking").stdout
    assert "ops@acme.example" in table and "EFFECT IF DOWN" in table

    demo.admin("up")
    eventually(lambda: ready(kubectl, "payments") and ready(kubectl, "accounts"), message="cleared")


def test_degradable_and_optional(marketplace, kubectl):
    demo = marketplace
    demo.admin("down", what="backend:fx-rates")
    demo.admin("down", what="backend:geo")
    obj = eventually(
        lambda: (lambda o: o if condition(o, "Degraded").get("status") == "True" else None)(
            kubectl.get("apiproduct", "payments")
        )
    )
    assert condition(obj, "Degraded")["reason"] == "BackendDegraded"
    assert "fx-rates" in condition(obj, "Degraded")["message"]
    assert condition(obj, "Available")["status"] == "True"  # degradable: still available
    eventually(lambda: backend_state(kubectl, "geo") == "Unavailable")
    accounts = kubectl.get("apiproduct", "accounts")
    assert condition(accounts, "Ready")["status"] == "True"  # optional: shown, changes nothing
    assert condition(accounts, "Degraded")["status"] == "False"
    eventually(
        lambda: (
            {b["name"]: b["state"] for b in kubectl.get("apiproduct", "accounts")["status"]["backends"]}[
                "geo"
            ]
            == "Unavailable"
        )
    )


def test_impact_follows_edits_deletes_and_restarts(marketplace, kubectl, cluster, operator):
    impact = lambda: kubectl.get("backend", "core-banking")["status"]["impact"]  # noqa: E731
    assert sorted(p["name"] for p in impact()["apiProducts"]) == ["accounts", "payments"]
    kubectl.patch(
        "apiproduct", "accounts", {"spec": {"backends": [{"name": "geo", "criticality": "optional"}]}}
    )
    eventually(
        lambda: [p["name"] for p in impact()["apiProducts"]] == ["payments"],
        timeout=5,
        message="impact updated after the edit",
    )
    assert sorted(c["name"] for c in impact()["consumers"]) == ["acme", "globex"]

    before = kubectl.get("backend", "core-banking")["status"]["impact"]
    operator.stop()
    operator.start()
    eventually(lambda: kubectl.get("backend", "core-banking")["status"]["impact"] == before)
    out = json.loads(pitwall(cluster, kubectl.namespace, "impact", "core-banking", "-o", "json").stdout)
    assert {k: out[k] for k in ("apiProducts", "consumers")} == before

    kubectl("delete", "backend", "core-banking")
    obj = eventually(
        lambda: (lambda o: o if condition(o, "ResolvedRefs").get("status") == "False" else None)(
            kubectl.get("apiproduct", "payments")
        )
    )
    assert "core-banking" in condition(obj, "ResolvedRefs")["message"]
    assert condition(obj, "Ready")["status"] == "False"
    assert operator.proc.poll() is None  # nothing crashed

    graph = pitwall(cluster, kubectl.namespace, "graph").stdout
    assert graph.startswith("flowchart LR") and "product_payments" in graph and "backend_fx_rates" in graph
    assert "digraph" in pitwall(cluster, kubectl.namespace, "graph", "--format", "dot").stdout
