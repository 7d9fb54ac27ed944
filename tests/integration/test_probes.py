"""Probe against the real control plane and real local HTTP servers."""

from __future__ import annotations

import json
import re

import pytest

from pitwall.demo import make_app
from pitwall.probes.stats import decode_runs
from pitwall_testing.pods import PodServers
from tests.conftest import condition, eventually
from tests.helpers.demo import DemoAPI
from tests.integration.test_products import product, ready


@pytest.fixture
def demo():
    with DemoAPI() as api:
        yield api


def probe(name: str, target: dict, **spec) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Probe",
        "metadata": {"name": name},
        "spec": {"target": target, "interval": "1s", "timeout": "1s", **spec},
    }


def status(kubectl, name) -> dict:
    return (kubectl.get("probe", name) or {}).get("status") or {}


def oauth_steps() -> list[dict]:
    return [
        {
            "name": "token",
            "request": {
                "method": "POST",
                "path": "/oauth/token",
                "form": {
                    "grant_type": "password",
                    "username": "homer",
                    "password": "${secret:homer/password}",
                },
            },
            "expect": {"status": [200], "json": [{"path": "$.token_type", "equals": "Bearer"}]},
            "capture": {"token": "$.access_token"},
        },
        {
            "name": "profile",
            "request": {"path": "/accounts/me", "headers": {"Authorization": "Bearer ${token}"}},
            "expect": {"status": [200]},
            "capture": {"accountId": "$.id"},
        },
        {
            "name": "balance",
            "request": {
                "path": "/accounts/${accountId}/balance",
                "headers": {"Authorization": "Bearer ${token}"},
            },
            "expect": {"status": [200], "json": [{"path": "$.currency", "exists": True}]},
        },
    ]


def test_thresholds_correlation_and_events(operator, kubectl, demo):
    kubectl.apply(probe("isup", {"url": demo.url + "/isUp"}, failureThreshold=3, successThreshold=2))
    eventually(lambda: status(kubectl, "isup").get("state") == "Up", message="Up")
    kubectl("wait", "--for=condition=Ready", "probe/isup", "--timeout=10s")

    demo.admin("down", what="isUp")
    st = eventually(
        lambda: (lambda s: s if s.get("state") == "Down" else None)(status(kubectl, "isup")), message="Down"
    )
    assert st["consecutiveFailures"] == 3  # Down exactly at the threshold, not before
    failure = st["lastFailure"]
    assert failure["httpStatus"] == 503 and failure["step"]
    # the failing request's correlation id is in status, in the Event and in the API's own log
    seen = [r["correlationId"] for r in demo.requests()]
    assert failure["correlationId"] in seen
    down = eventually(lambda: [e for e in kubectl.events("isup") if e["reason"] == "ProbeDown"])
    assert failure["correlationId"] in down[0]["message"]
    assert condition(kubectl.get("probe", "isup"), "Ready")["status"] == "False"

    demo.admin("up")
    st = eventually(lambda: (lambda s: s if s.get("state") == "Up" else None)(status(kubectl, "isup")))
    assert st["consecutiveSuccesses"] >= 2
    assert 0 < st["availability"]["last1h"] < 100
    # every request carried a fresh correlation id and a W3C traceparent
    recent = [r for r in demo.requests() if r["path"] == "/isUp"][-5:]
    assert len({r["correlationId"] for r in recent}) == len(recent)
    assert all(r["traceparent"].startswith("00-") for r in recent)

    # what Prometheus scrapes: per-probe series with bounded labels (never the URL), and the
    # status writes among the operator's requests to the API server
    text = operator.metrics()  # labels come in alphabetical order
    assert re.search(r'^pitwall_probe_up\{kind="Probe",name="isup",namespace="[^"]+"\} 1\.0$', text, re.M)
    assert re.search(
        r'^pitwall_probe_step_duration_seconds\{kind="Probe",name="isup",namespace="[^"]+",'
        r'step="[^"]+"\} \d',
        text,
        re.M,
    )
    # step durations as one histogram per kind, namespace and step (not one per probe)
    assert re.search(
        r'^pitwall_probe_duration_seconds_count\{kind="Probe",namespace="[^"]+",step="[^"]+"\} [1-9]',
        text,
        re.M,
    )
    assert demo.url not in text and "127.0.0.1" not in text
    patches = re.search(
        r'^pitwall_kube_requests_total\{code="200",method="PATCH",resource="probes/status"\} '
        r"([0-9.e+]+)$",
        text,
        re.M,
    )
    assert patches and float(patches[1]) >= 2  # at least the Up and the Down transitions


def test_oauth_flow_passes_and_fails_at_the_right_step(operator, kubectl, demo):
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "homer", "labels": {"pitwall.dev/use": "probes"}},
            "stringData": {"password": "d0nut"},
        }
    )
    kubectl.apply(probe("oauth", {"url": demo.url}, steps=oauth_steps(), failureThreshold=1))
    eventually(lambda: status(kubectl, "oauth").get("state") == "Up", message="flow passes")
    demo.admin("down", what="token", status=401)
    st = eventually(lambda: (lambda s: s if s.get("state") == "Down" else None)(status(kubectl, "oauth")))
    assert st["lastFailure"]["step"] == "token"
    assert st["lastFailure"]["httpStatus"] == 401
    assert "401" in st["lastFailure"]["reason"]
    # the secret never shows in status or events
    everything = json.dumps(kubectl.get("probe", "oauth")) + json.dumps(kubectl.events("oauth"))
    assert "d0nut" not in everything


def test_metadata_address_is_refused(operator, kubectl):
    kubectl.apply(probe("imds", {"url": "http://169.254.169.254/latest/meta-data/"}))
    obj = eventually(
        lambda: (lambda o: o if condition(o, "Stalled").get("status") == "True" else None)(
            kubectl.get("probe", "imds")
        )
    )
    assert condition(obj, "Stalled")["reason"] == "TargetDenied"
    assert "169.254.169.254" in condition(obj, "Stalled")["message"]


def test_missing_secret_and_product_stall_with_a_reason(operator, kubectl):
    kubectl.apply(
        probe(
            "nosecret",
            {"url": "http://127.0.0.1:9/"},
            steps=[
                {"name": "login", "request": {"headers": {"Authorization": "Basic ${secret:absent/key}"}}}
            ],
        )
    )
    kubectl.apply(probe("noproduct", {"apiProduct": {"name": "ghost", "version": "v1"}}))
    for name, reason in (("nosecret", "SecretNotFound"), ("noproduct", "ProductNotFound")):
        obj = eventually(
            lambda n=name: (lambda o: o if condition(o, "Stalled").get("status") == "True" else None)(
                kubectl.get("probe", n)
            )
        )
        assert condition(obj, "Stalled")["reason"] == reason


def test_restart_keeps_counts_and_availability(operator, kubectl, demo):
    kubectl.apply(probe("durable", {"url": demo.url + "/isUp"}, failureThreshold=50))
    demo.admin("down", what="isUp")
    eventually(lambda: status(kubectl, "durable").get("consecutiveFailures", 0) >= 1)
    eventually(lambda: len([r for r in demo.requests() if r["path"] == "/isUp"]) >= 5, message="more runs")
    operator.stop()  # a graceful stop flushes what coalescing held back
    before = status(kubectl, "durable")
    assert before["consecutiveFailures"] >= 3  # not 1: the runs after the first write were flushed
    operator.start()
    after = eventually(
        lambda: (lambda s: s if s.get("consecutiveFailures", 0) > before["consecutiveFailures"] else None)(
            status(kubectl, "durable")
        ),
        timeout=90,
        message="counts resumed",
    )
    assert after["availability"]["last1h"] == 0
    runs_before, runs_after = (
        sum(total for _, total in decode_runs(s["history"]["hourly"]["runs"])) for s in (before, after)
    )
    new_runs = after["consecutiveFailures"] - before["consecutiveFailures"]
    assert runs_after >= runs_before + new_runs  # history kept and added to, not restarted


def test_probe_on_an_api_product_travels_the_real_chain(operator, kubectl, cluster):
    kubectl.apply(
        product("payments", [{"name": "v2", "image": "registry.example.com/payments:2", "replicas": 2}])
    )
    eventually(lambda: ready(kubectl, "payments"))
    servers = PodServers(
        str(cluster.kubeconfig),
        lambda pod: make_app(),
        selector="pitwall.dev/product=payments",
        namespace=kubectl.namespace,
    ).start_thread()
    try:
        kubectl.apply(
            probe(
                "payments-v2",
                {"apiProduct": {"name": "payments", "version": "v2"}},
                steps=[{"name": "isUp", "request": {"path": "/isUp"}}],
                failureThreshold=2,
            )
        )
        st = eventually(
            lambda: (lambda s: s if s.get("state") == "Up" else None)(status(kubectl, "payments-v2"))
        )
        assert st["target"].startswith("http://127.244.")  # a ready endpoint, rewritten to its twin
        # scale the version to zero: no ready endpoints, the probe goes Down
        kubectl.patch(
            "apiproduct",
            "payments",
            {
                "spec": {
                    "versions": [{"name": "v2", "image": "registry.example.com/payments:2", "replicas": 0}]
                }
            },
        )
        eventually(lambda: status(kubectl, "payments-v2").get("state") == "Down", timeout=30)
    finally:
        servers.stop()


def test_status_follows_a_spec_change_and_a_new_probes_first_verdict(operator, kubectl, demo):
    """Issue 19: observedGeneration lagged a spec change by up to 62 s (the steady-state write
    slot is 60 s), and new probes showed Ready=Unknown for a minute although their first run had
    passed. Both are now written at once; the 20 s bound here is a third of that slot."""
    names = [f"fresh-{i}" for i in range(6)]
    for name in names:
        kubectl.apply(probe(name, {"url": demo.url + "/isUp"}, interval="5s"))
    for name in names:
        eventually(
            lambda n=name: condition(kubectl.get("probe", n), "Ready").get("status") == "True",
            timeout=20,
            message=f"{name}'s first verdict in status",
        )

    kubectl.patch("probe", "fresh-0", {"spec": {"interval": "7s"}})

    def observed():
        obj = kubectl.get("probe", "fresh-0")
        if obj["metadata"]["generation"] != 2 or obj["status"].get("observedGeneration") != 2:
            return None
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
        return ready if ready.get("observedGeneration") == 2 else None

    ready = eventually(observed, timeout=20, message="observedGeneration 2 with its conditions")
    assert ready["status"] == "True"
    kubectl("wait", "--for=condition=Ready", "probe/fresh-0", "--timeout=5s")


def test_history_stays_whole_when_writes_send_only_what_changed(operator, kubectl, demo):
    # Every steady write sends only what changed since the last (issue 18); what the API server
    # holds must still be the whole status: every run counted once in both series.
    kubectl.apply(probe("counted", {"url": demo.url + "/isUp"}))
    eventually(lambda: status(kubectl, "counted").get("consecutiveSuccesses", 0) >= 8, timeout=90)
    operator.stop()  # flushes the runs coalescing held back
    final = status(kubectl, "counted")
    runs = final["consecutiveSuccesses"]
    hourly = decode_runs(final["history"]["hourly"]["runs"])
    daily = decode_runs(final["history"]["daily"]["runs"])
    assert (sum(ok for ok, _ in hourly), sum(total for _, total in hourly)) == (runs, runs)
    assert (sum(ok for ok, _ in daily), sum(total for _, total in daily)) == (runs, runs)
    assert len([r for r in demo.requests() if r["path"] == "/isUp"]) >= runs
    assert final["state"] == "Up" and final["target"] == demo.url + "/isUp"
    assert final["availability"]["last1h"] == 100 and final["latency"]["p50Ms"] > 0
    assert final["lastRun"]["result"] == "Success" and final["observedGeneration"] == 1
    assert condition({"status": final}, "Ready")["status"] == "True"
    operator.start()
