"""Deletes that finish their work, and notices that never delay a window (issues 19 and 21).

Against the real control plane, with real receivers on 127.0.0.1: a deleted MaintenanceWindow
sends its cancellation and switches its Services back before it goes; a deleted AlertRule,
Probe or Backend resolves every alert it fired, also across an operator restart; a receiver
that stays down holds a deletion only for the grace period, then the loss is an Event; a window
with failing receivers opens and closes on time, a permanent refusal is tried once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import Operator, eventually
from tests.helpers.demo import DemoAPI
from tests.helpers.receiver import Recorder
from tests.integration.test_alerts import alerts, labelled_probe, rule
from tests.integration.test_backends import backend
from tests.integration.test_maintenance import window
from tests.integration.test_products import product, ready

FINALIZER = "pitwall.dev/cleanup"


@pytest.fixture
def demo():
    with DemoAPI() as api:
        yield api


@pytest.fixture
def quick_operator(cluster, namespace, tmp_path):
    """Short retry delays and a 6 s grace, so giving up happens within a test."""
    op = Operator(
        cluster,
        tmp_path,
        namespace=namespace,
        extra_env={
            "PITWALL_DELIVERY_BASE_DELAY": "0.05",
            "PITWALL_OUTBOX_RETRY_BASE": "0.5",
            "PITWALL_NOTICE_RETRY_BASE": "0.5",
            "PITWALL_FINALIZER_GRACE": "6",
        },
    ).start()
    yield op
    op.stop()


def kinds_sent(rec: Recorder, path: str) -> list[str]:
    return [r["body"].get("kind") for r in rec.paths(path)]


def gone(kubectl, kind: str, name: str) -> bool:
    return kubectl.get(kind, name) is None


def selector_role(kubectl) -> str:
    return kubectl.get("service", "payments-v2")["spec"]["selector"]["pitwall.dev/role"]


def events(kubectl, name: str, reason: str) -> list[dict]:
    return [e for e in kubectl.events(name) if e.get("reason") == reason]


def test_a_window_deleted_while_active_switches_back_and_says_it_is_over(quick_operator, kubectl):
    with Recorder() as rec:
        kubectl.apply(
            product(
                "payments",
                [{"name": "v2", "image": "registry.example.com/payments:2", "replicas": 1}],
                consumers=[{"name": "acme", "versions": ["v2"], "contact": {"webhook": rec.url + "/acme"}}],
            )
        )
        eventually(lambda: ready(kubectl, "payments"))
        kubectl.apply(window("upgrade", datetime.now(UTC) + timedelta(seconds=6), 600, rec.url))
        eventually(
            lambda: FINALIZER in kubectl.get("maintenancewindow", "upgrade")["metadata"].get("finalizers", [])
        )
        eventually(lambda: selector_role(kubectl) == "maintenance-page", timeout=30, message="page on")
        eventually(lambda: "start" in kinds_sent(rec, "/acme"), timeout=15)

        kubectl("delete", "maintenancewindow", "upgrade", "--wait=false")
        eventually(lambda: gone(kubectl, "maintenancewindow", "upgrade"), timeout=30, message="window gone")
        # before it went: the Service was back on the product's pods, the page removed, and the
        # consumer told that the maintenance is over (once)
        assert selector_role(kubectl) == "api"
        eventually(lambda: not kubectl.list("deployments", "pitwall.dev/role=maintenance-page"), timeout=10)
        assert kinds_sent(rec, "/acme") == ["advance", "start", "end"]
        assert kinds_sent(rec, "/ops") == ["advance", "start", "end"]


def test_a_window_deleted_before_it_starts_sends_a_cancellation(quick_operator, kubectl):
    with Recorder() as rec:
        kubectl.apply(
            product(
                "payments",
                [{"name": "v2", "image": "registry.example.com/payments:2", "replicas": 1}],
                consumers=[{"name": "acme", "versions": ["v2"], "contact": {"webhook": rec.url + "/acme"}}],
            )
        )
        eventually(lambda: ready(kubectl, "payments"))
        body = window("later", datetime.now(UTC) + timedelta(seconds=40), 600, rec.url)
        body["spec"]["notice"]["leadTime"] = "35s"  # the advance notice 5 s from now
        kubectl.apply(body)
        eventually(lambda: kinds_sent(rec, "/acme") == ["advance"], timeout=20, message="advance notice")
        kubectl("delete", "maintenancewindow", "later", "--wait=false")
        eventually(lambda: gone(kubectl, "maintenancewindow", "later"), timeout=30)
        assert kinds_sent(rec, "/acme") == ["advance", "cancelled"]
        assert "cancelled" in rec.paths("/acme")[1]["body"]["subject"]


def test_notices_never_delay_a_window_and_a_refusal_is_tried_once(quick_operator, kubectl):
    """Every receiver broken (503 for ever, 400, a closed port): the window still opens and
    closes on time; the 400 is tried once and recorded; the deletion is not held for ever."""
    with Recorder(script=[503] * 10_000) as down, Recorder(script=[400] * 10_000) as refuses:
        kubectl.apply(
            product(
                "payments",
                [{"name": "v2", "image": "registry.example.com/payments:2", "replicas": 1}],
                consumers=[
                    {"name": "acme", "versions": ["v2"], "contact": {"webhook": down.url + "/acme"}},
                    {"name": "bobs", "versions": ["v2"], "contact": {"webhook": refuses.url + "/b"}},
                    {"name": "gone", "versions": ["v2"], "contact": {"webhook": "http://127.0.0.1:9/closed"}},
                ],
            )
        )
        eventually(lambda: ready(kubectl, "payments"))
        start = datetime.now(UTC) + timedelta(seconds=6)
        kubectl.apply(window("upgrade", start, 10, down.url))
        seen = eventually(
            lambda: (lambda o: o if (o.get("status") or {}).get("phase") == "Active" else None)(
                kubectl.get("maintenancewindow", "upgrade")
            ),
            timeout=20,
            message="Active",
        )
        assert datetime.now(UTC) < start + timedelta(seconds=10)  # opened inside its own window
        assert any(e.get("pending") for e in seen["status"]["notices"])  # while notices are still owed
        eventually(
            lambda: kubectl.get("maintenancewindow", "upgrade")["status"]["phase"] == "Completed",
            timeout=25,
            message="Completed",
        )
        assert datetime.now(UTC) < start + timedelta(seconds=20)
        # the permanent refusal: one request per notice, recorded as failed
        notices = kubectl.get("maintenancewindow", "upgrade")["status"]["notices"]
        advance = next(n for n in notices if n["kind"] == "advance")
        assert "bobs" in advance.get("failed", []) and "400" in advance["error"]
        assert len([r for r in refuses.paths("/b") if r["body"]["kind"] == "advance"]) == 1
        # the transient ones are tried again (and again) meanwhile
        eventually(
            lambda: len([r for r in down.paths("/acme") if r["body"]["kind"] == "advance"]) >= 2, timeout=10
        )

        kubectl("delete", "maintenancewindow", "upgrade", "--wait=false")
        eventually(
            lambda: gone(kubectl, "maintenancewindow", "upgrade"),
            timeout=40,
            message="released after the grace period",
        )
        assert events(kubectl, "upgrade", "CleanupAbandoned") or events(kubectl, "upgrade", "NoticeFailed")


def test_a_deleted_rule_resolves_what_it_fired_even_across_a_restart(quick_operator, kubectl, demo):
    with Recorder() as rec:
        kubectl.apply(labelled_probe("orders", demo.url + "/isUp"))
        kubectl.apply(rule("orders-down", [{"name": "hook", "type": "webhook", "url": rec.url + "/hook"}]))
        eventually(lambda: (kubectl.get("probe", "orders").get("status") or {}).get("state") == "Up")
        eventually(
            lambda: FINALIZER in kubectl.get("alertrule", "orders-down")["metadata"].get("finalizers", [])
        )
        demo.admin("down", what="isUp")
        eventually(lambda: rec.paths("/hook"), timeout=20, message="firing")

        quick_operator.stop(kill=True)
        kubectl("delete", "alertrule", "orders-down", "--wait=false")
        assert kubectl.get("alertrule", "orders-down")["metadata"]["deletionTimestamp"]  # held for its work
        quick_operator.start()
        eventually(lambda: gone(kubectl, "alertrule", "orders-down"), timeout=30, message="rule gone")
        statuses = [r["body"]["status"] for r in rec.paths("/hook")]
        assert statuses == ["firing", "resolved"]


@pytest.mark.parametrize("kind", ["probe", "backend"])
def test_deleting_the_object_of_a_firing_alert_resolves_it_first(quick_operator, kubectl, demo, kind):
    with Recorder() as rec:
        kubectl.apply(labelled_probe("orders", demo.url + "/isUp"))
        target = "orders"
        if kind == "backend":
            body = backend("ledger", demo.url + "/isUp")
            body["metadata"]["labels"] = {"tier": "revenue-critical"}
            kubectl.apply(body)
            target = "ledger"
        kubectl.apply(
            rule(
                "down",
                [{"name": "hook", "type": "webhook", "url": rec.url + "/hook"}],
                selector={
                    "kinds": ["Backend" if kind == "backend" else "Probe"],
                    "matchLabels": {"tier": "revenue-critical"},
                },
                when={
                    "condition": "Available" if kind == "backend" else "Ready",
                    "status": "False",
                    "for": "1s",
                },
            )
        )
        eventually(lambda: FINALIZER in (kubectl.get(kind, target)["metadata"].get("finalizers") or []))
        demo.admin("down", what="isUp")
        eventually(
            lambda: [a for a in alerts(kubectl, "down") if a["state"] == "firing"] and rec.paths("/hook"),
            timeout=30,
            message="firing",
        )
        kubectl("delete", kind, target, "--wait=false")
        eventually(lambda: gone(kubectl, kind, target), timeout=30, message=f"{kind} gone")
        eventually(
            lambda: [r["body"]["status"] for r in rec.paths("/hook")] == ["firing", "resolved"], timeout=20
        )
        record = alerts(kubectl, "down")[0]
        assert record["state"] == "resolved" and not record.get("outstanding")
        assert json.dumps(rec.paths("/hook")[1]["body"]).count(target) >= 1
