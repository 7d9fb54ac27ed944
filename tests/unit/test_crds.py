"""The CRDs: generated from one source, complete, bounded, and consistent with the examples.

Whether the API server accepts them and refuses the invalid examples is checked against a real
API server by the integration tests; these tests keep the source, the committed files and the
examples from drifting apart.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from pitwall import GROUP, VERSION, api, crds, durations, floors

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
EXAMPLES = ROOT / "examples"

ALL = crds.build_all()
KINDS = ["ApiProduct", "Probe", "Backend", "AlertRule", "MaintenanceWindow", "Incident"]
SHORT_NAMES = {
    "ApiProduct": "pwap",
    "Probe": "pwprobe",
    "Backend": "pwbe",
    "AlertRule": "pwalert",
    "MaintenanceWindow": "pwmw",
    "Incident": "pwinc",
}
PLURALS = {
    "ApiProduct": "apiproducts",
    "Probe": "probes",
    "Backend": "backends",
    "AlertRule": "alertrules",
    "MaintenanceWindow": "maintenancewindows",
    "Incident": "incidents",
}
# The column that says where each kind stands, besides Ready.
KEY_COLUMN = {
    "ApiProduct": ".status.state",
    "Probe": ".status.state",
    "Backend": ".status.state",
    "AlertRule": ".status.firing",
    "MaintenanceWindow": ".status.phase",
    "Incident": ".status.phase",
}
# Parts that are free-form on purpose; nowhere else may unknown fields survive.
FREE_FORM = {
    ("ApiProduct", "spec.versions[].env[].valueFrom"),
    ("Probe", "spec.steps[].request.json"),
    ("Probe", "spec.steps[].expect.json[].equals"),
    ("Backend", "spec.health.steps[].request.json"),
    ("Backend", "spec.health.steps[].expect.json[].equals"),
}
# Every status field the operator writes is declared by the kind's status model (structural
# schemas silently prune undeclared ones); the CRD must carry each of them.
MODELS = {model.__name__: model for model in api.KINDS}


def model_fields(model: type[BaseModel], prefix: str = ""):
    """Yield the camelCase path of every field of ``model`` and of the models nested in it."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{info.alias or name}"
        yield path
        annotation, suffix = info.annotation, ""
        while True:
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if typing.get_origin(annotation) is list:
                annotation, suffix = args[0], suffix + "[]"
            elif args and typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
                annotation = args[0]
            else:
                break
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from model_fields(annotation, f"{path}{suffix}.")


def status_fields(kind: str) -> list[str]:
    status = MODELS[kind].model_fields["status"].annotation
    (model,) = [a for a in typing.get_args(status) if a is not type(None)]
    return list(model_fields(model))


def schema(kind: str) -> dict:
    return ALL[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: dict, path: str = ""):
    """Yield (path, node) for every schema node."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}" if path else name)
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def lookup(node: dict, path: str) -> dict:
    for part in re.findall(r"[^.\[\]]+|\[\]", path):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def rules(kind: str) -> list[tuple[str, dict]]:
    return [(path, r) for path, node in walk(schema(kind)) for r in node.get("x-kubernetes-validations", [])]


# ------------------------------------------------------------------ generated files


def test_committed_crds_are_the_generator_output():
    expected = crds.files()
    for name, text in expected.items():
        path = CRD_DIR / name
        assert path.exists(), f"crds/{name} is missing: run make crds"
        # as data first: the failure then names the field that drifted
        assert yaml.safe_load(path.read_text()) == yaml.safe_load(text), (
            f"crds/{name} differs from the models in operator/pitwall/api/: run make crds"
        )
        assert path.read_text() == text, f"crds/{name} is not formatted as generated: run make crds"
    extra = {p.name for p in CRD_DIR.glob("*.yaml")} - set(expected)
    assert not extra, f"files in crds/ the generator does not produce: {sorted(extra)}"


def test_check_mode_reports_stale_files(tmp_path, capsys):
    assert crds.main([str(tmp_path)]) == 0
    assert crds.main([str(tmp_path), "--check"]) == 0
    (tmp_path / "probes.yaml").write_text("stale\n")
    assert crds.main([str(tmp_path), "--check"]) == 1
    assert "probes.yaml" in capsys.readouterr().err


def test_kustomization_lists_every_crd_file():
    kustomization = yaml.safe_load((CRD_DIR / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(f"{p}.yaml" for p in PLURALS.values())


# ------------------------------------------------------------------ names, versions, columns


@pytest.mark.parametrize("kind", KINDS)
def test_names_scope_and_subresources(kind):
    crd = ALL[kind]
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{PLURALS[kind]}.{GROUP}"
    assert spec["group"] == GROUP and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == kind and spec["names"]["plural"] == PLURALS[kind]
    assert spec["names"]["shortNames"] == [SHORT_NAMES[kind]]
    assert spec["names"]["categories"] == ["pitwall"]
    (version,) = spec["versions"]
    assert version["name"] == VERSION and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "pitwall"


def test_short_names_do_not_clash():
    # prometheus-operator's Probe is "prb"; Envoy Gateway has a Backend kind; keep ours prefixed.
    names = [n for crd in ALL.values() for n in crd["spec"]["names"]["shortNames"]]
    assert len(names) == len(set(names))
    assert all(n.startswith("pw") for n in names)


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns(kind):
    columns = ALL[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert columns[0]["name"] == "Ready"
    assert columns[0]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns[-1] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    assert KEY_COLUMN[kind] in [c["jsonPath"] for c in columns]
    assert any(c["jsonPath"].startswith(".spec.") for c in columns), "no spec column"
    # every column points at a field the schema declares
    for col in columns[1:-1]:
        lookup(schema(kind), col["jsonPath"].lstrip("."))


# ------------------------------------------------------------------ status


@pytest.mark.parametrize("kind", KINDS)
def test_status_declares_every_contract_field(kind):
    status = lookup(schema(kind), "status")
    fields = status_fields(kind)
    assert {"observedGeneration", "conditions", "conditions[].reason"} <= set(fields)
    assert len(fields) > 10
    for field in fields:
        try:
            lookup(status, field)
        except KeyError:
            pytest.fail(f"{kind} status.{field} is not declared (the API server would prune it)")


@pytest.mark.parametrize("kind", KINDS)
def test_conditions_are_a_metav1_condition_map(kind):
    conds = lookup(schema(kind), "status.conditions")
    assert conds["x-kubernetes-list-type"] == "map"
    assert conds["x-kubernetes-list-map-keys"] == ["type"]
    item = conds["items"]
    assert set(item["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]


# ------------------------------------------------------------------ structural and bounded


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural_and_bounded(kind):
    problems = []
    for path, node in walk(schema(kind)):
        if path in ("", "metadata", "apiVersion", "kind"):
            continue
        if node.get("x-kubernetes-preserve-unknown-fields"):
            if (kind, path) not in FREE_FORM:
                problems.append(f"{path}: preserves unknown fields")
            continue
        if node.get("x-kubernetes-int-or-string"):
            continue
        kind_of = node.get("type")
        if kind_of is None:
            problems.append(f"{path}: no type")
        elif kind_of == "string" and not ("maxLength" in node or "enum" in node):
            problems.append(f"{path}: unbounded string")
        elif kind_of == "array" and "maxItems" not in node:
            problems.append(f"{path}: unbounded list")
        elif kind_of == "object" and "additionalProperties" in node and "maxProperties" not in node:
            problems.append(f"{path}: unbounded map")
    assert not problems, "\n".join(problems)


def test_free_form_parts_exist():
    # keeps FREE_FORM honest: an entry that no longer exists would hide a regression
    for kind, path in FREE_FORM:
        assert lookup(schema(kind), path)["x-kubernetes-preserve-unknown-fields"] is True


@pytest.mark.parametrize("kind", KINDS)
def test_every_user_field_is_described(kind):
    missing = [
        path
        for path, node in walk(lookup(schema(kind), "spec"), "spec")
        if not path.endswith("{}") and not node.get("description")
    ]
    assert not missing, f"fields without description: {missing}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_rule_has_a_human_message(kind):
    for path, r in rules(kind):
        message = r["message"]
        assert len(message) > 15 and "self." not in message, f"{path}: {message!r}"


# ------------------------------------------------------------------ durations


def duration_fields():
    for kind in KINDS:
        for path, node in walk(lookup(schema(kind), "spec"), "spec"):
            if "A duration such as" in node.get("description", ""):
                yield kind, path, node


def test_every_duration_is_checked_with_the_operators_grammar():
    fields = list(duration_fields())
    assert len(fields) >= 15
    for kind, path, node in fields:
        check, *floor = node["x-kubernetes-validations"]
        assert check["rule"] == f"self.matches(r'{durations.PATTERN}')", f"{kind} {path}"
        assert len(floor) <= 1
        if "default" in node:
            durations.parse(node["default"])


# Every duration that drives repeated work, and its admission floor (floors.ADMISSION).
FLOORED = {
    ("Probe", "spec.interval"): floors.ADMISSION.probe_interval,
    ("Probe", "spec.timeout"): floors.ADMISSION.probe_timeout,
    ("Backend", "spec.health.interval"): floors.ADMISSION.probe_interval,
    ("Backend", "spec.health.timeout"): floors.ADMISSION.probe_timeout,
    ("AlertRule", "spec.repeatInterval"): floors.ADMISSION.repeat_interval,
    ("AlertRule", "spec.escalation[].after"): floors.ADMISSION.escalation_delay,
    ("AlertRule", "spec.digest.interval"): floors.ADMISSION.digest_interval,
    ("MaintenanceWindow", "spec.schedule.duration"): floors.ADMISSION.window_duration,
}


def test_durations_that_drive_work_have_the_admission_floor():
    found = {
        (kind, path): node["x-kubernetes-validations"][1]
        for kind, path, node in duration_fields()
        if len(node["x-kubernetes-validations"]) > 1
    }
    assert set(found) == set(FLOORED)
    for key, seconds in FLOORED.items():
        floor = durations.format(seconds)
        assert f"duration(self) >= duration('{floor}')" in found[key]["rule"], key
        assert found[key]["message"].startswith(f"must be at least {floor}"), key


def test_defaults_are_above_the_floors():
    for (kind, path), seconds in FLOORED.items():
        node = lookup(schema(kind), path)
        if "default" in node:
            assert durations.parse(node["default"]) >= seconds, (kind, path)


@pytest.mark.parametrize(
    "text, passes",
    [
        ("1d", True),
        ("10d", True),
        ("0.5d", True),
        ("1w", True),
        ("0.1w", True),
        ("1h2d", True),
        ("0d", False),
        ("0d1ms", False),
        ("0.05d", False),
        ("00d", False),
        ("0w0d", False),
    ],
)
def test_day_and_week_durations_pass_the_floor_only_when_a_day_part_is_large(text, passes):
    # CEL's duration() has no d/w units: such values pass when one part is >= 0.1d (2.4h),
    # above every floor. (RE2 and Python agree on this pattern.)
    assert bool(re.search(api.base.DAYS_PART, text)) is passes
    assert passes is (durations.parse(text) >= 0.1 * 86400)


def test_timeout_within_interval_rule_on_both_check_shapes():
    for kind, path in (("Probe", "spec"), ("Backend", "spec.health")):
        messages = [r["message"] for r in lookup(schema(kind), path).get("x-kubernetes-validations", [])]
        assert any(m.startswith("timeout must not be longer than interval") for m in messages), kind


@pytest.mark.parametrize("text", ["30s", "500ms", "5m", "2h", "3d", "1w", "1h30m", "1.5h", "0s"])
def test_durations_the_crds_accept_are_parsed_by_the_operator(text):
    assert re.fullmatch(durations.PATTERN, text)
    assert durations.parse(text) >= 0


@pytest.mark.parametrize("text", ["30", "5 minutes", "1x", "-5s", "", "h"])
def test_durations_the_crds_refuse_are_refused_by_the_operator(text):
    assert not re.fullmatch(durations.PATTERN, text)
    with pytest.raises(ValueError):
        durations.parse(text)


# ------------------------------------------------------------------ shared shapes


def test_backend_health_uses_the_probe_check_shape():
    probe = lookup(schema("Probe"), "spec")["properties"]
    health = lookup(schema("Backend"), "spec.health")["properties"]
    for field in ("interval", "timeout", "failureThreshold", "successThreshold", "tls", "steps"):
        assert health[field] == probe[field], field


def test_notice_receivers_use_the_alert_receiver_shape():
    alert = lookup(schema("AlertRule"), "spec.receivers[]")
    notice = lookup(schema("MaintenanceWindow"), "spec.notice.receivers[]")
    assert notice["x-kubernetes-validations"] == alert["x-kubernetes-validations"]
    assert set(notice["properties"]) == set(alert["properties"]) - {"escalationOnly"}


# ------------------------------------------------------------------ examples


def example_docs():
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def index():
    out: dict[tuple[str, str], dict] = {}
    for _, doc in example_docs():
        out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def test_examples_are_a_marketplace_in_one_namespace():
    docs = example_docs()
    first = docs[0]
    assert first[0].name == "00-namespace.yaml"
    assert (first[1]["kind"], first[1]["metadata"]["name"]) == ("Namespace", "marketplace")
    for path, doc in docs[1:]:
        assert doc["metadata"].get("namespace") == "marketplace", f"{path.name}: {doc['metadata']['name']}"
    kinds = [d["kind"] for _, d in docs]
    for kind in KINDS:
        assert kind in kinds, f"no {kind} example"
    assert kinds.count("ApiProduct") == 2


def test_example_references_resolve():
    objs = index()
    secrets = {name: doc.get("stringData", {}) for (kind, name), doc in objs.items() if kind == "Secret"}

    def secret_ref(ref, where):
        assert ref["key"] in secrets.get(ref["name"], {}), (
            f"{where}: Secret {ref['name']}/{ref['key']} missing"
        )

    for (kind, name), doc in objs.items():
        spec = doc.get("spec", {})
        if kind == "ApiProduct":
            names = {v["name"] for v in spec["versions"]}
            for b in spec.get("backends", []):
                assert ("Backend", b["name"]) in objs, f"{name}: Backend {b['name']} missing"
            for c in spec.get("consumers", []):
                assert set(c.get("versions", [])) <= names
        if kind == "Probe":
            target = spec["target"].get("apiProduct")
            if target:
                product = objs[("ApiProduct", target["name"])]
                assert target["version"] in {v["name"] for v in product["spec"]["versions"]}
            for text in re.findall(r"\$\{secret:([^}]+)\}", yaml.safe_dump(spec)):
                secret, key = text.split("/")
                secret_ref({"name": secret, "key": key}, name)
        if kind in ("AlertRule", "MaintenanceWindow"):
            receivers = spec.get("receivers", []) + spec.get("notice", {}).get("receivers", [])
            for r in receivers:
                if "secretRef" in r:
                    secret_ref(r["secretRef"], name)
        if kind == "MaintenanceWindow":
            for b in spec["targets"].get("backends", []):
                assert ("Backend", b) in objs
            if "consumerEmail" in spec.get("notice", {}):
                secret_ref(spec["notice"]["consumerEmail"]["secretRef"], name)


def selected(selector: dict, objs: dict) -> list[tuple[str, str]]:
    kinds = selector.get("kinds", ["ApiProduct", "Probe", "Backend"])
    labels = selector.get("matchLabels", {})
    return [
        key
        for key, doc in objs.items()
        if key[0] in kinds and all(doc["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())
    ]


def test_example_selectors_match_objects():
    objs = index()
    for (kind, name), doc in objs.items():
        if kind == "AlertRule":
            assert selected(doc["spec"]["selector"], objs), f"AlertRule {name} selects nothing"
        if kind == "MaintenanceWindow" and "apiProducts" in doc["spec"]["targets"]:
            chosen = selected({"kinds": ["ApiProduct"], **doc["spec"]["targets"]["apiProducts"]}, objs)
            assert chosen, f"MaintenanceWindow {name} selects no ApiProduct"
    critical = objs[("AlertRule", "revenue-critical-down")]
    assert {n for k, n in selected(critical["spec"]["selector"], objs)} == {
        "payments-v2-isup",
        "payments-oauth-flow",
    }


def test_oauth_probe_walks_the_flow_with_captured_values():
    steps = index()[("Probe", "payments-oauth-flow")]["spec"]["steps"]
    assert [s["name"] for s in steps] == ["token", "profile", "balance"]
    assert steps[0]["capture"] == {"token": "$.access_token"}
    assert steps[1]["request"]["headers"]["Authorization"] == "Bearer ${token}"
    assert steps[2]["request"]["path"] == "/accounts/${accountId}/balance"


def invalid_examples():
    return sorted((EXAMPLES / "invalid").glob("*.yaml"))


def test_an_invalid_example_for_every_kind():
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in invalid_examples()}
    assert kinds == set(KINDS)


@pytest.mark.parametrize("path", invalid_examples(), ids=lambda p: p.name)
def test_invalid_example_expects_a_message_the_crd_defines(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: ")
    expected = first.removeprefix("# expect: ")
    kind = yaml.safe_load(path.read_text())["kind"]
    said = [r["message"] for _, r in rules(kind)] + [r.get("messageExpression", "") for _, r in rules(kind)]
    assert any(expected == text or (expected in text and text.startswith("'")) for text in said), (
        f"{path.name}: no rule says {expected!r}"
    )
