"""The API client's request metric keeps its labels bounded: a resource, never a name."""

from __future__ import annotations

import pytest

from pitwall.kube import resource_of


@pytest.mark.parametrize(("path", "resource"), [
    ("/apis/pitwall.dev/v1alpha1/namespaces/shop/probes/orders-isup/status", "probes/status"),
    ("/apis/pitwall.dev/v1alpha1/probes", "probes"),
    ("/apis/apps/v1/namespaces/shop/deployments/orders-v1?fieldManager=pitwall", "deployments"),
    ("/api/v1/namespaces/shop/secrets/oauth-client", "secrets"),
    ("/api/v1/namespaces/shop", "namespaces"),
    ("/api/v1/nodes", "nodes"),
])
def test_resource_label_names_the_resource_not_the_object(path, resource):
    assert resource_of(path) == resource
