"""MaintenanceWindow against the real control plane: kwok pods, real local servers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

from pitwall.maintenance.page import PageConfig, make_app
from pitwall.runtime import parse_rewrite, rewrite_address
from pitwall_testing.cluster import POD_ADDRESS_REWRITE
from pitwall_testing.pods import PodServers
from tests.conftest import condition, eventually
from tests.helpers.receiver import Recorder
from tests.integration.test_products import product, ready


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window(name: str, start: datetime, seconds: int, webhook: str, **extra) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "MaintenanceWindow",
        "metadata": {"name": name},
        "spec": {
            "reason": "Core banking upgrade",
            "schedule": {"start": stamp(start), "duration": f"{seconds}s"},
            "targets": {"apiProducts": {"names": ["payments"]}},
            "notice": {
                "leadTime": "5s",
                "notifyConsumers": True,
                "receivers": [{"name": "ops", "type": "webhook", "url": webhook + "/ops"}],
            },
            **extra,
        },
    }


def page_env(pod: dict) -> dict:
    container = pod["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def endpoints(kubectl, service: str) -> list[str]:
    slices = kubectl.list("endpointslices", f"kubernetes.io/service-name={service}")
    return [
        addr
        for s in slices
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
        for addr in e["addresses"]
    ]


def payments_probe(**spec) -> dict:
    """The revenue-critical isUp probe on payments v2 that the alerting journeys page on."""
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Probe",
        "metadata": {"name": "payments-v2", "labels": {"tier": "revenue-critical"}},
        "spec": {
            "target": {"apiProduct": {"name": "payments", "version": "v2"}},
            "interval": "1s",
            "timeout": "1s",
            "steps": [{"name": "isUp", "request": {"path": "/isUp"}}],
            **spec,
        },
    }


def test_window_switches_service_to_the_page_notifies_and_ends_on_time(operator, kubectl, cluster):
    with Recorder() as receiver:
        kubectl.apply(
            product(
                "payments",
                [{"name": "v2", "image": "registry.example.com/payments:2", "replicas": 2}],
                maintenancePage={
                    "title": "Payments API maintenance",
                    "message": "Back soon after the core banking upgrade",
                    "retryAfter": "10m",
                },
                consumers=[
                    {"name": "acme", "versions": ["v2"], "contact": {"webhook": receiver.url + "/acme"}}
                ],
            )
        )
        eventually(lambda: ready(kubectl, "payments"))
        api_endpoints = eventually(
            lambda: (lambda e: sorted(e) if len(e) == 2 else None)(endpoints(kubectl, "payments-v2")),
            message="both pods in the EndpointSlice",
        )
        start = datetime.now(UTC) + timedelta(seconds=8)
        kubectl.apply(window("upgrade", start, 25, receiver.url))

        # advance notice (leadTime 5s > time left) to the consumer and the window's receiver
        eventually(lambda: receiver.paths("/acme") and receiver.paths("/ops"), message="advance notices")
        assert "Core banking upgrade" in json.dumps(receiver.paths("/acme")[0]["body"])
        # at start the Service selects the page pods: its endpoints are theirs
        svc = eventually(
            lambda: (
                lambda s: s if s["spec"]["selector"]["pitwall.dev/role"] == "maintenance-page" else None
            )(kubectl.get("service", "payments-v2")),
            timeout=30,
        )
        assert svc["spec"]["selector"]["pitwall.dev/version"] == "v2"
        switched_at = datetime.now(UTC)
        assert switched_at >= start - timedelta(seconds=1)
        page_pods = kubectl.list("pods", "pitwall.dev/role=maintenance-page")
        assert page_pods
        eventually(
            lambda: (
                sorted(endpoints(kubectl, "payments-v2"))
                == sorted(p["status"]["podIP"] for p in page_pods if p["status"].get("podIP"))
            ),
            timeout=20,
        )
        # the product's own pods keep running untouched
        assert kubectl.get("deployment", "payments-v2")["status"]["readyReplicas"] == 2
        obj = kubectl.get("apiproduct", "payments")
        assert condition(obj, "InMaintenance")["status"] == "True"
        assert obj["status"]["state"] == "Maintenance"

        # a real page server bound to a page pod's address answers as the Deployment would
        servers = PodServers(
            str(cluster.kubeconfig),
            lambda pod: make_app(PageConfig.from_env(page_env(pod))),
            selector="pitwall.dev/role=maintenance-page",
            namespace=kubectl.namespace,
        ).start_thread()
        try:
            address = rewrite_address(
                endpoints(kubectl, "payments-v2")[0], parse_rewrite(POD_ADDRESS_REWRITE)
            )
            port = page_pods[0]["spec"]["containers"][0]["ports"][0]["containerPort"]

            def fetch():
                request = urllib.request.Request(
                    f"http://{address}:{port}/payments/v2/charges", headers={"Accept": "application/json"}
                )
                try:
                    urllib.request.urlopen(request, timeout=2)
                except urllib.error.HTTPError as err:
                    return err.code, dict(err.headers), json.loads(err.read())
                return None

            code, headers, body = eventually(fetch, timeout=15, message="page server answers")
            assert code == 503
            assert 0 < int(headers["Retry-After"]) <= 600
            assert body["title"] == "Payments API maintenance"
        finally:
            servers.stop()

        mw = kubectl.get("maintenancewindow", "upgrade")
        assert mw["status"]["phase"] == "Active"
        assert condition(mw, "Active")["status"] == "True"
        # at the end: back to the product's pods, page removed, end notice sent
        eventually(
            lambda: kubectl.get("service", "payments-v2")["spec"]["selector"]["pitwall.dev/role"] == "api",
            timeout=30,
            message="switched back",
        )
        assert datetime.now(UTC) >= start + timedelta(seconds=24)
        eventually(lambda: kubectl.get("maintenancewindow", "upgrade")["status"]["phase"] == "Completed")
        eventually(lambda: not kubectl.list("deployments", "pitwall.dev/role=maintenance-page"), timeout=20)
        eventually(lambda: sorted(endpoints(kubectl, "payments-v2")) == api_endpoints, timeout=20)
        kinds = [n["kind"] for n in kubectl.get("maintenancewindow", "upgrade")["status"]["notices"]]
        assert kinds == ["advance", "start", "end"]
        assert len(receiver.paths("/acme")) == 3  # each notice once
        obj = eventually(lambda: ready(kubectl, "payments"))
        assert condition(obj, "InMaintenance")["status"] == "False"


def test_restart_mid_window_keeps_the_page_and_ends_on_time(operator, kubectl):
    with Recorder() as receiver:
        kubectl.apply(
            product("payments", [{"name": "v2", "image": "registry.example.com/payments:2", "replicas": 1}])
        )
        eventually(lambda: ready(kubectl, "payments"))
        start = datetime.now(UTC) + timedelta(seconds=6)  # leadTime 5s: enough notice
        kubectl.apply(window("upgrade", start, 14, receiver.url))
        eventually(
            lambda: (
                kubectl.get("service", "payments-v2")["spec"]["selector"]["pitwall.dev/role"]
                == "maintenance-page"
            ),
            timeout=30,
        )
        operator.stop()
        assert (
            kubectl.get("service", "payments-v2")["spec"]["selector"]["pitwall.dev/role"]
            == "maintenance-page"
        )
        operator.start()
        assert (
            kubectl.get("service", "payments-v2")["spec"]["selector"]["pitwall.dev/role"]
            == "maintenance-page"
        )
        eventually(
            lambda: kubectl.get("service", "payments-v2")["spec"]["selector"]["pitwall.dev/role"] == "api",
            timeout=40,
            message="ended after the restart",
        )
        assert datetime.now(UTC) >= start + timedelta(seconds=13)
        notices = kubectl.get("maintenancewindow", "upgrade")["status"]["notices"]
        assert [n["kind"] for n in notices] == ["advance", "start", "end"]  # none sent twice


def test_bad_schedule_is_refused_with_a_clear_message(kubectl):
    bad = window("bad", datetime.now(UTC) + timedelta(days=5), 60, "http://127.0.0.1:9")
    bad["spec"]["schedule"]["cron"] = "0 22 * * SAT"
    proc = kubectl("apply", "--server-side", "-f", "-", input=json.dumps(bad), check=False)
    assert proc.returncode != 0
    assert "schedule.start" in proc.stderr and "schedule.cron" in proc.stderr


def test_too_little_notice_is_refused_at_admission_unless_emergency(cluster, namespace, kubectl, tmp_path):
    from pitwall_testing.cluster import free_port
    from tests.conftest import Operator

    port = free_port()
    env = cluster.register_webhook(port)
    op = Operator(cluster, tmp_path, namespace, env, ["--webhook-port", str(port)]).start()
    try:
        soon = datetime.now(UTC) + timedelta(hours=2)
        body = window("hasty", soon, 3600, "http://127.0.0.1:9")
        del body["spec"]["notice"]["leadTime"]  # default: 72h
        proc = kubectl("apply", "--server-side", "-f", "-", input=json.dumps(body), check=False)
        assert proc.returncode != 0
        assert "consumers need 72h notice" in proc.stderr and "emergency: true" in proc.stderr
        body["spec"].update(emergency=True, emergencyReason="CVE-2026-1234 in the payment gateway")
        kubectl.apply(body)  # an emergency with a reason is let in
        eventually(
            lambda: (
                (kubectl.get("maintenancewindow", "hasty").get("status") or {}).get("phase") == "Scheduled"
            )
        )
    finally:
        op.stop()
        cluster.kubectl("delete", "validatingwebhookconfiguration", "pitwall.dev", check=False)


def test_without_the_webhook_a_hasty_window_never_opens(operator, kubectl):
    body = window("hasty", datetime.now(UTC) + timedelta(seconds=5), 30, "http://127.0.0.1:9")
    del body["spec"]["notice"]["leadTime"]
    kubectl.apply(body)
    obj = eventually(
        lambda: (lambda o: o if condition(o, "Stalled").get("status") == "True" else None)(
            kubectl.get("maintenancewindow", "hasty")
        )
    )
    assert condition(obj, "Stalled")["reason"] == "InsufficientNotice"
    assert obj["status"]["phase"] == "Scheduled"


def test_probes_say_maintenance_and_no_alert_fires(operator, kubectl, cluster):
    from pitwall.demo import make_app as demo_app
    from tests.integration.test_alerts import rule

    with Recorder() as rec:
        kubectl.apply(
            product("payments", [{"name": "v2", "image": "registry.example.com/payments:2", "replicas": 1}])
        )
        eventually(lambda: ready(kubectl, "payments"))
        servers = PodServers(
            str(cluster.kubeconfig),
            lambda pod: demo_app(),
            selector="pitwall.dev/product=payments",
            namespace=kubectl.namespace,
        ).start_thread()
        try:
            kubectl.apply(payments_probe(failureThreshold=1))
            kubectl.apply(
                rule("payments-down", [{"name": "hook", "type": "webhook", "url": rec.url + "/hook"}])
            )
            state = lambda: (kubectl.get("probe", "payments-v2").get("status") or {}).get("state")  # noqa: E731
            eventually(lambda: state() == "Up")
            start = datetime.now(UTC) + timedelta(seconds=6)
            kubectl.apply(window("upgrade", start, 12, rec.url))
            eventually(lambda: state() == "Maintenance", timeout=30, message="probe reports Maintenance")
            eventually(
                lambda: kubectl.get("maintenancewindow", "upgrade")["status"]["phase"] == "Completed",
                timeout=40,
            )
            eventually(lambda: state() == "Up", timeout=30, message="probe recovers after the window")
            assert rec.paths("/hook") == []  # nobody was paged for planned work
            records = ((kubectl.get("alertrule", "payments-down").get("status")) or {}).get("alerts") or []
            assert all(r["state"] != "firing" for r in records)
        finally:
            servers.stop()


def test_a_broken_maintenance_page_still_pages_someone(operator, kubectl, cluster):
    """checkMaintenancePage: served page -> the probe stays Up; no page server -> Down and an alert."""
    from pitwall.demo import make_app as demo_app
    from tests.integration.test_alerts import rule

    with Recorder() as rec:
        kubectl.apply(
            product("payments", [{"name": "v2", "image": "registry.example.com/payments:2", "replicas": 1}])
        )
        eventually(lambda: ready(kubectl, "payments"))
        # only the API pods answer; nothing serves the maintenance page pods (a broken page)
        servers = PodServers(
            str(cluster.kubeconfig),
            lambda pod: demo_app(),
            selector="pitwall.dev/product=payments,pitwall.dev/role=api",
            namespace=kubectl.namespace,
        ).start_thread()
        try:
            kubectl.apply(payments_probe(failureThreshold=2, checkMaintenancePage=True))
            kubectl.apply(
                rule("payments-down", [{"name": "hook", "type": "webhook", "url": rec.url + "/hook"}])
            )
            eventually(lambda: (kubectl.get("probe", "payments-v2").get("status") or {}).get("state") == "Up")
            kubectl.apply(window("upgrade", datetime.now(UTC) + timedelta(seconds=6), 20, rec.url))
            failure = eventually(
                lambda: (lambda s: s.get("lastFailure") if s.get("state") == "Down" else None)(
                    kubectl.get("probe", "payments-v2").get("status") or {}
                ),
                timeout=30,
                message="broken page -> Down",
            )
            assert failure["step"] == "maintenance-page"
            eventually(
                lambda: [r for r in rec.paths("/hook") if r["body"].get("status") == "firing"],
                timeout=20,
                message="someone is paged",
            )
        finally:
            servers.stop()


def test_consumer_email_notice_and_dst_aware_next_start(operator, kubectl):
    """Consumers with an email get the notice through a real SMTP server; a recurring window in a
    time zone computes its next start across the coming daylight-saving change."""
    from tests.helpers.smtp import plain_text, smtp_server

    with smtp_server() as (port, received):
        kubectl.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "relay", "labels": {"pitwall.dev/use": "receivers"}},
                "stringData": {"url": f"smtp://127.0.0.1:{port}"},
            }
        )
        kubectl.apply(
            product(
                "payments",
                [{"name": "v2", "image": "registry.example.com/payments:2"}],
                consumers=[{"name": "acme", "versions": ["v2"], "contact": {"email": "ops@acme.example"}}],
            )
        )
        body = window("upgrade", datetime.now(UTC) + timedelta(seconds=8), 10, "http://127.0.0.1:9")
        body["spec"]["notice"] = {
            "leadTime": "5s",
            "notifyConsumers": True,
            "consumerEmail": {
                "secretRef": {"name": "relay", "key": "url"},
                "from": "maintenance@marketplace.example",
            },
        }
        kubectl.apply(body)
        eventually(lambda: received, timeout=30, message="advance notice by email")
        mail = received[0]
        assert mail["To"] == "ops@acme.example"
        assert "Core banking upgrade" in plain_text(mail)

        # 22:00 on April 15 in Berlin is CEST (UTC+2) in 2027: 20:00Z, not the 21:00Z of today's offset
        kubectl.apply(
            {
                "apiVersion": "pitwall.dev/v1alpha1",
                "kind": "MaintenanceWindow",
                "metadata": {"name": "spring"},
                "spec": {
                    "reason": "Yearly archive",
                    "targets": {"backends": ["archive"]},
                    "schedule": {"cron": "0 22 15 4 *", "duration": "1h", "timeZone": "Europe/Berlin"},
                },
            }
        )
        status = eventually(
            lambda: (
                (kubectl.get("maintenancewindow", "spring").get("status") or {}).get("nextStart")
                and kubectl.get("maintenancewindow", "spring")["status"]
            )
        )
        from zoneinfo import ZoneInfo

        berlin = ZoneInfo("Europe/Berlin")
        now = datetime.now(berlin)
        year = now.year if now < datetime(now.year, 4, 15, 22, tzinfo=berlin) else now.year + 1
        assert status["nextStart"] == f"{year}-04-15T20:00:00Z"
        assert status["nextEnd"] == f"{year}-04-15T21:00:00Z"
