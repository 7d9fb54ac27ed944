"""The Probe reconciler through the in-memory API: what it needs before it can run (product,
version, Secrets opted in), and where a version answers (its EndpointSlice's ``http`` port)."""

from __future__ import annotations

import socket

import pytest
from tests.unit.kubeapi import KubeAPI, condition, runtime
from tests.unit.test_api_models import undeclared
from tests.unit.test_reconcile_products import product

from pitwall.api import Probe, crdgen
from pitwall.probes import reconcile as probes

NS = "shop"


def probe(**spec) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Probe",
        "metadata": {"name": "orders-up", "namespace": NS},
        "spec": {
            "target": {"apiProduct": {"name": "orders", "version": "v1"}},
            "interval": "30s",
            "steps": [{"name": "isUp", "request": {"path": "/isUp"}}],
            **spec,
        },
    }


def endpoint_slice() -> dict:
    # A Service with two ports: the API's is not the first one listed.
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "orders-v1-x7k2p",
            "namespace": NS,
            "labels": {"kubernetes.io/service-name": "orders-v1", "pitwall.dev/product": "orders"},
        },
        "ports": [{"name": "metrics", "port": 9090}, {"name": "http", "port": 8080}],
        "endpoints": [
            {"addresses": ["10.244.0.7"], "conditions": {"ready": False}},
            {"addresses": ["10.244.0.8"], "conditions": {"ready": True}},
        ],
    }


@pytest.fixture
def api() -> KubeAPI:
    return KubeAPI()


async def test_a_probe_waits_for_its_product_then_targets_the_versions_http_port(api):
    api.put(probe())
    rt = runtime(api, endpoint_rewrite="10.244.0.0/16=127.244.0.0/16")
    assert await probes.reconcile(rt, NS, "orders-up") == 60.0
    obj = api.get("Probe", NS, "orders-up")
    assert condition(obj, "Stalled")["reason"] == "ProductNotFound"
    assert api.reasons("orders-up") == ["ProductNotFound"]
    assert await probes.reconcile(rt, NS, "orders-up") == 60.0
    assert api.reasons("orders-up") == ["ProductNotFound"]  # said once, not on every retry

    api.put(product("registry.example.com/orders:1.0", versions=[{"name": "v2", "image": "o:2"}]))
    await probes.reconcile(rt, NS, "orders-up")
    assert condition(api.get("Probe", NS, "orders-up"), "Stalled")["reason"] == "VersionNotFound"

    api.put(product("registry.example.com/orders:1.0"))
    api.put(endpoint_slice())
    assert await probes.reconcile(rt, NS, "orders-up") is None
    job = rt.monitor.jobs[("Probe", NS, "orders-up")]
    assert job.resolve() == "http://127.244.0.8:8080"
    await rt.monitor.writes_done()
    obj = api.get("Probe", NS, "orders-up")
    assert condition(obj, "Stalled")["status"] == "False"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]


async def test_a_secret_the_probe_uses_must_exist_and_be_opted_in(api):
    api.put(product("registry.example.com/orders:1.0"))
    api.put(
        probe(
            steps=[
                {
                    "name": "isUp",
                    "request": {
                        "path": "/isUp",
                        "headers": {"Authorization": "Bearer ${secret:api-token/token}"},
                    },
                }
            ]
        )
    )
    rt = runtime(api)
    await probes.reconcile(rt, NS, "orders-up")
    assert condition(api.get("Probe", NS, "orders-up"), "Stalled")["reason"] == "SecretNotFound"

    api.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "api-token", "namespace": NS},
            "data": {"token": "czNjcjN0"},
        }
    )
    await probes.reconcile(rt, NS, "orders-up")
    stalled = condition(api.get("Probe", NS, "orders-up"), "Stalled")
    assert stalled["reason"] == "SecretNotOptedIn"
    assert "kubectl -n shop label secret api-token pitwall.dev/use=probes" in stalled["message"]
    assert "czNjcjN0" not in str(api.get("Probe", NS, "orders-up")) and "s3cr3t" not in str(api.events())

    api.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "api-token", "namespace": NS, "labels": {"pitwall.dev/use": "probes"}},
            "data": {"token": "czNjcjN0"},
        }
    )
    assert await probes.reconcile(rt, NS, "orders-up") is None
    await rt.monitor.writes_done()
    assert condition(api.get("Probe", NS, "orders-up"), "Stalled")["status"] == "False"


async def test_a_denied_target_stays_stalled_through_a_resync(api):
    # The run finds the target is the operator's own metrics port: Stalled TargetDenied. A
    # resync's reconcile (same generation) must not write Stalled=False over it until a run says so.
    api.put(probe(target={"url": "http://[::ffff:127.0.0.1]:18999/"}))
    rt = runtime(api, metrics_port=18999)
    key = ("Probe", NS, "orders-up")
    assert await probes.reconcile(rt, NS, "orders-up") is None
    assert await rt.monitor.run(key) is None
    await rt.monitor.writes_done()
    stalled = condition(api.get("Probe", NS, "orders-up"), "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "TargetDenied")
    assert "operator's own ports" in stalled["message"]

    assert await probes.reconcile(rt, NS, "orders-up") is None  # the resync
    await rt.monitor.writes_done()
    stalled = condition(api.get("Probe", NS, "orders-up"), "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "TargetDenied")
    assert api.reasons("orders-up") == ["TargetDenied"]  # said once


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_status_goes_through_the_model_and_a_refused_spec_keeps_the_numbers(api):
    url = f"http://127.0.0.1:{closed_port()}/"
    api.put(probe(target={"url": url}))
    rt = runtime(api)
    key = ("Probe", NS, "orders-up")
    assert await probes.reconcile(rt, NS, "orders-up") is None
    await rt.monitor.run(key)
    await rt.monitor.writes_done()
    obj = api.get("Probe", NS, "orders-up")
    status = obj["status"]
    assert (status["state"], status["consecutiveFailures"], status["target"]) == ("Unknown", 1, url)
    assert status["lastRun"]["result"] == "Failure" and status["lastFailure"]["step"] == "isUp"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert undeclared(crdgen.openapi_schema(Probe), obj) == []

    # Stored before a bound existed, say: the model refuses it, naming the field. The merge
    # patch sets the state and conditions only; the counts and the last run stay.
    api.put(probe(target={"url": url}, steps=[{"name": "isUp", "request": {"method": "FETCH"}}]))
    assert await probes.reconcile(rt, NS, "orders-up") == 60.0
    obj = api.get("Probe", NS, "orders-up")
    stalled = condition(obj, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    assert stalled["message"].startswith("spec.steps[0].request.method: Input should be 'GET', 'POST'")
    assert condition(obj, "Healthy")["reason"] == "InvalidSpec"
    assert obj["status"]["state"] == "Unknown"
    assert obj["status"]["lastRun"] == status["lastRun"] and obj["status"]["consecutiveFailures"] == 1
    assert api.reasons("orders-up") == ["InvalidSpec"]


async def test_a_paused_probe_says_so_and_resumes_when_unpaused(api):
    url = f"http://127.0.0.1:{closed_port()}/"
    api.put(probe(target={"url": url}, paused=True))
    rt = runtime(api)
    assert await probes.reconcile(rt, NS, "orders-up") is None
    await rt.monitor.writes_done()
    obj = api.get("Probe", NS, "orders-up")
    assert obj["status"]["state"] == "Paused"
    assert (condition(obj, "Healthy")["reason"], condition(obj, "Ready")["status"]) == ("Paused", "Unknown")

    api.put(probe(target={"url": url}))  # paused removed: the model's default, false
    assert await probes.reconcile(rt, NS, "orders-up") is None
    await rt.monitor.writes_done()
    assert api.get("Probe", NS, "orders-up")["status"]["state"] == "Unknown"
