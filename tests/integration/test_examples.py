"""Every example applies and becomes Ready; every invalid example is refused with its message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pitwall.demo import example_manifests, make_app
from pitwall_testing.cluster import free_port
from pitwall_testing.pods import PodServers
from tests.conftest import Operator, condition
from tests.helpers.demo import DemoAPI

ROOT = Path(__file__).resolve().parents[2]
KINDS = ["apiproducts", "probes", "backends", "alertrules", "maintenancewindows", "incidents"]


@pytest.fixture
def marketplace(cluster, tmp_path):
    """The examples' world: namespace marketplace, the demo API on a free port, the operator.

    The examples are applied with the demo's address in place of `make dev`'s 127.0.0.1:18080
    (and free, unused ports for the receivers), so this runs beside `make dev`."""
    with DemoAPI() as demo:
        servers = PodServers(
            str(cluster.kubeconfig), lambda pod: make_app(), namespace="marketplace"
        ).start_thread()
        operator = Operator(cluster, tmp_path, namespace="marketplace").start()
        manifests = example_manifests(
            ROOT / "examples",
            demo=f"127.0.0.1:{demo.port}",
            receiver=f"127.0.0.1:{free_port()}",
            smtp=f"127.0.0.1:{free_port()}",
        )
        try:
            yield cluster, manifests
        finally:
            operator.stop()
            servers.stop()
            cluster.kubectl("delete", "namespace", "marketplace", "--wait=false", check=False)


def test_every_example_becomes_ready(marketplace):
    cluster, manifests = marketplace
    cluster.kubectl("apply", "--server-side", "-f", "-", input=manifests)
    for kind in KINDS:
        proc = cluster.kubectl(
            "wait", "--for=condition=Ready", kind, "--all", "-n", "marketplace", "--timeout=60s", check=False
        )
        assert proc.returncode == 0, f"{kind}: {proc.stderr}{proc.stdout}"
    listed = cluster.kubectl("get", "pitwall", "-A").stdout
    for name in (
        "payments",
        "core-banking",
        "payments-oauth-flow",
        "revenue-critical-down",
        "core-banking-weekly",
        "payments-settlement-delays",
    ):
        assert name in listed
    items = json.loads(cluster.kubectl("get", "pitwall", "-n", "marketplace", "-o", "json").stdout)["items"]
    for obj in items:
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"], obj["metadata"]["name"]
        assert condition(obj, "Stalled")["status"] == "False", obj["metadata"]["name"]
    window = next(o for o in items if o["kind"] == "MaintenanceWindow")
    assert window["status"]["phase"] == "Scheduled" and window["status"]["nextStart"]


def invalid_examples() -> list[Path]:
    return sorted((ROOT / "examples" / "invalid").glob("*.yaml"))


@pytest.mark.parametrize("path", invalid_examples(), ids=lambda p: p.stem)
def test_invalid_example_is_refused_with_its_message(cluster, path):
    expected = path.read_text().splitlines()[0].removeprefix("# expect:").strip()
    body = yaml.safe_load(path.read_text())
    body["metadata"]["namespace"] = "default"
    proc = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=json.dumps(body), check=False
    )
    assert proc.returncode != 0
    assert expected in proc.stderr


def test_one_invalid_example_per_kind():
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in invalid_examples()}
    assert kinds == {"ApiProduct", "Probe", "Backend", "AlertRule", "MaintenanceWindow", "Incident"}


def test_status_is_declared_by_each_crd(cluster):
    """kubectl explain reads the published schema: the status fields users rely on are there."""
    for path in (
        "apiproduct.status.versions",
        "probe.status.lastFailure",
        "backend.status.impact",
        "alertrule.status.alerts",
        "maintenancewindow.status.nextStart",
        "incident.status.notices",
    ):
        proc = cluster.kubectl("explain", path, check=False)
        assert proc.returncode == 0, proc.stderr
