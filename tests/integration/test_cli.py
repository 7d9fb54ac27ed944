"""The pitwall CLI against the real control plane."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import eventually
from tests.helpers.demo import DemoAPI
from tests.helpers.receiver import Recorder
from tests.integration.test_alerts import alerts, labelled_probe, rule
from tests.integration.test_backends import pitwall
from tests.integration.test_probes import oauth_steps, probe


@pytest.fixture
def demo():
    with DemoAPI() as api:
        yield api


def test_status_and_windows(operator, kubectl, cluster, demo):
    kubectl.apply(probe("isup", {"url": demo.url + "/isUp"}, failureThreshold=1))
    start = (datetime.now(UTC) + timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    kubectl.apply(
        {
            "apiVersion": "pitwall.dev/v1alpha1",
            "kind": "MaintenanceWindow",
            "metadata": {"name": "upgrade"},
            "spec": {
                "reason": "Core banking upgrade",
                "schedule": {"start": start, "duration": "2h"},
                "targets": {"backends": ["core-banking"]},
            },
        }
    )
    eventually(lambda: (kubectl.get("probe", "isup").get("status") or {}).get("state") == "Up")
    eventually(
        lambda: (kubectl.get("maintenancewindow", "upgrade").get("status") or {}).get("phase") == "Scheduled"
    )
    rows = json.loads(pitwall(cluster, kubectl.namespace, "status", "-o", "json").stdout)
    assert {"kind": "Probe", "name": "isup", "ready": "True", "state": "Up"}.items() <= next(
        r for r in rows if r["name"] == "isup"
    ).items()
    demo.admin("down", what="isUp")
    eventually(lambda: (kubectl.get("probe", "isup").get("status") or {}).get("state") == "Down")
    out = pitwall(cluster, kubectl.namespace, "status", "--fail-on-problems")
    assert out.returncode == 2
    line = next(line for line in out.stdout.splitlines() if "isup" in line)
    assert "Down" in line and "correlation id" in line

    windows = json.loads(pitwall(cluster, kubectl.namespace, "windows", "-o", "json").stdout)
    assert windows[0]["name"] == "upgrade" and windows[0]["phase"] == "Scheduled"
    assert windows[0]["start"] == start
    assert "upgrade" in pitwall(cluster, kubectl.namespace, "windows").stdout


def test_probe_run_prints_every_step_with_secrets_masked(operator, kubectl, cluster, demo):
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "homer", "labels": {"pitwall.dev/use": "probes"}},
            "stringData": {"password": "d0nut"},
        }
    )
    kubectl.apply(probe("oauth", {"url": demo.url}, steps=oauth_steps()))
    out = pitwall(cluster, kubectl.namespace, "probe", "run", "oauth")
    assert out.returncode == 0, out.stderr
    assert "1. token: POST" in out.stdout and "3. balance: GET" in out.stdout
    assert "captured accountId = acc-42" in out.stdout
    assert "d0nut" not in out.stdout + out.stderr
    token_line = next(line for line in out.stdout.splitlines() if "captured token" in line)
    assert "***" in token_line  # a token is a secret too
    assert "running oauth (3 steps)" in out.stderr  # progress while it runs

    demo.admin("down", what="token", status=401)
    failed = json.loads(pitwall(cluster, kubectl.namespace, "probe", "run", "oauth", "-o", "json").stdout)
    assert failed["ok"] is False
    assert failed["steps"][0]["name"] == "token" and failed["steps"][0]["status"] == 401
    assert len(failed["steps"]) == 1  # the flow stops at the failing step


def test_ack_through_the_cli(operator, kubectl, cluster, demo):
    with Recorder() as rec:
        kubectl.apply(labelled_probe("orders", demo.url + "/isUp"))
        kubectl.apply(rule("orders-down", [{"name": "hook", "type": "webhook", "url": rec.url + "/hook"}]))
        eventually(lambda: (kubectl.get("probe", "orders").get("status") or {}).get("state") == "Up")
        demo.admin("down", what="isUp")
        key = eventually(
            lambda: [a["key"] for a in alerts(kubectl, "orders-down") if a["state"] == "firing"]
        )[0]
        assert pitwall(cluster, kubectl.namespace, "ack", "orders-down", "nonsense").returncode != 0
        out = pitwall(cluster, kubectl.namespace, "ack", "orders-down", key, "--by", "marge")
        assert out.returncode == 0, out.stderr
        eventually(lambda: alerts(kubectl, "orders-down")[0].get("acknowledgedBy") == "marge")
