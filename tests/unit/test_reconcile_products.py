"""The ApiProduct reconciler through the in-memory API: workloads, a failed rollout rolled back once."""

from __future__ import annotations

import pytest
from tests.unit.kubeapi import KubeAPI, condition, runtime

from pitwall.products import reconcile as products

NS = "shop"


def product(image: str, **spec) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "ApiProduct",
        "metadata": {"name": "orders", "namespace": NS},
        "spec": {
            "versions": [{"name": "v1", "image": image, "replicas": 2}],
            "rollout": {"progressDeadline": "60s"},
            **spec,
        },
    }


def rolled_out(api: KubeAPI, name: str = "orders-v1") -> None:
    """What kube-controller-manager reports once every replica of the current spec is available."""
    deployment = api.get("Deployment", NS, name)
    replicas = deployment["spec"]["replicas"]
    api.set_status(
        "Deployment",
        NS,
        name,
        {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}],
        },
    )


def deadline_exceeded(api: KubeAPI, name: str = "orders-v1") -> None:
    deployment = api.get("Deployment", NS, name)
    api.set_status(
        "Deployment",
        NS,
        name,
        {
            "observedGeneration": deployment["metadata"]["generation"],
            "updatedReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
        },
    )


def image_of(api: KubeAPI, name: str = "orders-v1") -> str:
    return api.get("Deployment", NS, name)["spec"]["template"]["spec"]["containers"][0]["image"]


@pytest.fixture
def api() -> KubeAPI:
    return KubeAPI()


async def test_a_version_gets_its_deployment_and_service_and_becomes_available(api):
    api.put(product("registry.example.com/orders:1.0"))
    rt = runtime(api)

    await products.reconcile(rt, NS, "orders")
    deployment = api.get("Deployment", NS, "orders-v1")
    assert deployment["spec"]["replicas"] == 2
    assert image_of(api) == "registry.example.com/orders:1.0"
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("ApiProduct", "orders", True)
    service = api.get("Service", NS, "orders-v1")
    assert service["spec"]["selector"]["pitwall.dev/role"] == "api"
    assert api.get("ApiProduct", NS, "orders")["status"]["state"] == "Progressing"

    rolled_out(api)
    await products.reconcile(rt, NS, "orders")
    obj = api.get("ApiProduct", NS, "orders")
    assert obj["status"]["state"] == "Available"
    assert obj["status"]["versions"][0]["lastGoodImage"] == "registry.example.com/orders:1.0"
    assert condition(obj, "Ready")["status"] == "True"
    # nothing changed: a second reconcile writes nothing
    writes = len(api.writes())
    await products.reconcile(rt, NS, "orders")
    assert len(api.writes()) == writes


async def test_a_failed_rollout_is_rolled_back_once_to_the_last_good_image(api):
    api.put(product("registry.example.com/orders:1.0"))
    rt = runtime(api)
    await products.reconcile(rt, NS, "orders")
    rolled_out(api)
    await products.reconcile(rt, NS, "orders")

    api.put(product("registry.example.com/orders:1.1-broken"))
    await products.reconcile(rt, NS, "orders")
    assert image_of(api) == "registry.example.com/orders:1.1-broken"
    deadline_exceeded(api)

    requeue = await products.reconcile(rt, NS, "orders")
    assert requeue is not None and requeue < 1  # apply the restored image at once
    await products.reconcile(rt, NS, "orders")
    assert image_of(api) == "registry.example.com/orders:1.0"
    obj = api.get("ApiProduct", NS, "orders")
    assert obj["status"]["rolledBack"] == [
        {
            "version": "v1",
            "failedImage": "registry.example.com/orders:1.1-broken",
            "restoredImage": "registry.example.com/orders:1.0",
            "at": obj["status"]["rolledBack"][0]["at"],
        }
    ]
    assert condition(obj, "RolledBack")["status"] == "True"
    assert [h["result"] for h in obj["status"]["history"] if h["image"].endswith("1.1-broken")] == ["failed"]
    rolled_back = [e for e in api.events("orders") if e["reason"] == "RolledBack"]
    assert len(rolled_back) == 1 and rolled_back[0]["type"] == "Warning"
    assert "1.1-broken did not become available" in rolled_back[0]["message"]

    # the restored image running and failing again is reported, never rolled back in a loop
    deadline_exceeded(api)
    for _ in range(3):
        await products.reconcile(rt, NS, "orders")
    assert image_of(api) == "registry.example.com/orders:1.0"
    assert api.reasons("orders").count("RolledBack") == 1

    # a new image in the spec clears the pin and rolls out
    api.put(product("registry.example.com/orders:1.2"))
    await products.reconcile(rt, NS, "orders")
    assert image_of(api) == "registry.example.com/orders:1.2"
    assert api.get("ApiProduct", NS, "orders")["status"]["rolledBack"] == []


async def test_hand_edits_are_reverted_and_a_refused_deployment_stalls(api):
    api.put(product("registry.example.com/orders:1.0"))
    rt = runtime(api)
    await products.reconcile(rt, NS, "orders")
    deployment = api.get("Deployment", NS, "orders-v1")
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "evil/miner:latest"
    api.put(deployment)

    await products.reconcile(rt, NS, "orders")
    assert image_of(api) == "registry.example.com/orders:1.0"
    assert "DriftReverted" in api.reasons("orders")

    api.refuse[("PATCH", "Deployment")] = (
        422,
        "Invalid",
        'spec.template.spec.containers[0].resources.requests: Invalid value: "2": must be less than or '
        "equal to cpu limit of 1",
    )
    api.put(product("registry.example.com/orders:2.0"))
    await products.reconcile(rt, NS, "orders")
    obj = api.get("ApiProduct", NS, "orders")
    assert condition(obj, "Stalled")["status"] == "True"
    assert condition(obj, "Stalled")["reason"] == "InvalidSpec"
    assert "cpu limit" in condition(obj, "Stalled")["message"]
    assert "left untouched" in condition(obj, "Stalled")["message"]
    assert image_of(api) == "registry.example.com/orders:1.0"


async def test_a_spec_the_model_refuses_stalls_naming_the_field_and_touches_nothing(api):
    api.put(product("registry.example.com/orders:1.0"))
    rt = runtime(api)
    await products.reconcile(rt, NS, "orders")
    rolled_out(api)
    await products.reconcile(rt, NS, "orders")
    before = api.get("ApiProduct", NS, "orders")
    assert condition(before, "Ready")["status"] == "True"
    # stored around the schema (admitted before the bound existed, say): the model refuses it
    api.put(product("", versions=[{"name": "v1", "image": "", "replicas": 5}]))
    await products.reconcile(rt, NS, "orders")
    obj = api.get("ApiProduct", NS, "orders")
    stalled = condition(obj, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert stalled["message"] == (
        "spec.versions[0].image: String should have at least 1 character; the running versions are left "
        "untouched"
    )
    assert obj["status"]["state"] == "Stalled" and condition(obj, "Ready")["status"] == "False"
    assert obj["status"]["versions"] == before["status"]["versions"]  # what runs is still described
    assert condition(obj, "Available")["status"] == "True"
    assert image_of(api) == "registry.example.com/orders:1.0"
    assert api.get("Deployment", NS, "orders-v1")["spec"]["replicas"] == 2  # not scaled to 5


async def test_removed_and_retired_versions_lose_their_workloads(api):
    api.put(
        product(
            "registry.example.com/orders:1.0",
            versions=[{"name": "v1", "image": "o:1"}, {"name": "v2", "image": "o:2"}],
        )
    )
    rt = runtime(api)
    await products.reconcile(rt, NS, "orders")
    assert {d["metadata"]["name"] for d in api.list("Deployment", NS)} == {"orders-v1", "orders-v2"}

    api.put(
        product(
            "x",
            versions=[{"name": "v1", "image": "o:1", "lifecycle": "retired"}, {"name": "v2", "image": "o:2"}],
        )
    )
    await products.reconcile(rt, NS, "orders")
    assert {d["metadata"]["name"] for d in api.list("Deployment", NS)} == {"orders-v2"}
    assert api.get("Service", NS, "orders-v1") is None
    assert "VersionRetired" in api.reasons("orders")

    api.put(product("x", versions=[{"name": "v1", "image": "o:1", "lifecycle": "retired"}]))
    await products.reconcile(rt, NS, "orders")
    assert api.list("Deployment", NS) == []
    assert "VersionRemoved" in api.reasons("orders")


@pytest.mark.parametrize(
    "source",
    [
        {"bogus": {"name": "x"}},
        {},
        {"secretKeyRef": "x"},
        {"secretKeyRef": {"name": "a", "key": "b"}, "fieldRef": {"fieldPath": "x"}},
    ],
)
async def test_an_env_source_the_api_server_cannot_take_stalls_the_product_once(api, source):
    """Issue 14: ``env.valueFrom: {bogus: ...}`` was refused on every apply and retried forever."""
    spec = product("registry.example.com/orders:1.0")
    spec["spec"]["versions"][0]["env"] = [{"name": "TOKEN", "valueFrom": source}]
    api.put(spec)
    rt = runtime(api)

    await products.reconcile(rt, NS, "orders")

    stalled = condition(api.get("ApiProduct", NS, "orders"), "Stalled")
    assert stalled["status"] == "True"
    assert stalled["reason"] == "InvalidSpec"
    assert (
        "env TOKEN: valueFrom must hold exactly one of configMapKeyRef, fieldRef, resourceFieldRef, "
        "secretKeyRef" in stalled["message"]
    )
    assert api.get("Deployment", NS, "orders-v1") is None


async def test_a_quota_refusal_stalls_and_leaves_the_running_version_alone(api):
    api.put(product("registry.example.com/orders:1.0"))
    rt = runtime(api)
    await products.reconcile(rt, NS, "orders")
    api.refuse[("PATCH", "Deployment")] = (
        403,
        "Forbidden",
        'deployments.apps "orders-v2" is forbidden: '
        "exceeded quota: deployments, requested: count/deployments.apps=1",
    )
    api.put(
        product(
            "x",
            versions=[
                {"name": "v1", "image": "registry.example.com/orders:1.0"},
                {"name": "v2", "image": "registry.example.com/orders:2.0"},
            ],
        )
    )
    await products.reconcile(rt, NS, "orders")
    obj = api.get("ApiProduct", NS, "orders")
    assert condition(obj, "Stalled")["reason"] == "QuotaExceeded"
    assert "exceeded quota" in condition(obj, "Stalled")["message"]
    assert image_of(api) == "registry.example.com/orders:1.0"
