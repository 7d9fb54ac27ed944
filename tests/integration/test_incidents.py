"""Incidents end to end (issue 17): a real control plane, the real operator, a real SMTP server
and webhook receiver on 127.0.0.1, the real CLI and headless Chromium.

A backend outage opens an incident for exactly the public products that depend on it
critically; the consumers of the affected versions (and only those) get the start notice by
e-mail and webhook; an update posted with the CLI appears on the page and reaches them; the
recovery resolves the incident and tells them; after an operator restart the incident is still
in the page's history, the JSON and the feed, and no notice is sent twice.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import Operator, condition, eventually
from tests.helpers.demo import DemoAPI
from tests.helpers.receiver import Recorder
from tests.helpers.smtp import plain_text, smtp_server
from tests.integration.test_backends import backend, backend_state
from tests.integration.test_products import product, ready

ARTIFACTS = Path(os.environ.get("PITWALL_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def pitwall(cluster, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pitwall", *args], env=cluster.env, capture_output=True, text=True, timeout=60
    )


def fetch(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.read().decode()


def incidents(kubectl, product_name: str) -> list[dict]:
    return kubectl.list("incidents", f"pitwall.dev/product={product_name}")


def mails_to(received, address: str, subject: str = "") -> list:
    return [m for m in list(received) if m["To"] == address and subject in str(m["Subject"])]


def hooks(recorder, path: str, event: str) -> list[dict]:
    return [
        r for r in recorder.paths(path) if isinstance(r["body"], dict) and r["body"].get("event") == event
    ]


def screenshot(url: str, name: str) -> Path | None:
    if not CHROMIUM:
        return None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            f"--screenshot={path}",
            "--window-size=1280,1600",
            url,
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    return path if path.exists() else None


def browser_dom(url: str) -> str:
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return proc.stdout


def test_backend_outage_incident_notices_cli_update_recovery_and_history(
    cluster, namespace, kubectl, tmp_path
):
    op = Operator(cluster, tmp_path, namespace=namespace, extra_env={"PITWALL_INCIDENT_TICK": "1"}).start()
    try:
        with smtp_server() as (smtp_port, received), Recorder() as hook, DemoAPI() as demo:
            _journey(cluster, kubectl, op, tmp_path, smtp_port, received, hook, demo)
    finally:
        op.stop()
        if os.environ.get("PITWALL_TEST_SHOW_LOGS"):
            print(op.log())


def _journey(cluster, kubectl, op, tmp_path, smtp_port, received, hook, demo):
    ns = kubectl.namespace
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "relay", "labels": {"pitwall.dev/use": "receivers"}},
            "stringData": {"url": f"smtp://127.0.0.1:{smtp_port}"},
        }
    )
    for name in ("core-banking", "geo"):
        kubectl.apply(backend(name, f"{demo.url}/backends/{name}/health"))
    policy = {
        "mergeWindow": "3s",
        "minSpacing": "1s",
        "consumerEmail": {"secretRef": {"name": "relay", "key": "url"}, "from": "status@market.example"},
        "receivers": [{"name": "ops", "type": "webhook", "url": hook.url + "/ops"}],
    }
    v1v2 = [
        {"name": "v1", "image": "registry.example.com/payments:1"},
        {"name": "v2", "image": "registry.example.com/payments:2"},
    ]
    kubectl.apply(
        product(
            "payments",
            v1v2,
            public=True,
            displayName="Payments API",
            incidents=policy,
            backends=[{"name": "core-banking", "criticality": "critical"}],
            consumers=[
                {"name": "acme", "versions": ["v2"], "contact": {"email": "ops@acme.example"}},
                {"name": "globex", "versions": ["v1"], "contact": {"webhook": hook.url + "/globex"}},
                {
                    "name": "initech",
                    "versions": ["v1"],
                    "incidentNotices": False,
                    "contact": {"email": "ops@initech.example"},
                },
            ],
        )
    )
    # public, but the backend is optional for it: not affected
    kubectl.apply(
        product(
            "maps",
            [{"name": "v1", "image": "registry.example.com/maps:1"}],
            public=True,
            incidents=policy,
            backends=[
                {"name": "core-banking", "criticality": "optional"},
                {"name": "geo", "criticality": "critical"},
            ],
            consumers=[
                {
                    "name": "umbrella",
                    "contact": {"email": "ops@umbrella.example", "webhook": hook.url + "/umbrella"},
                }
            ],
        )
    )
    # depends critically, but is not public: no incident, its consumers hear nothing
    kubectl.apply(
        product(
            "ledger",
            [{"name": "v1", "image": "registry.example.com/ledger:1"}],
            incidents=policy,
            backends=[{"name": "core-banking", "criticality": "critical"}],
            consumers=[{"name": "hooli", "contact": {"email": "ops@hooli.example"}}],
        )
    )
    for name in ("core-banking", "geo"):
        eventually(
            lambda n=name: backend_state(kubectl, n) == "Available", timeout=60, message=f"{name} Available"
        )
    for name in ("payments", "maps", "ledger"):
        eventually(lambda n=name: ready(kubectl, n), timeout=90, message=f"{name} ready")
    assert kubectl.list("incidents") == []

    # -- the outage opens one incident, for payments only -------------------------------------
    demo.admin("down", what="backend:core-banking")
    [incident] = eventually(
        lambda: incidents(kubectl, "payments") or None, timeout=60, message="incident opened"
    )
    name = incident["metadata"]["name"]
    opened = eventually(
        lambda: (lambda i: i if (i.get("status") or {}).get("phase") == "Open" else None)(
            kubectl.get("incident", name)
        ),
        message="incident status",
    )
    st = opened["status"]
    assert st["impact"] == "outage"
    assert st["affected"] == [{"name": "payments", "versions": ["v1", "v2"]}]
    assert "core-banking" not in st["cause"] and "127.0.0.1" not in st["cause"]
    assert st["cause"] == "Payments API v1, v2: An upstream provider is unavailable."
    assert condition(opened, "Ready")["status"] == "True"
    assert opened["status"]["observedGeneration"] == opened["metadata"]["generation"]

    # the start notice: acme by e-mail, globex by webhook, the internal receiver; nobody else
    eventually(
        lambda: mails_to(received, "ops@acme.example", "Outage: Payments API v2"),
        timeout=30,
        message="start e-mail to acme",
    )
    start = eventually(lambda: hooks(hook, "/globex", "start"), message="start webhook to globex")[0]["body"]
    assert start["incident"]["products"] == [
        {"name": "payments", "displayName": "Payments API", "versions": ["v1"]}
    ]
    assert start["incident"]["cause"] == st["cause"]
    eventually(lambda: hooks(hook, "/ops", "start"), message="start to the internal receiver")
    mail = mails_to(received, "ops@acme.example")[0]
    assert "core-banking" not in plain_text(mail) and "Started:" in plain_text(mail)
    assert [m["To"] for m in received] == ["ops@acme.example"]  # not initech (opted out), hooli, umbrella
    assert hook.paths("/umbrella") == []
    assert incidents(kubectl, "maps") == [] and incidents(kubectl, "ledger") == []

    page = fetch(op.statuspage_port, "/")
    assert f'data-incident-id="{name}"' in page and 'data-phase="open"' in page

    # -- an update posted with the CLI reaches the page and the consumers ------------------------
    update = "Our provider confirmed the fault; payments are queued, not lost."
    out = pitwall(cluster, "incident", "update", name, "-n", ns, "-m", update, "--status", "identified")
    assert out.returncode == 0, out.stderr
    assert "posted status identified" in out.stdout
    eventually(lambda: update in fetch(op.statuspage_port, "/"), message="update on the page")
    eventually(
        lambda: [
            m
            for m in mails_to(received, "ops@acme.example", "Update (identified)")
            if update in plain_text(m)
        ],
        timeout=30,
        message="update e-mail",
    )
    body = eventually(lambda: hooks(hook, "/globex", "update"), message="update webhook")[0]["body"]
    assert body["update"]["message"] == update and body["update"]["status"] == "identified"
    shown = pitwall(cluster, "incident", "show", name, "-n", ns)
    user = json.loads(
        subprocess.run(
            ["kubectl", "config", "view", "--minify", "-o", "json"],
            env=cluster.env,
            capture_output=True,
            text=True,
        ).stdout
    )["contexts"][0]["context"]["user"]
    assert f"identified    {user}: {update}" in shown.stdout
    listed = pitwall(cluster, "incident", "list", "-A")
    assert ns in listed.stdout and name in listed.stdout and "NAMESPACE" in listed.stdout
    refused = pitwall(cluster, "incident", "update", name, "-n", ns, "--report", "ftp://x")
    assert refused.returncode == 2 and "http://" in refused.stderr

    # -- recovery resolves it (after the merge window) and tells them --------------------------
    demo.admin("up")
    resolved = eventually(
        lambda: (lambda i: i if (i.get("status") or {}).get("phase") == "Resolved" else None)(
            kubectl.get("incident", name)
        ),
        timeout=90,
        message="incident resolved",
    )
    assert resolved["status"]["resolvedBy"] == "pitwall"
    eventually(
        lambda: mails_to(received, "ops@acme.example", "Resolved: Payments API v2"),
        timeout=30,
        message="resolved e-mail",
    )
    eventually(lambda: hooks(hook, "/globex", "resolved"), message="resolved webhook")
    eventually(lambda: hooks(hook, "/ops", "resolved"), message="resolved to the receiver")
    # the outbox delivers, the next pass records: wait for the record of the last delivery
    sent = eventually(
        lambda: (lambda ns_: ns_ if all(n["state"] == "Sent" for n in ns_.values()) else None)(
            {n["event"]: n for n in kubectl.get("incident", name)["status"]["notices"]}
        ),
        message="notices recorded",
    )
    assert sorted(sent) == ["resolved", "start", "update-0"]
    assert all(n["state"] == "Sent" and not n["failed"] for n in sent.values())
    assert sorted(sent["start"]["recipients"]) == ["acme", "globex", "ops"]
    total = len(received) + len(hook.requests)

    # -- after a restart: still in the history, the JSON and the feed; nothing sent again ---------
    op.stop()
    op.start()
    history = eventually(
        lambda: json.loads(fetch(op.statuspage_port, "/api/v1/incidents"))["incidents"] or None,
        message="history after restart",
    )
    [past] = [i for i in history if i["id"] == name]
    assert past["resolved"] and past["status"] == "resolved" and past["impact"] == "outage"
    assert [u["message"] for u in past["updates"]] == [update]
    assert past["products"] == [{"id": "payments", "displayName": "Payments API", "versions": ["v1", "v2"]}]
    assert "core-banking" not in json.dumps(past)
    feed = ET.fromstring(fetch(op.statuspage_port, "/feed.atom"))
    atom = "{http://www.w3.org/2005/Atom}"
    entries = feed.findall(f"{atom}entry")
    assert any(
        e.find(f"{atom}title").text.startswith("[Resolved] Payments API")
        and update in e.find(f"{atom}content").text
        for e in entries
    )
    product_json = json.loads(fetch(op.statuspage_port, "/api/v1/products/payments"))
    assert [i["id"] for i in product_json["history"]] == [name]
    page = fetch(op.statuspage_port, "/")
    assert f'id="i-payments-{name}"' in page and update in page
    assert f'href="#i-payments-{name}"' in page  # today's uptime bar links to it
    # a pass of the restarted operator has run (it marks what it sees), and it sent nothing again
    eventually(lambda: "incident" in op.log(), message="operator running")
    time.sleep(3)
    assert len(received) + len(hook.requests) == total

    # -- a second outage later: a new incident; the page shows it open beside the past one --------
    demo.admin("down", what="backend:core-banking")
    second = eventually(
        lambda: [i for i in incidents(kubectl, "payments") if i["metadata"]["name"] != name] or None,
        timeout=60,
        message="second incident",
    )[0]["metadata"]["name"]
    eventually(
        lambda: f'data-incident-id="{second}"' in fetch(op.statuspage_port, "/"), message="second on page"
    )
    if CHROMIUM:
        url = f"http://127.0.0.1:{op.statuspage_port}/"
        dom = eventually(
            lambda: (lambda d: d if second in d else None)(browser_dom(url)),
            timeout=120,
            message="page in Chromium",
        )
        assert update in dom and "Past incidents" in dom
        screenshot(url, "incidents-open-and-past.png")
    demo.admin("up")


def test_emergency_window_is_an_incident_of_its_own_kind(cluster, namespace, kubectl, tmp_path):
    """An emergency MaintenanceWindow shows as an emergency-maintenance incident while it runs (on
    the page, in the feed); an update posted on it reaches the consumers; it resolves when the
    window ends. Its start and end are told by the window's own (EMERGENCY) notices."""
    from datetime import UTC, datetime, timedelta

    op = Operator(cluster, tmp_path, namespace=namespace, extra_env={"PITWALL_INCIDENT_TICK": "1"}).start()
    try:
        with Recorder() as hook:
            kubectl.apply(
                product(
                    "payments",
                    [{"name": "v2", "image": "registry.example.com/payments:2"}],
                    public=True,
                    displayName="Payments API",
                    incidents={"minSpacing": "1s"},
                    consumers=[{"name": "globex", "contact": {"webhook": hook.url + "/globex"}}],
                )
            )
            eventually(lambda: ready(kubectl, "payments"), timeout=90, message="payments ready")
            start = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
            kubectl.apply(
                {
                    "apiVersion": "pitwall.dev/v1alpha1",
                    "kind": "MaintenanceWindow",
                    "metadata": {"name": "hotfix"},
                    "spec": {
                        "reason": "Security patch",
                        "emergency": True,
                        "emergencyReason": "A vulnerability is being exploited",
                        "schedule": {"start": start, "duration": "25s"},
                        "targets": {"apiProducts": {"names": ["payments"]}},
                        "notice": {"notifyConsumers": True},
                    },
                }
            )
            [incident] = eventually(
                lambda: kubectl.list("incidents", "pitwall.dev/maintenance-window=hotfix") or None,
                timeout=60,
                message="emergency incident",
            )
            name = incident["metadata"]["name"]
            assert (
                incident["spec"]["type"] == "emergency-maintenance" and incident["spec"]["window"] == "hotfix"
            )
            page = eventually(
                lambda: (lambda p: p if f'data-incident-id="{name}"' in p else None)(
                    fetch(op.statuspage_port, "/")
                ),
                message="on the page",
            )
            assert "emergency maintenance" in page and 'data-kind="emergency-maintenance"' in page
            # the window itself announced its start, labelled EMERGENCY; the incident adds no second one
            eventually(
                lambda: [r for r in hook.paths("/globex") if r["body"].get("emergency")],
                message="window notice",
            )
            assert hooks(hook, "/globex", "start") == []
            out = pitwall(
                cluster,
                "incident",
                "update",
                name,
                "-n",
                kubectl.namespace,
                "-m",
                "The patch is rolled out; checks are running.",
                "--status",
                "monitoring",
            )
            assert out.returncode == 0, out.stderr
            body = eventually(lambda: hooks(hook, "/globex", "update"), message="update to the consumer")[0][
                "body"
            ]
            assert body["incident"]["kind"] == "emergency-maintenance"
            assert body["subject"].startswith("Update (monitoring): Payments")
            # with kubectl, without an author: the field manager is recorded as its author
            kubectl.patch(
                "incident",
                name,
                [
                    {
                        "op": "add",
                        "path": "/spec/updates/-",
                        "value": {"message": "Checks pass; watching for an hour."},
                    }
                ],
                patch_type="json",
            )
            authors = eventually(
                lambda: (kubectl.get("incident", name).get("status") or {}).get("updateAuthors"),
                message="kubectl update attributed",
            )
            assert authors[0]["index"] == 1 and authors[0]["author"] == "kubectl-patch" and authors[0]["at"]
            eventually(
                lambda: "Checks pass; watching for an hour." in fetch(op.statuspage_port, "/"),
                message="kubectl update on the page",
            )
            eventually(
                lambda: len(hooks(hook, "/globex", "update")) == 2, message="kubectl update to the consumer"
            )
            done = eventually(
                lambda: (lambda i: i if (i.get("status") or {}).get("phase") == "Resolved" else None)(
                    kubectl.get("incident", name)
                ),
                timeout=90,
                message="resolved when the window ends",
            )
            assert done["status"]["resolution"] == "The emergency maintenance is over."
            feed = fetch(op.statuspage_port, "/feed.atom")
            assert "[Resolved]" in feed and "The patch is rolled out" in feed
    finally:
        op.stop()
