"""The API models: what they generate is a Kubernetes structural schema, the examples parse
through them, and what their descriptions promise is what the code does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pitwall import api, durations
from pitwall.alerts import rules
from pitwall.alerts import state as alert_state
from pitwall.api import crdgen
from pitwall.api.alertrule import Alert, AlertRuleSpec
from pitwall.api.apiproduct import ApiProductStatus
from pitwall.api.check import Check
from pitwall.api.maintenancewindow import MaintenanceWindowStatus
from pitwall.api.probe import Latency
from pitwall.maintenance import notices
from pitwall.probes import spec as probe_spec
from pitwall.probes import stats
from pitwall.products import reconcile as product_reconcile

ROOT = Path(__file__).resolve().parents[2]
MODELS = {model.__name__: model for model in api.KINDS}


def nodes(node: dict, path: str = ""):
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from nodes(node[key], f"{path}.{key}")


@pytest.mark.parametrize("kind", MODELS)
def test_generated_schema_is_structural(kind):
    problems = []
    for path, node in nodes(crdgen.openapi_schema(MODELS[kind])):
        for key in ("$ref", "$defs", "allOf", "oneOf", "title", "const"):
            if key in node:
                problems.append(f"{path}: {key}")
        if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
            problems.append(f"{path}: anyOf outside int-or-string")
        if node.get("type") == "null" or node.get("default", 0) is None:
            problems.append(f"{path}: null")
        if node.get("additionalProperties") is True:
            problems.append(f"{path}: additionalProperties: true")
    assert not problems, "\n".join(problems)


def test_a_union_kubernetes_cannot_store_is_refused():
    class Bad(api.Resource):
        spec: int | bool

    with pytest.raises(crdgen.NotStructural):
        crdgen.openapi_schema(Bad)


def test_a_field_description_replaces_its_models_docstring_and_rules_add_up():
    schema = crdgen.openapi_schema(api.Probe)
    request = schema["properties"]["spec"]["properties"]["steps"]["items"]["properties"]["request"]
    assert request["description"].startswith("The HTTP request.")
    assert request["default"] == {}
    assert len(request["x-kubernetes-validations"]) == 2


def example_objects():
    return list(_example_objects())


def _example_objects():
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in MODELS:
                yield pytest.param(doc, id=f"{doc['kind']}/{doc['metadata']['name']}")


@pytest.mark.parametrize("doc", example_objects())
def test_examples_parse_through_the_models(doc):
    obj = MODELS[doc["kind"]].model_validate(doc)
    # camelCase on the wire, and a round trip keeps what was written
    dumped = obj.model_dump(by_alias=True, exclude_unset=True)
    assert dumped["spec"] == doc["spec"]


def test_model_defaults_are_the_crd_defaults():
    spec = api.Probe.model_validate({"spec": {"target": {"url": "http://x"}}}).spec
    assert (spec.interval, spec.timeout, spec.failure_threshold, spec.paused) == ("30s", "5s", 3, False)
    crd = crdgen.openapi_schema(api.Probe)["properties"]["spec"]["properties"]
    assert crd["interval"]["default"] == spec.interval and crd["timeout"]["default"] == spec.timeout


# ------------------------------------------------------------------ descriptions say what the code does


def description(model, field: str) -> str:
    return model.model_fields[field].description


def test_timeout_is_described_as_the_engine_applies_it():
    text = description(Check, "timeout")
    assert "each request" in text
    assert f"n x timeout + {probe_spec.RUN_SLACK:g}s" in text
    steps = (probe_spec.Step("a", probe_spec.Request(), probe_spec.Expect()),) * 3
    check = probe_spec.Check(target="http://x", steps=steps, timeout=2.0)
    assert check.run_timeout == 3 * 2.0 + probe_spec.RUN_SLACK


def test_kept_history_is_described_as_kept():
    assert f"most recent {alert_state.DELIVERIES_KEEP})" in description(Alert, "deliveries")
    assert Alert.model_fields["deliveries"].metadata[0].max_length >= alert_state.DELIVERIES_KEEP
    assert f"most recent {notices.KEEP})" in description(MaintenanceWindowStatus, "notices")
    assert f"last {product_reconcile.HISTORY_LIMIT} rollouts" in description(ApiProductStatus, "history")
    assert f"last {stats.LATENCY_WINDOW} successful runs" in Latency.__doc__


def test_severity_description_states_the_ack_windows_the_code_uses():
    text = description(AlertRuleSpec, "severity")
    stated = dict(re.findall(r"(\w+) \((?:answer within )?(\d+[mh])\)", text))
    assert set(stated) == {s for s, window in rules.SEVERITIES.items() if window is not None}
    for severity, window in stated.items():
        assert durations.parse(window) == rules.SEVERITIES[severity], severity
    assert "blocked (recorded, never paged)" in text and rules.SEVERITIES["blocked"] is None


# ------------------------------------------------------------------ one source for enums and defaults


def test_parsers_apply_the_models_defaults():
    check = probe_spec.parse_check({"url": "http://x"})
    model = Check()
    assert (check.interval, check.timeout) == (durations.parse(model.interval), durations.parse(model.timeout))
    assert (check.failure_threshold, check.success_threshold) == (model.failure_threshold, model.success_threshold)
    assert check.steps[0].request.method == "GET" and check.steps[0].expect.status == (200,)
    rule = rules.parse_rule("ns", "r", {"severity": "low", "selector": {}})
    assert rule.selector.kinds == ("ApiProduct", "Probe", "Backend")
    assert (rule.when.condition, rule.when.status, rule.when.for_) == ("Ready", "False", 0.0)
    assert (rule.repeat_interval, rule.send_resolved, rule.group_wait) == (4 * 3600, True, 0.0)
