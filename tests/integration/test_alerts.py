"""AlertRule against the real control plane, real local receivers and a real SMTP server."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Operator, condition, eventually
from tests.helpers.demo import DemoAPI
from tests.helpers.receiver import Recorder
from tests.helpers.smtp import plain_text, smtp_server
from tests.integration.test_probes import probe


@pytest.fixture
def demo():
    with DemoAPI() as api:
        yield api


@pytest.fixture
def fast_operator(cluster, namespace, tmp_path):
    op = Operator(
        cluster,
        tmp_path,
        namespace=namespace,
        extra_env={"PITWALL_DELIVERY_BASE_DELAY": "0.05", "PITWALL_OUTBOX_RETRY_BASE": "0.5"},
    ).start()
    yield op
    op.stop()


def secret(name: str, **data) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "stringData": data,
        "metadata": {"name": name, "labels": {"pitwall.dev/use": "receivers"}},
    }


def rule(name: str, receivers: list[dict], **spec) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "AlertRule",
        "metadata": {"name": name},
        "spec": {
            "severity": "critical",
            "selector": {"kinds": ["Probe"], "matchLabels": {"tier": "revenue-critical"}},
            "when": {"condition": "Ready", "status": "False", "for": "1s"},
            "receivers": receivers,
            "repeatInterval": "1h",
            **spec,
        },
    }


def labelled_probe(name: str, url: str) -> dict:
    body = probe(name, {"url": url}, failureThreshold=2)
    body["metadata"]["labels"] = {"tier": "revenue-critical"}
    return body


def alerts(kubectl, name) -> list[dict]:
    return ((kubectl.get("alertrule", name) or {}).get("status") or {}).get("alerts") or []


def test_fire_escalate_acknowledge_resolve(fast_operator, kubectl, demo, cluster):
    with Recorder() as rec:
        kubectl.apply(secret("teams", url=rec.url + "/teams"))
        kubectl.apply(secret("pagerduty", key="R0UT1NGKEY"))
        kubectl.apply(labelled_probe("checkout", demo.url + "/isUp"))
        kubectl.apply(
            rule(
                "checkout-down",
                [
                    {"name": "ops", "type": "msteams", "secretRef": {"name": "teams", "key": "url"}},
                    {
                        "name": "pd",
                        "type": "pagerduty",
                        "secretRef": {"name": "pagerduty", "key": "key"},
                        "url": rec.url + "/pagerduty",
                    },
                    {"name": "lead", "type": "webhook", "url": rec.url + "/lead", "escalationOnly": True},
                    {
                        "name": "team",
                        "type": "webhook",
                        "url": rec.url + "/whole-team",
                        "escalationOnly": True,
                    },
                ],
                escalation=[{"after": "3s", "receivers": ["lead"]}, {"after": "12s", "receivers": ["team"]}],
            )
        )
        eventually(lambda: (kubectl.get("probe", "checkout").get("status") or {}).get("state") == "Up")
        kubectl("wait", "--for=condition=Ready", "alertrule/checkout-down", "--timeout=10s")

        demo.admin("down", what="isUp")
        eventually(lambda: rec.paths("/teams") and rec.paths("/pagerduty"), message="first notifications")
        key = alerts(kubectl, "checkout-down")[0]["key"]
        card = rec.paths("/teams")[0]["body"]
        assert card["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
        trigger = rec.paths("/pagerduty")[0]
        assert trigger["path"] == "/pagerduty/v2/enqueue"
        assert trigger["body"]["event_action"] == "trigger" and trigger["body"]["dedup_key"] == key
        assert trigger["body"]["payload"]["severity"] == "critical"
        alert = alerts(kubectl, "checkout-down")[0]
        assert alert["state"] == "firing" and alert["ackDeadline"] > alert["since"]
        obj = kubectl.get("alertrule", "checkout-down")
        assert condition(obj, "Firing")["status"] == "True"

        eventually(lambda: rec.paths("/lead"), timeout=15, message="escalated to the lead")
        assert len(rec.paths("/teams")) == 1 and len(rec.paths("/pagerduty")) == 1  # no duplicates
        proc = cluster.kubectl(
            "--namespace",
            kubectl.namespace,
            "annotate",
            "alertrule",
            "checkout-down",
            f"pitwall.dev/acknowledge={key}",
            "pitwall.dev/acknowledged-by=homer",
        )
        assert proc.returncode == 0
        eventually(lambda: alerts(kubectl, "checkout-down")[0].get("acknowledgedBy") == "homer")
        annotations = kubectl.get("alertrule", "checkout-down")["metadata"].get("annotations") or {}
        assert "pitwall.dev/acknowledge" not in annotations  # consumed
        time.sleep(12)  # the second step (12s) would have been due by now
        assert rec.paths("/whole-team") == []

        demo.admin("up")
        eventually(
            lambda: (
                len(rec.paths("/teams")) == 2
                and len(rec.paths("/pagerduty")) == 2
                and len(rec.paths("/lead")) == 2
            ),
            timeout=20,
            message="resolves to everyone paged",
        )
        assert rec.paths("/pagerduty")[1]["body"]["event_action"] == "resolve"
        assert rec.paths("/pagerduty")[1]["body"]["dedup_key"] == key
        assert rec.paths("/lead")[1]["body"]["status"] == "resolved"  # Alertmanager v4 webhook
        eventually(lambda: alerts(kubectl, "checkout-down")[0]["state"] == "resolved")


def test_retries_until_delivered_and_restart_loses_nothing(fast_operator, kubectl, demo):
    with Recorder(script=[500] * 5) as rec:
        kubectl.apply(labelled_probe("orders", demo.url + "/isUp"))
        kubectl.apply(rule("orders-down", [{"name": "hook", "type": "webhook", "url": rec.url + "/hook"}]))
        eventually(lambda: (kubectl.get("probe", "orders").get("status") or {}).get("state") == "Up")
        demo.admin("down", what="isUp")
        delivery = eventually(
            lambda: [
                d for a in alerts(kubectl, "orders-down") for d in a.get("deliveries", []) if d.get("ok")
            ],
            timeout=30,
            message="delivered after retries",
        )
        assert delivery[0]["event"] == "firing"
        tries = [d for a in alerts(kubectl, "orders-down") for d in a.get("deliveries", [])]
        assert sum(d["attempts"] for d in tries) == 6 and [d["ok"] for d in tries][-1]  # 5 x 500, then 200
        assert len(rec.paths("/hook")) == 6

        fast_operator.stop(kill=True)  # mid-alert, no goodbye
        fast_operator.start()
        time.sleep(3)
        assert len(rec.paths("/hook")) == 6  # no duplicate firing after the restart
        demo.admin("up")
        eventually(lambda: len(rec.paths("/hook")) == 7, timeout=20, message="resolve after restart")
        assert rec.paths("/hook")[6]["body"]["status"] == "resolved"
        time.sleep(2)
        assert len(rec.paths("/hook")) == 7


def test_email_receiver_through_real_smtp(fast_operator, kubectl, demo):
    with smtp_server() as (port, received):
        kubectl.apply(secret("smtp", url=f"smtp://127.0.0.1:{port}"))
        kubectl.apply(labelled_probe("ledger", demo.url + "/isUp"))
        kubectl.apply(
            rule(
                "ledger-down",
                [
                    {
                        "name": "mail",
                        "type": "email",
                        "secretRef": {"name": "smtp", "key": "url"},
                        "email": {"to": ["oncall@example.com"], "from": "pitwall@example.com"},
                    }
                ],
            )
        )
        eventually(lambda: (kubectl.get("probe", "ledger").get("status") or {}).get("state") == "Up")
        demo.admin("down", what="isUp")
        eventually(lambda: received, timeout=20, message="email arrived")
        mail = received[0]
        assert mail["To"] == "oncall@example.com"
        assert "ledger" in mail["Subject"]
        assert "pitwall.dev/acknowledge=" in plain_text(mail)  # how to acknowledge, in the mail


def test_missing_secret_stalls_with_a_reason(fast_operator, kubectl):
    kubectl.apply(
        rule("broken", [{"name": "ops", "type": "slack", "secretRef": {"name": "absent", "key": "url"}}])
    )
    obj = eventually(
        lambda: (lambda o: o if condition(o, "Stalled").get("status") == "True" else None)(
            kubectl.get("alertrule", "broken")
        )
    )
    assert condition(obj, "Stalled")["reason"] == "SecretNotFound"
    assert "absent" in condition(obj, "Stalled")["message"]


def test_digest_goes_out_on_its_interval(fast_operator, kubectl, demo):
    with Recorder() as rec:
        kubectl.apply(labelled_probe("catalog", demo.url + "/isUp"))
        kubectl.apply(
            rule(
                "catalog-down",
                [
                    {"name": "hook", "type": "webhook", "url": rec.url + "/hook"},
                    {
                        "name": "summary",
                        "type": "webhook",
                        "url": rec.url + "/digest",
                        "escalationOnly": True,
                    },
                ],
                digest={"interval": "3s", "receivers": ["summary"]},
            )
        )
        eventually(lambda: len(rec.paths("/digest")) >= 2, timeout=30, message="two digests")
        body = rec.paths("/digest")[-1]["body"]
        assert body["rule"] == "catalog-down" and "live" in body["availability24h"]
        assert kubectl.get("alertrule", "catalog-down")["status"]["lastDigestAt"]
        assert rec.paths("/hook") == []  # a digest is not a page
