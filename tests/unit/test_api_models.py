"""The API models: what they generate is a Kubernetes structural schema, the examples parse
through them, and what their descriptions promise is what the code does."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from tests.helpers.windows import window_spec
from tests.unit.kubeapi import KubeAPI, condition, runtime
from tests.unit.test_reconcile_backends import NS, backend, probe
from tests.unit.test_reconcile_products import product, rolled_out

from pitwall import API_VERSION, api, durations, kube, vocabulary
from pitwall.alerts import rules
from pitwall.alerts import state as alert_state
from pitwall.api import crdgen
from pitwall.api.alertrule import Alert, AlertRuleSpec
from pitwall.api.apiproduct import ApiProductStatus, MaintenancePage
from pitwall.api.backend import Health
from pitwall.api.base import parse, status_patch
from pitwall.api.check import DEFAULT_TIMEOUT, Check
from pitwall.api.maintenancewindow import MaintenanceWindowStatus
from pitwall.api.probe import Latency
from pitwall.backends import reconcile as backends
from pitwall.errors import InvalidSpec
from pitwall.maintenance import notices, targets
from pitwall.maintenance import page as maintenance_page
from pitwall.maintenance import window as maintenance_window
from pitwall.probes import reconcile as probe_reconcile
from pitwall.probes import spec as probe_spec
from pitwall.probes import state as probe_state
from pitwall.probes import stats
from pitwall.probes.engine import failed_result
from pitwall.probes.monitor import Job
from pitwall.products import reconcile as products

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
    assert (spec.interval, spec.timeout, spec.failure_threshold, spec.paused) == ("30s", None, 3, False)
    crd = crdgen.openapi_schema(api.Probe)["properties"]["spec"]["properties"]
    assert crd["interval"]["default"] == spec.interval and "default" not in crd["timeout"]


# ------------------------------------------------------------------ descriptions say what the code does


def description(model, field: str) -> str:
    return model.model_fields[field].description


def test_timeout_is_described_as_the_engine_applies_it():
    text = description(Check, "timeout")
    assert "each request" in text
    assert f"n x timeout + {probe_spec.RUN_SLACK:g}s" in text
    steps = [{"name": name} for name in "abc"]
    check = probe_spec.parse_check({"target": {"url": "http://x"}, "steps": steps, "timeout": "2s"})
    assert check.run_timeout == 3 * 2.0 + probe_spec.RUN_SLACK


def test_kept_history_is_described_as_kept():
    assert f"most recent {alert_state.DELIVERIES_KEEP})" in description(Alert, "deliveries")
    assert Alert.model_fields["deliveries"].metadata[0].max_length >= alert_state.DELIVERIES_KEEP
    assert f"most recent {notices.KEEP})" in description(MaintenanceWindowStatus, "notices")
    assert f"last {products.HISTORY_LIMIT} rollouts" in description(ApiProductStatus, "history")
    assert f"last {stats.LATENCY_WINDOW} successful runs" in Latency.__doc__


def test_maintenance_page_defaults_are_described_as_served():
    assert f'"{maintenance_page.DEFAULT_MESSAGE}"' in description(MaintenancePage, "message")
    assert maintenance_page.DEFAULT_RETRY_AFTER == durations.parse(MaintenancePage().retry_after)


def test_severity_description_states_the_ack_windows_the_code_uses():
    text = description(AlertRuleSpec, "severity")
    stated = dict(re.findall(r"(\w+) \((?:answer within )?(\d+[mh])\)", text))
    assert set(stated) == {s for s, window in rules.SEVERITIES.items() if window is not None}
    for severity, window in stated.items():
        assert durations.parse(window) == rules.SEVERITIES[severity], severity
    assert "blocked (recorded, never paged)" in text and rules.SEVERITIES["blocked"] is None


# ------------------------------------------------------------------ one source for enums and defaults


def test_parsers_apply_the_models_defaults():
    check = probe_spec.parse_check(parse(Health, {"url": "http://x"}))
    model = Check()
    assert (check.interval, check.timeout) == (
        durations.parse(model.interval),
        durations.parse(DEFAULT_TIMEOUT),
    )
    assert (check.failure_threshold, check.success_threshold) == (
        model.failure_threshold,
        model.success_threshold,
    )
    assert check.steps[0].request.method == "GET" and check.steps[0].expect.status == (200,)
    rule = rules.parse_rule("ns", "r", {"severity": "low", "selector": {}})
    assert rule.selector.kinds == ("ApiProduct", "Probe", "Backend")
    assert (rule.when.condition, rule.when.status, rule.when.for_) == ("Ready", "False", 0.0)
    assert (rule.repeat_interval, rule.send_resolved, rule.group_wait) == (4 * 3600, True, 0.0)


# ------------------------------------------------------------------ Backend: parsed and written through the models


def undeclared(schema: dict, value, path: str = "") -> list[str]:
    """Paths in ``value`` the API server would prune (not declared by ``schema``)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict) and "properties" in schema:
        out = []
        for key, item in value.items():
            if key in schema["properties"]:
                out += undeclared(schema["properties"][key], item, f"{path}.{key}")
            else:
                out.append(f"{path}.{key}")
        return out
    if isinstance(value, list) and "items" in schema:
        return [p for item in value for p in undeclared(schema["items"], item, f"{path}[]")]
    return []


@pytest.fixture
async def world():
    """A Backend (health from a Probe) and a product that depends on it, reconciled."""
    api_server = KubeAPI()
    api_server.put(probe("Up"))
    api_server.put(backend())
    api_server.put(
        product(
            "registry.example.com/orders:1.0",
            backends=[{"name": "ledger"}],
            consumers=[{"name": "acme", "contact": {"email": "ops@acme.example"}}],
        )
    )
    rt = runtime(api_server)
    await products.reconcile(rt, NS, "orders")
    rolled_out(api_server)
    await backends.reconcile(rt, NS, "ledger")
    await products.reconcile(rt, NS, "orders")
    return api_server, rt


async def test_backend_status_is_written_through_its_model_and_declares_every_field(world):
    api_server, _ = world
    ledger = api_server.get("Backend", NS, "ledger")
    assert ledger["status"]["state"] == "Available" and ledger["status"]["impact"]["apiProducts"]
    assert undeclared(crdgen.openapi_schema(api.Backend), ledger) == []
    assert undeclared(crdgen.openapi_schema(api.ApiProduct), api_server.get("ApiProduct", NS, "orders")) == []


async def test_a_backend_spec_the_model_refuses_stalls_with_the_field_named(world):
    api_server, rt = world
    stale = backend()
    # admitted before the bound existed, say: the model refuses it, naming the field
    stale["spec"] = {"health": {"url": "http://ledger.example/health", "failureThreshold": 0}}
    api_server.put(stale)
    await backends.reconcile(rt, NS, "ledger")
    ledger = api_server.get("Backend", NS, "ledger")
    stalled = condition(ledger, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert stalled["message"] == "spec.health.failureThreshold: Input should be greater than or equal to 1"
    assert ledger["status"]["state"] == "Unknown"


def test_parse_names_list_items_and_counts_what_it_leaves_out():
    with pytest.raises(InvalidSpec) as exc:
        parse(
            api.probe.ProbeSpec,
            {"target": {"url": "http://x"}, "steps": [{"name": "a", "expect": {"status": [99]}}]},
        )
    assert exc.value.message == "spec.steps[0].expect.status[0]: Input should be greater than or equal to 100"
    with pytest.raises(InvalidSpec) as exc:
        parse(api.probe.ProbeSpec, {"target": 1, "interval": 2, "timeout": 3, "paused": "x"})
    assert exc.value.message.endswith("(and 1 more)")


# ------------------------------------------------------------------ what the status builders write is declared


def status_schema(model) -> dict:
    return crdgen.openapi_schema(model)["properties"]["status"]


def test_probe_status_is_built_through_its_model_and_declares_every_field():
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    check = probe_spec.parse_check({"target": {"url": "http://x"}})
    job = Job(("Probe", "ns", "p"), 1, check, lambda: None, lambda: None, publish=None)
    job.health = probe_state.Health(probe_state.DOWN, 3, 0)
    for minute in range(90):
        job.stats.record(now - timedelta(minutes=minute), ok=minute % 7 != 0, latency_ms=12.5)

    status = probe_reconcile.probe_status(
        job, failed_result(check, "boom"), target="http://x", transition_at="2026-11-29T12:00:00Z"
    )
    written = status.model_dump(by_alias=True, exclude_unset=True)

    assert isinstance(status, api.probe.ProbeStatus)
    assert {"state", "consecutiveFailures", "availability", "history", "latency", "target"} <= set(written)
    assert (
        written["lastFailure"]["reason"] == "boom" and written["lastTransitionAt"] == "2026-11-29T12:00:00Z"
    )
    assert undeclared(status_schema(api.Probe), written) == []
    # What was not set is left out (a merge patch keeps it), and what is absent on purpose stays out.
    assert "conditions" not in written and "observedGeneration" not in written
    assert "lastTransitionAt" not in probe_reconcile.probe_status(job, None, target=None).model_dump(
        by_alias=True, exclude_unset=True
    )


def test_alert_records_write_only_declared_fields():
    at = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    record = alert_state.AlertRecord(
        key="r/Probe/p",
        kind="Probe",
        name="p",
        subject="p is down",
        state="firing",
        severity="high",
        pending_since=at,
        since=at,
        acknowledged_by="ana",
        acknowledged_at=at,
        escalation_step=1,
        last_notified_at=at,
        resolved_at=at,
        notified=["ops"],
        outstanding=[alert_state.Owed("ops", "reminder", at, 1)],
    )
    (written,) = alert_state.apply_results(
        [record.to_dict()],
        [alert_state.DeliveryResult("ops", "firing", (record.key,), False, 2, "timed out", at)],
    )
    assert written["deliveries"] and written["ackDeadline"]
    assert undeclared(status_schema(api.AlertRule)["properties"]["alerts"]["items"], written) == []


def test_maintenance_status_builders_write_only_declared_fields():
    spec = {"schedule": {"start": "2026-12-05T22:00:00Z", "duration": "2h"}}
    evaluation = maintenance_window.evaluate(window_spec(spec), datetime(2026, 12, 5, 23, 0, tzinfo=UTC))
    affected = targets.Affected(
        products=(targets.AffectedProduct("shop", "Shop", ("v1",), targets.UNAVAILABLE, "targeted"),),
        backends=("ledger",),
        consumers=(targets.AffectedConsumer("acme", "shop", ("v1",), {"email": "ops@acme.example"}),),
    )
    status = {
        **{k: v for k, v in evaluation.status().items() if v is not None},
        "affected": affected.status(),
    }
    assert status["phase"] == "Active" and status["affected"]["consumers"]
    assert undeclared(status_schema(api.MaintenanceWindow), status) == []


def test_a_status_patch_clears_what_was_set_to_none_and_leaves_out_the_rest():
    status = MaintenanceWindowStatus.model_validate(
        {"phase": "Completed", "nextStart": None, "notices": [{"kind": "end", "error": None}]}
    )
    # nextStart: null clears a stale start under the merge patch; a None inside a list item is
    # dropped (lists are replaced whole); affected, never given, is left as the server has it.
    assert status_patch(status) == {"phase": "Completed", "nextStart": None, "notices": [{"kind": "end"}]}


def test_the_clients_kind_table_agrees_with_the_models():
    assert vocabulary.PITWALL_KINDS == tuple(model.__name__ for model in api.KINDS)
    for model in api.KINDS:
        kind = kube.KINDS[model.__name__]
        assert (kind.plural, kind.api_version) == (model.names.plural, API_VERSION)
