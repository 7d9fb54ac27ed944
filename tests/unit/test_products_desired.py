"""The Deployment a version gets, built from the spec as the ApiProduct model parses it."""

from __future__ import annotations

from pitwall.api.apiproduct import ApiProductSpec
from pitwall.api.base import parse
from pitwall.products import desired

RAW = {
    "versions": [
        {
            "name": "v2",
            "image": "registry.example.com/shop:2",
            "lifecycle": "deprecated",
            "sunsetAt": "2027-01-01T00:00:00Z",
            "replicas": 3,
            "port": 9090,
            "healthPath": "/h",
            "env": [
                {"name": "A", "value": "1"},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                {"name": "API_PRODUCT", "value": "spoofed"},
                {"name": "C"},
            ],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1}},
            "podAnnotations": {"x": "y"},
        }
    ],
    "imagePullSecrets": [{"name": "reg"}],
    "rollout": {"progressDeadline": "90s"},
}
PRODUCT = {"metadata": {"name": "shop", "namespace": "ns", "uid": "u"}, "spec": RAW}


def test_the_deployment_is_what_the_spec_says_and_its_hash_is_stable():
    spec = parse(ApiProductSpec, RAW)
    body = desired.deployment(PRODUCT, spec, spec.versions[0])
    container = body["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [
        {"name": "API_PRODUCT", "value": "shop"},
        {"name": "API_VERSION", "value": "v2"},
        {"name": "API_LIFECYCLE", "value": "deprecated"},
        {"name": "API_SUNSET", "value": "2027-01-01T00:00:00Z"},
        {"name": "A", "value": "1"},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "C", "value": ""},
    ]
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/h", "port": 9090}
    assert body["spec"]["replicas"] == 3 and body["spec"]["progressDeadlineSeconds"] == 90
    assert body["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "reg"}]
    assert body["spec"]["template"]["metadata"]["annotations"] == {"x": "y"}
    # The hash the raw-dict builder gave for the same spec: running Deployments are not
    # re-applied (nor reported as drift) after an upgrade to the model-built one.
    assert body["metadata"]["annotations"] == {"pitwall.dev/spec-hash": "d463c2a1f494db89"}


def test_defaults_come_from_the_model():
    spec = parse(ApiProductSpec, {"versions": [{"name": "v1", "image": "a:1", "resources": {}}]})
    body = desired.deployment(PRODUCT, spec, spec.versions[0])
    container = body["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 8080 and "resources" not in container
    assert container["readinessProbe"]["httpGet"]["path"] == "/isUp"
    assert body["spec"]["replicas"] == 1 and body["spec"]["progressDeadlineSeconds"] == 120
    assert "imagePullSecrets" not in body["spec"]["template"]["spec"]
