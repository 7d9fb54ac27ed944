"""The CRDs generated from the models, as a real API server takes them: established, structural,
stored as generated, defaults applied, and a spec the models refuse refused here too."""

from __future__ import annotations

import json

import pytest

from pitwall import GROUP, api
from pitwall.api import crdgen


@pytest.mark.parametrize("model", api.KINDS, ids=lambda m: m.__name__)
def test_the_api_server_serves_each_generated_crd_as_generated(cluster, model):
    name = f"{model.names.plural}.{GROUP}"
    crd = json.loads(cluster.kubectl("get", "crd", name, "-o", "json").stdout)
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conditions["Established"]["status"] == "True"
    assert conditions["NamesAccepted"]["status"] == "True"
    # NonStructuralSchema and friends would be listed here, with the offending paths
    problems = {
        t: c["message"]
        for t, c in conditions.items()
        if c["status"] == "True" and t not in ("Established", "NamesAccepted")
    }
    assert not problems
    served = crd["spec"]["versions"][0]
    assert served["schema"]["openAPIV3Schema"] == crdgen.openapi_schema(model)
    assert served["additionalPrinterColumns"] == [c.render() for c in model.names.columns]


def test_the_api_server_applies_the_models_defaults(cluster):
    probe = {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Probe",
        "metadata": {"name": "defaults", "namespace": "default"},
        "spec": {"target": {"url": "http://example.test/"}, "steps": [{"name": "a"}]},
    }
    proc = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(probe)
    )
    served = json.loads(proc.stdout)["spec"]
    model = api.Probe.model_validate(probe).spec
    assert served["interval"] == model.interval
    # timeout has no default on purpose (unset: 5s or the interval, whichever is shorter): the
    # server must not store one either, or every interval under 5s would be refused.
    assert model.timeout is None and "timeout" not in served
    assert served["failureThreshold"] == model.failure_threshold
    assert served["steps"][0]["request"]["method"] == model.steps[0].request.method
    assert served["steps"][0]["expect"]["status"] == model.steps[0].expect.status


def test_a_bound_the_model_declares_is_enforced_by_the_api_server(cluster):
    backend = {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Backend",
        "metadata": {"name": "bounds", "namespace": "default"},
        "spec": {"health": {"url": "http://example.test/", "failureThreshold": 0}},
    }
    proc = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=json.dumps(backend), check=False
    )
    assert proc.returncode != 0
    assert (
        "spec.health.failureThreshold" in proc.stderr
        and "should be greater than or equal to 1" in proc.stderr
    )
