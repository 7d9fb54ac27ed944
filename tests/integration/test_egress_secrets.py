"""The egress policy and secret handling with the real operator and the real control plane:
receivers on a denied address are refused without a dial, probes cannot reach the operator's
own ports or the API server, a Secret with a trailing newline never shows, and a Secret that is
not opted in stalls its Probe until it is labelled."""

from __future__ import annotations

import base64
import json
import socket
import threading
from urllib.parse import urlsplit

import pytest

from tests.conftest import Operator, condition, eventually
from tests.helpers.demo import DemoAPI
from tests.integration.test_alerts import alerts, labelled_probe, rule
from tests.integration.test_probes import probe, status

DENIED = "127.0.0.2"  # a loopback address of its own, denied by PITWALL_PROBE_DENY below


class Listener:
    """A TCP server on ``DENIED`` that counts the connections it accepts (the proof of no dial)."""

    def __init__(self):
        self.sock = socket.create_server((DENIED, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def demo():
    with DemoAPI() as api:
        yield api


@pytest.fixture
def policed(cluster, namespace, tmp_path):
    op = Operator(
        cluster,
        tmp_path,
        namespace=namespace,
        extra_env={"PITWALL_DELIVERY_BASE_DELAY": "0.05", "PITWALL_PROBE_DENY": f"{DENIED}/32"},
    ).start()
    yield op
    op.stop()


def stalled(kubectl, kind: str, name: str) -> dict:
    return eventually(
        lambda: (
            lambda o: condition(o, "Stalled") if condition(o, "Stalled").get("status") == "True" else None
        )(kubectl.get(kind, name)),
        message=f"{kind} {name} Stalled",
    )


def test_receivers_on_a_denied_address_are_refused_without_a_dial(policed, kubectl, demo):
    with Listener() as target:
        kubectl.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "stringData": {"url": f"http://[::ffff:{DENIED}]:{target.port}/services/T0/B0/XYZ"},
                "metadata": {"name": "slack", "labels": {"pitwall.dev/use": "receivers"}},
            }
        )
        kubectl.apply(labelled_probe("orders", demo.url + "/isUp"))
        kubectl.apply(
            rule(
                "orders-down",
                [
                    {"name": "hook", "type": "webhook", "url": f"http://{DENIED}:{target.port}/hook"},
                    {"name": "hex", "type": "webhook", "url": f"http://0x7f000002:{target.port}/hook"},
                    {"name": "slack", "type": "slack", "secretRef": {"name": "slack", "key": "url"}},
                    {
                        "name": "pd",
                        "type": "pagerduty",
                        "url": f"http://2130706434:{target.port}",
                        "secretRef": {"name": "slack", "key": "url"},
                    },
                ],
            )
        )
        eventually(lambda: (kubectl.get("probe", "orders").get("status") or {}).get("state") == "Up")
        demo.admin("down", what="isUp")
        deliveries = eventually(
            lambda: (lambda ds: ds if len({d["receiver"] for d in ds}) == 4 else None)(
                [d for a in alerts(kubectl, "orders-down") for d in a.get("deliveries", [])]
            ),
            timeout=30,
            message="a delivery record per receiver",
        )
        assert target.accepted == 0
    for delivery in deliveries:
        assert not delivery["ok"] and delivery["attempts"] == 1, delivery  # refused once, never retried
        assert "refused" in delivery["error"] and "denylist" in delivery["error"], delivery
        assert "XYZ" not in delivery["error"]


def test_probes_cannot_reach_the_operators_ports_or_the_api_server(operator, kubectl, cluster):
    api = urlsplit(
        json.loads(cluster.kubectl("config", "view", "--minify", "-o", "json").stdout)["clusters"][0][
            "cluster"
        ]["server"]
    )
    targets = {
        "own-metrics": f"http://0:{operator.metrics_port}/metrics",
        "own-internal": f"http://[::ffff:127.0.0.1]:{operator.internal_port}/",
        "api-server": f"https://{api.hostname}:{api.port}/api/v1/secrets",
    }
    for name, url in targets.items():
        kubectl.apply(probe(name, {"url": url}))
    for name in targets:
        reason = stalled(kubectl, "probe", name)
        assert reason["reason"] == "TargetDenied", reason
        assert ("operator's own ports" if name.startswith("own") else "Kubernetes API server") in reason[
            "message"
        ]


def test_a_secret_with_a_trailing_newline_never_shows(operator, kubectl, demo):
    value = "t0ken-S3CRET-value-1234"
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",  # what kubectl create secret --from-file gives
            "metadata": {"name": "api", "labels": {"pitwall.dev/use": "probes"}},
            "data": {"token": base64.b64encode(f"{value}\n".encode()).decode()},
        }
    )
    kubectl.apply(
        probe(
            "leaky",
            {"url": demo.url},
            failureThreshold=1,
            steps=[
                {
                    "name": "call",
                    "request": {"path": "/isUp", "headers": {"X-Api-Key": "${secret:api/token}"}},
                }
            ],
        )
    )
    kubectl.apply(
        probe(
            "leaky-url",
            {"url": demo.url},
            steps=[{"name": "call", "request": {"path": "/isUp?key=${secret:api/token}"}}],
        )
    )
    st = eventually(
        lambda: (lambda s: s if s.get("state") == "Down" else None)(status(kubectl, "leaky")),
        message="Down: h11 refuses the header value",
    )
    assert "Illegal header value" in st["lastFailure"]["reason"]
    eventually(
        lambda: [e for e in kubectl.events("leaky") if e["reason"] == "ProbeDown"], message="ProbeDown"
    )
    assert stalled(kubectl, "probe", "leaky-url")["reason"] == "InvalidURL"  # httpx refuses the newline
    shown = (
        "".join(
            json.dumps(kubectl.get("probe", name)) + json.dumps(kubectl.events(name))
            for name in ("leaky", "leaky-url")
        )
        + operator.log()
    )
    for form in (value, value[4:12], base64.b64encode(value.encode()).decode()[4:16], "S3CRET"):
        assert form not in shown


def test_a_secret_not_opted_in_stalls_the_probe_until_labelled(operator, kubectl, demo, cluster):
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "homer"},
            "stringData": {"password": "d0nut"},
        }
    )
    kubectl.apply(
        probe(
            "login",
            {"url": demo.url},
            steps=[
                {
                    "name": "isup",
                    "request": {"path": "/isUp", "headers": {"X-Password": "${secret:homer/password}"}},
                }
            ],
        )
    )
    reason = stalled(kubectl, "probe", "login")
    assert reason["reason"] == "SecretNotOptedIn"
    command = f"kubectl -n {kubectl.namespace} label secret homer pitwall.dev/use=probes"
    assert reason["message"] == f"Secret homer is not opted in for probes: {command}"
    assert cluster.kubectl(*command.split()[1:]).returncode == 0
    eventually(lambda: status(kubectl, "login").get("state") == "Up", timeout=90, message="Up once opted in")
