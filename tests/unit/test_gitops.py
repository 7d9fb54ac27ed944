"""GitOps and shipping files, checked without a cluster.

- gitops/argocd/health.lua gives every test case of tests/unit/gitops/<Kind>/health_test.yaml
  (Argo CD's convention: an input object and the health it must get), run in Lua 5.1 (Argo CD's
  gopher-lua dialect) through lupa, or Debian's lua5.4 when lupa is not installed;
- argocd-cm.yaml carries that same script for each kind;
- the example Application, Flux objects and the CI workflow are valid YAML naming only public,
  pinned actions; hack/e2e-kind.sh passes shellcheck (when installed);
- the Grafana dashboard uses only metrics the code defines, and shows each of them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ARGO = ROOT / "gitops" / "argocd"
CASES = Path(__file__).resolve().parent / "gitops"
KINDS = ("ApiProduct", "Probe", "Backend", "AlertRule", "MaintenanceWindow")
HEALTH = (ARGO / "health.lua").read_text()


# -- a Lua to run the health check in ----------------------------------------------------------------
def to_lua(value) -> str:
    """A Python value (from YAML) as a Lua table constructor, the way Argo CD hands `obj` over."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "{" + ", ".join(to_lua(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{to_lua(str(k))}] = {to_lua(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot hand {type(value).__name__} to Lua")


def _lupa_runner():
    try:
        from lupa import lua51 as lupa_lua  # the dialect Argo CD's gopher-lua implements
    except ImportError:
        try:
            import lupa as lupa_lua  # whatever Lua lupa was built with
        except ImportError:
            return None

    def run(obj: dict) -> dict:
        lua = lupa_lua.LuaRuntime(unpack_returned_tuples=True)
        lua.execute("obj = " + to_lua(obj))
        result = lua.execute(HEALTH)
        return {"status": result["status"], "message": result["message"]}

    return run


def _binary_runner():
    binary = shutil.which("lua5.1") or shutil.which("lua5.4") or shutil.which("lua")
    if not binary:
        return None

    def run(obj: dict) -> dict:
        chunk = (
            "obj = " + to_lua(obj) + "\nlocal hs = (function()\n" + HEALTH + "\nend)()\n"
            "io.write(hs.status, '\\n', hs.message or '')"
        )
        out = subprocess.run(
            [binary, "-"], input=chunk, capture_output=True, text=True, timeout=30, check=True
        )
        status, _, message = out.stdout.partition("\n")
        return {"status": status, "message": message}

    return run


RUN = _lupa_runner() or _binary_runner()
needs_lua = pytest.mark.skipif(RUN is None, reason="no Lua: pip install lupa (or apt-get install lua5.4)")


def cases() -> list[tuple[str, str, dict]]:
    found = []
    for kind in KINDS:
        spec = yaml.safe_load((CASES / kind / "health_test.yaml").read_text())
        for test in spec["tests"]:
            found.append((kind, test["inputPath"], test["healthStatus"]))
    return found


@needs_lua
@pytest.mark.parametrize(
    ("kind", "input_path", "expected"), cases(), ids=[f"{k}/{Path(p).stem}" for k, p, _ in cases()]
)
def test_health_check_gives_each_case_its_status(kind, input_path, expected):
    obj = yaml.safe_load((CASES / kind / input_path).read_text())
    assert obj["kind"] == kind and obj["apiVersion"] == "pitwall.dev/v1alpha1"
    assert RUN(obj) == {"status": expected["status"], "message": expected.get("message", "")}


def test_every_kind_has_the_three_main_statuses():
    statuses = {}
    for kind, _, expected in cases():
        statuses.setdefault(kind, set()).add(expected["status"])
    assert set(statuses) == set(KINDS)
    for kind, seen in statuses.items():
        assert {"Healthy", "Progressing", "Degraded"} <= seen, (kind, seen)
    assert "Suspended" in statuses["Probe"]


def test_argocd_cm_registers_the_same_script_for_each_kind():
    cm = yaml.safe_load((ARGO / "argocd-cm.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    keys = {f"resource.customizations.health.pitwall.dev_{kind}" for kind in KINDS}
    assert set(cm["data"]) == keys
    for key in keys:
        assert cm["data"][key] == HEALTH, f"{key} differs from health.lua: regenerate argocd-cm.yaml"


def test_health_lua_stays_lua_5_1():
    # gopher-lua: no goto, no integer division, no bitwise operators, no utf8 library
    code = "\n".join(line.split("--", 1)[0] for line in HEALTH.splitlines())
    for pattern in (r"\bgoto\b", r"//", r"[^~=<>]=?&", r"\butf8\.", r"<<|>>"):
        assert not re.search(pattern, code), pattern


# -- GitOps examples ----------------------------------------------------------------------------------
def test_argocd_application_example():
    docs = [d for d in yaml.safe_load_all((ARGO / "application.yaml").read_text()) if d]
    apps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Application"}
    assert set(apps) == {"pitwall", "marketplace"}
    install = apps["pitwall"]["spec"]
    assert install["source"]["path"] == "manifests"
    assert "ServerSideApply=true" in install["syncPolicy"]["syncOptions"]
    team = apps["marketplace"]["spec"]
    ignored = [e for e in team["ignoreDifferences"] if e["kind"] == "ApiProduct"]
    assert ignored and ignored[0]["group"] == "pitwall.dev"
    assert ".spec.versions[].replicas" in ignored[0]["jqPathExpressions"]
    assert "RespectIgnoreDifferences=true" in team["syncPolicy"]["syncOptions"]


def test_flux_examples():
    docs = [d for d in yaml.safe_load_all((ROOT / "gitops" / "flux" / "kustomization.yaml").read_text()) if d]
    kinds = {(d["apiVersion"], d["kind"]) for d in docs}
    assert ("source.toolkit.fluxcd.io/v1", "GitRepository") in kinds
    assert ("kustomize.toolkit.fluxcd.io/v1", "Kustomization") in kinds
    install = next(d for d in docs if d["kind"] == "Kustomization" and d["spec"]["path"] == "./manifests")
    assert install["spec"]["wait"] is True
    team = next(d for d in docs if d["kind"] == "Kustomization" and d["spec"]["path"] != "./manifests")
    assert team["spec"]["dependsOn"] == [{"name": install["metadata"]["name"]}]


# -- the kind end-to-end workflow and script ------------------------------------------------------------
ALLOWED_ACTIONS = {
    "actions/checkout",
    "actions/setup-python",
    "actions/upload-artifact",
    "helm/kind-action",
    "docker/setup-buildx-action",
    "docker/build-push-action",
}


def test_e2e_workflow_is_valid_and_uses_only_pinned_public_actions():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "e2e-kind.yaml").read_text())
    assert workflow["name"]
    assert True in workflow or "on" in workflow  # YAML 1.1 reads a bare `on:` as True
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [step["uses"] for step in steps if "uses" in step]
    assert uses
    for use in uses:
        action, _, ref = use.partition("@")
        assert action in ALLOWED_ACTIONS, use
        assert re.fullmatch(r"v\d+(\.\d+){0,2}|[0-9a-f]{40}", ref), f"{use}: pin a version"
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "hack/e2e-kind.sh" in runs


def test_e2e_script_is_executable_and_shellcheck_clean():
    script = ROOT / "hack" / "e2e-kind.sh"
    assert script.stat().st_mode & 0o111, "hack/e2e-kind.sh must be executable"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert "python -m tests.journeys" in text or "-m tests.journeys" in text
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    proc = subprocess.run(["shellcheck", "-x", str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the Grafana dashboard ---------------------------------------------------------------------------------
def defined_metrics() -> set[str]:
    """Names exposed by the operator: every Counter/Gauge/Histogram (or collector family) in its code."""
    names = set()
    for path in (ROOT / "operator" / "pitwall").rglob("*.py"):
        for match in re.finditer(
            r"\b(Counter|Gauge|Histogram)(MetricFamily)?\(\s*\"(pitwall_[a-z0-9_]+)\"", path.read_text()
        ):
            names.add(match.group(3))
    return names


def test_dashboard_uses_only_defined_metrics_and_shows_each():
    path = ROOT / "manifests" / "components" / "grafana-dashboard" / "pitwall-dashboard.json"
    dashboard = json.loads(path.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    used = {
        re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"\bpitwall_[a-z0-9_]+", e)
    }
    defined = defined_metrics()
    assert defined, "no metrics found in the code"
    assert used <= defined, (
        f"the dashboard queries metrics the code does not define: {sorted(used - defined)}"
    )
    assert defined <= used, f"metrics missing from the dashboard: {sorted(defined - used)}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "pitwall-operator"
