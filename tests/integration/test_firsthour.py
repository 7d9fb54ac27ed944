"""A newcomer's first hour, against the real control plane: `pitwall run --kubeconfig` alone,
kubectl's namespace rules in the CLI, a backend declared down by hand, sunset notices, runtime
edits of one version, and a probe on an empty version that says why it fails."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import Operator, condition, eventually
from tests.helpers.demo import DemoAPI
from tests.helpers.receiver import Recorder
from tests.helpers.smtp import smtp_server
from tests.integration.test_alerts import alerts
from tests.integration.test_backends import backend, backend_state, consumer
from tests.integration.test_probes import probe
from tests.integration.test_products import product, ready


@pytest.fixture
def demo():
    with DemoAPI() as api:
        yield api


def cli(cluster, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pitwall", *args],
        env={**cluster.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def status_json(op: Operator) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.statuspage_port}/api/v1/status", timeout=5) as r:
        return json.loads(r.read())


def test_run_with_only_the_kubeconfig_flag_watches_the_cluster(cluster, namespace, tmp_path, kubectl):
    """As `env -u KUBECONFIG HOME=<empty> pitwall run --kubeconfig PATH`: nothing else says where."""
    op = Operator(
        cluster, tmp_path, namespace=namespace, extra_args=["--kubeconfig", str(cluster.kubeconfig)]
    )
    op.env.pop("KUBECONFIG")
    op.env["HOME"] = str(tmp_path)  # no ~/.kube/config to fall back on
    op.env.pop("KUBERNETES_SERVICE_HOST", None)
    op.start()
    try:
        kubectl.apply(backend("ledger", "http://127.0.0.1:9/unused") | {"spec": {"displayName": "Ledger"}})
        obj = eventually(
            lambda: (lambda o: o if (o.get("status") or {}).get("observedGeneration") else None)(
                kubectl.get("backend", "ledger")
            ),
            timeout=30,
            message="reconciled through --kubeconfig",
        )
        assert obj["status"]["state"] == "Unknown"
        assert "Ran out of valid credentials" not in op.log()
    finally:
        op.stop()
    missing = cli(cluster, "run", "--kubeconfig", str(tmp_path / "nope"))
    assert missing.returncode != 0 and "no such file" in missing.stderr


def test_backend_declared_down_by_hand_flows_like_a_failing_check(operator, kubectl, cluster, demo):
    with Recorder() as rec:
        kubectl.apply(backend("core-banking", f"{demo.url}/backends/core-banking/health"))
        kubectl.apply(
            product(
                "payments",
                [{"name": "v1", "image": "registry.example.com/payments:1"}],
                public=True,
                backends=[{"name": "core-banking", "criticality": "critical"}],
                consumers=[consumer("acme", ["v1"])],
            )
        )
        kubectl.apply(
            {
                "apiVersion": "pitwall.dev/v1alpha1",
                "kind": "AlertRule",
                "metadata": {"name": "backends"},
                "spec": {
                    "severity": "critical",
                    "selector": {"kinds": ["Backend"]},
                    "when": {"condition": "Ready", "status": "False", "for": "1s"},
                    "receivers": [{"name": "hook", "type": "webhook", "url": rec.url + "/hook"}],
                    "repeatInterval": "1h",
                    "sendResolved": True,
                },
            }
        )
        eventually(lambda: backend_state(kubectl, "core-banking") == "Available", message="healthy first")
        eventually(lambda: ready(kubectl, "payments"))

        out = cli(
            cluster,
            "backend",
            "down",
            "core-banking",
            "-n",
            kubectl.namespace,
            "--reason",
            "mainframe patching overran",
            "--by",
            "marge",
        )
        assert out.returncode == 0, out.stderr
        obj = eventually(
            lambda: (lambda o: o if (o.get("status") or {}).get("state") == "Unavailable" else None)(
                kubectl.get("backend", "core-banking")
            ),
            message="declared down",
        )
        available = condition(obj, "Available")
        assert available["reason"] == "DeclaredDown"
        assert (
            "declared down by marge" in available["message"]
            and "mainframe patching overran" in available["message"]
        )
        assert obj["metadata"]["annotations"]["pitwall.dev/declared-down-by"] == "marge"
        eventually(
            lambda: (
                condition(kubectl.get("apiproduct", "payments"), "Available").get("reason")
                == "BackendUnavailable"
            ),
            message="the product feels it",
        )
        eventually(
            lambda: [a for a in alerts(kubectl, "backends") if a["state"] == "firing"],
            message="an alert fires as for a failing check",
        )
        sent = eventually(
            lambda: [
                r["body"]
                for r in rec.paths("/hook")
                if r["body"]["status"] == "firing"
                and "mainframe patching overran" in r["body"]["alerts"][0]["annotations"]["description"]
            ],
            message="the receiver is told why",
        )[-1]
        ack = sent["alerts"][0]["annotations"]["acknowledge"]  # works as pasted: it names the namespace
        assert f"pitwall ack -n {kubectl.namespace} backends " in ack
        page = eventually(
            lambda: (lambda m: m if m["incidents"] else None)(status_json(operator)),
            message="the status page shows the outage as an incident",
        )
        assert page["overall"]["headline"] == "Major outage"
        assert "marge" not in json.dumps(page) and "core-banking" not in json.dumps(page)
        assert any(
            e["reason"] == "BackendUnavailable" and "declared down" in e["message"]
            for e in kubectl.events("core-banking")
        )

        assert cli(cluster, "backend", "up", "core-banking", "-n", kubectl.namespace).returncode == 0
        eventually(
            lambda: backend_state(kubectl, "core-banking") == "Available", message="the check decides again"
        )
        eventually(
            lambda: [a["state"] for a in alerts(kubectl, "backends")] == ["resolved"], message="resolved"
        )
        assert "pitwall.dev/declared-down" not in (
            kubectl.get("backend", "core-banking")["metadata"].get("annotations") or {}
        )
    refused = cli(cluster, "backend", "down", "core-banking", "-n", kubectl.namespace)
    assert refused.returncode == 2 and "--reason" in refused.stderr


def test_cli_follows_kubectls_namespace_rules(operator, kubectl, cluster, tmp_path):
    kubectl.apply(backend("ledger", "http://127.0.0.1:9/unused"))
    eventually(lambda: (kubectl.get("backend", "ledger").get("status") or {}).get("state"))
    # the context's namespace, as `make dev` sets it
    config = json.loads(cluster.kubeconfig.read_text())
    config["contexts"][0]["context"]["namespace"] = kubectl.namespace
    own = tmp_path / "kubeconfig"
    own.write_text(json.dumps(config))
    rows = json.loads(cli(cluster, "status", "-o", "json", env={"KUBECONFIG": str(own)}).stdout)
    assert [r["name"] for r in rows] == ["ledger"]
    every = cli(cluster, "status", "-A")
    assert every.returncode == 0, every.stderr
    header, *lines = every.stdout.splitlines()
    assert header.split()[:2] == ["NAMESPACE", "KIND"]
    assert any(line.split()[:3] == [kubectl.namespace, "Backend", "ledger"] for line in lines)
    empty = cli(cluster, "status", "-n", "kube-public")
    assert empty.returncode == 0 and "No Pitwall objects in namespace kube-public" in empty.stderr
    assert cli(cluster, "ack", "r", "k", "-A").returncode == 2


def test_scale_and_set_env_change_one_version(operator, kubectl, cluster):
    kubectl.apply(
        product(
            "payments",
            [
                {"name": "v1", "image": "registry.example.com/payments:1"},
                {
                    "name": "v2",
                    "image": "registry.example.com/payments:2",
                    "env": [{"name": "LOG_LEVEL", "value": "info"}],
                },
            ],
        )
    )
    eventually(lambda: ready(kubectl, "payments"))
    out = cli(cluster, "scale", "payments", "v2", "3", "-n", kubectl.namespace)
    assert out.returncode == 0, out.stderr
    assert "--type json" in out.stdout  # the kubectl equivalent is shown
    out = cli(
        cluster, "set", "env", "payments", "v2", "LOG_LEVEL=debug", "FEATURE_X=on", "-n", kubectl.namespace
    )
    assert out.returncode == 0, out.stderr

    def deployment():
        d = kubectl.get("deployment", "payments-v2")
        env = {
            e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0].get("env") or []
        }
        return (
            d
            if d["spec"]["replicas"] == 3 and env.get("LOG_LEVEL") == "debug" and env.get("FEATURE_X") == "on"
            else None
        )

    eventually(deployment, message="v2 scaled and its env set")
    assert kubectl.get("deployment", "payments-v1")["spec"]["replicas"] == 1  # v1 untouched
    wrong = cli(cluster, "scale", "payments", "v9", "2", "-n", kubectl.namespace)
    assert wrong.returncode == 1 and "no version 'v9' (versions: v1, v2)" in wrong.stderr


def test_a_probe_on_an_empty_version_says_it_has_no_ready_endpoints(operator, kubectl):
    kubectl.apply(
        product("payments", [{"name": "v2", "image": "registry.example.com/payments:2", "replicas": 0}])
    )
    kubectl.apply(
        probe(
            "payments-v2-isup",
            {"apiProduct": {"name": "payments", "version": "v2"}},
            failureThreshold=1,
            steps=[{"name": "isup", "request": {"path": "/isUp"}}],
        )
    )
    failure = eventually(
        lambda: (kubectl.get("probe", "payments-v2-isup").get("status") or {}).get("lastFailure"),
        timeout=30,
        message="the probe fails",
    )
    assert failure["reason"] == "payments v2 has no ready endpoints"
    assert "resolved.invalid" not in json.dumps(kubectl.get("probe", "payments-v2-isup")["status"])


def test_sunset_notices_go_out_once_and_survive_a_restart(operator, kubectl, cluster):
    sunset_at = (datetime.now(UTC) + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with smtp_server() as (port, received):
        kubectl.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "smtp", "labels": {"pitwall.dev/use": "receivers"}},
                "stringData": {"url": f"smtp://127.0.0.1:{port}"},
            }
        )
        kubectl.apply(
            product(
                "payments",
                [
                    {
                        "name": "v1",
                        "image": "registry.example.com/payments:1",
                        "lifecycle": "deprecated",
                        "sunsetAt": sunset_at,
                    },
                    {"name": "v2", "image": "registry.example.com/payments:2"},
                ],
                consumers=[consumer("globex", ["v1"]), consumer("acme", ["v2"])],
                sunsetNotice={
                    "leadTimes": ["30d", "7d"],
                    "consumerEmail": {
                        "secretRef": {"name": "smtp", "key": "url"},
                        "from": "payments@example.com",
                    },
                },
            )
        )
        eventually(lambda: len(received) >= 1, timeout=30, message="the deprecation notice is mailed")
        [mail] = received
        assert mail["To"] == "ops@globex.example"  # v1's consumer only
        assert mail["Subject"].startswith("Payments v1 is deprecated: sunset on ")
        # recorded owed before it was sent; the delivery is recorded by the next reconcile
        status = eventually(
            lambda: (
                lambda st: st if all(n.get("delivered") for n in st.get("sunsetNotices") or [{}]) else None
            )(kubectl.get("apiproduct", "payments").get("status") or {}),
            message="the notice recorded as delivered",
        )
        assert [(n["kind"], n.get("leadTime"), n["delivered"]) for n in status["sunsetNotices"]] == [
            ("deprecated", None, True),
            ("reminder", "7d", True),
        ]  # the due reminder is folded in
        operator.stop()
        operator.start()
        kubectl.patch("apiproduct", "payments", {"metadata": {"labels": {"touched": "yes"}}})
        kubectl.patch("apiproduct", "payments", {"spec": {"description": "reconcile again"}})
        eventually(lambda: ready(kubectl, "payments"), message="reconciled after the restart")
        import time

        time.sleep(3)
        assert len(received) == 1  # once, restart or not
        assert any(e["reason"] == "SunsetNoticeSent" for e in kubectl.events("payments"))
