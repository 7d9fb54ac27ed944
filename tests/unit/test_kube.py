"""The API client's request metric keeps its labels bounded: a resource, never a name."""

from __future__ import annotations

import pytest

from pitwall.kube import resource_of


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/apis/pitwall.dev/v1alpha1/namespaces/shop/probes/orders-isup/status", "probes/status"),
        ("/apis/pitwall.dev/v1alpha1/probes", "probes"),
        ("/apis/apps/v1/namespaces/shop/deployments/orders-v1?fieldManager=pitwall", "deployments"),
        ("/api/v1/namespaces/shop/secrets/oauth-client", "secrets"),
        ("/api/v1/namespaces/shop", "namespaces"),
        ("/api/v1/nodes", "nodes"),
    ],
)
def test_resource_label_names_the_resource_not_the_object(path, resource):
    assert resource_of(path) == resource


async def test_the_client_maps_api_answers_to_pitwalls_errors_through_a_transport():
    """Kube through ``httpx.MockTransport`` (the seam every reconciler test uses)."""
    from tests.unit.kubeapi import KubeAPI

    from pitwall.errors import Conflict, Invalid

    api = KubeAPI()
    async with api.kube() as kube:
        assert await kube.get("Probe", "shop", "nope") is None
        assert await kube.patch_status("Probe", "shop", "nope", {"state": "Up"}) is None
        created = await kube.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "shop"},
                "data": {"a": "1"},
            }
        )
        with pytest.raises(Conflict):
            await kube.create(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}}
            )
        patched = await kube.patch(
            "ConfigMap", "shop", "c", [{"op": "replace", "path": "/data/a", "value": "2"}], patch_type="json"
        )
        assert patched["data"] == {"a": "2"}
        assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
        with pytest.raises(Invalid):
            await kube.patch(
                "ConfigMap", "shop", "c", [{"op": "test", "path": "/data/a", "value": "1"}], patch_type="json"
            )
        assert [c["metadata"]["name"] for c in await kube.list("ConfigMap", "shop")] == ["c"]
        assert await kube.delete("ConfigMap", "shop", "c") is True
        assert await kube.delete("ConfigMap", "shop", "c") is False
