"""Secrets are used only when their owner opted them in (``pitwall.dev/use``): otherwise the
object using them is Stalled with the command that opts in. Through the in-memory API."""

from __future__ import annotations

import base64

import pytest
from tests.unit.kubeapi import KubeAPI, condition, runtime

from pitwall.alerts import reconcile as alerts
from pitwall.kube import SecretNotOptedIn
from pitwall.probes import reconcile as probes
from pitwall.vocabulary import SECRET_USE_LABEL, opt_in_problem

NS = "shop"


def secret(name: str, use: str | None, **data: str) -> dict:
    labels = {SECRET_USE_LABEL: use} if use else {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


@pytest.mark.parametrize(
    ("use", "wanted", "problem"),
    [
        ("probes", "probes", None),
        ("receivers", "receivers", None),
        ("all", "probes", None),
        ("all", "receivers", None),
        (
            None,
            "probes",
            "Secret tok is not opted in for probes: kubectl -n shop label secret tok pitwall.dev/use=probes",
        ),
        (
            "receivers",
            "probes",
            "Secret tok is opted in for receivers, not probes: kubectl -n shop label secret tok pitwall.dev/use=all --overwrite",
        ),
        (
            "yes",
            "receivers",
            "Secret tok is opted in for yes, not receivers: kubectl -n shop label secret tok pitwall.dev/use=all --overwrite",
        ),
    ],
)
def test_opt_in_problem(use, wanted, problem):
    assert opt_in_problem(secret("tok", use), wanted) == problem


async def test_read_secret_refuses_a_secret_not_opted_in():
    api = KubeAPI()
    api.put(secret("plain", None, token="t0ken-value\n"))
    api.put(secret("mine", "probes", token="t0ken-value\n"))
    kube = api.kube()
    with pytest.raises(SecretNotOptedIn) as err:
        await kube.read_secret(NS, "plain", "token", use="probes")
    assert err.value.reason == "SecretNotOptedIn"
    assert "kubectl -n shop label secret plain pitwall.dev/use=probes" in err.value.message
    assert await kube.read_secret(NS, "mine", "token", use="probes") == "t0ken-value\n"
    with pytest.raises(SecretNotOptedIn):
        await kube.read_secret(NS, "mine", "token", use="receivers")
    assert await kube.read_secret(NS, "absent", "token", use="probes") is None


async def test_a_probe_with_a_secret_not_opted_in_is_stalled_with_the_command():
    api = KubeAPI()
    api.put(secret("creds", None, password="hunter2-long"))
    api.put(
        {
            "apiVersion": "pitwall.dev/v1alpha1",
            "kind": "Probe",
            "metadata": {"name": "login", "namespace": NS},
            "spec": {
                "target": {"url": "http://127.0.0.1:9/"},
                "steps": [
                    {"name": "login", "request": {"method": "POST", "body": "${secret:creds/password}"}}
                ],
            },
        }
    )
    rt = runtime(api)
    await probes.reconcile(rt, NS, "login")
    stalled = condition(api.get("Probe", NS, "login"), "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "SecretNotOptedIn")
    assert "kubectl -n shop label secret creds pitwall.dev/use=probes" in stalled["message"]


async def test_an_alert_rule_with_a_receiver_secret_not_opted_in_is_stalled():
    api = KubeAPI()
    api.put(secret("hook", "probes", url="https://hooks.example/abc"))  # opted in, but for probes
    api.put(
        {
            "apiVersion": "pitwall.dev/v1alpha1",
            "kind": "AlertRule",
            "metadata": {"name": "down", "namespace": NS},
            "spec": {
                "severity": "critical",
                "selector": {"kinds": ["Probe"]},
                "receivers": [
                    {"name": "ops", "type": "webhook", "secretRef": {"name": "hook", "key": "url"}}
                ],
            },
        }
    )
    rt = runtime(api)
    await alerts.reconcile(rt, NS, "down")
    stalled = condition(api.get("AlertRule", NS, "down"), "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "SecretNotOptedIn")
    assert stalled["message"] == (
        "receiver ops: Secret hook is opted in for probes, not receivers: "
        "kubectl -n shop label secret hook pitwall.dev/use=all --overwrite"
    )


async def test_a_window_whose_notice_secret_is_not_opted_in_is_stalled_but_still_scheduled(monkeypatch):
    from datetime import timedelta

    from tests.unit.kubeapi import Clock

    from pitwall import durations
    from pitwall.maintenance import reconcile as maintenance

    clock = Clock()
    monkeypatch.setattr(durations, "now", clock)
    api = KubeAPI()
    api.put(secret("relay", None, url="smtp://pitwall:relay-password@mail.example:587"))
    api.put(
        {
            "apiVersion": "pitwall.dev/v1alpha1",
            "kind": "MaintenanceWindow",
            "metadata": {"name": "upgrade", "namespace": NS},
            "spec": {
                "reason": "upgrade",
                "maintenancePage": False,
                "schedule": {"start": durations.rfc3339(clock.moment + timedelta(days=3)), "duration": "1h"},
                "targets": {"apiProducts": {"names": ["orders"]}},
                "notice": {"leadTime": "1d", "consumerEmail": {"secretRef": {"name": "relay", "key": "url"}}},
            },
        }
    )
    rt = runtime(api)
    wake = await maintenance.reconcile(rt, NS, "upgrade")
    window = api.get("MaintenanceWindow", NS, "upgrade")
    assert window["status"]["phase"] == "Scheduled"
    stalled = condition(window, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "SecretNotOptedIn")
    assert stalled["message"] == (
        "notices cannot be sent: Secret relay is not opted in for receivers: "
        "kubectl -n shop label secret relay pitwall.dev/use=receivers"
    )
    assert wake is not None and wake <= 61  # looked at again: Secrets are not watched

    api.put(secret("relay", "receivers", url="smtp://pitwall:relay-password@mail.example:587"))
    await maintenance.reconcile(rt, NS, "upgrade")
    assert condition(api.get("MaintenanceWindow", NS, "upgrade"), "Stalled")["status"] == "False"
