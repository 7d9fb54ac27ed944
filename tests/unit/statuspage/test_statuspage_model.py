"""The public model: what third parties see, and what they never see."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pitwall.statuspage.model import public_product, public_status
from pitwall.statuspage.relations import Snapshot

from .builders import (
    INTERNAL,
    NOW,
    alert,
    backend,
    daily,
    marketplace,
    probe,
    product,
    rule,
    stamp,
    window,
)


def by_id(model: dict) -> dict:
    return {p["id"]: p for p in model["products"]}


def incident_snapshot(**kwargs) -> Snapshot:
    return marketplace(
        payments_probe_state="Down",
        extra={
            "rules": [
                rule("revenue-critical-down", "critical", [alert("Probe", "payments-v2-isup", **kwargs)])
            ]
        },
    )


def test_only_public_products_with_their_running_versions():
    snap = marketplace()
    snap.products[0]["spec"]["versions"].append({"name": "v0", "lifecycle": "retired", "image": "x"})
    model = public_status(snap, NOW)
    assert list(by_id(model)) == ["payments", "sandbox-payments"]  # reference-data is not public
    pay = by_id(model)["payments"]
    assert [v["name"] for v in pay["versions"]] == ["v1", "v2"]
    assert (
        pay["versions"][0]["lifecycle"] == "deprecated"
        and pay["versions"][0]["sunsetAt"] == "2027-03-01T00:00:00Z"
    )
    assert model["overall"] == {
        "state": "operational",
        "label": "Operational",
        "headline": "All APIs operational",
        "affected": [],
    }


def test_environment_filter():
    snap = marketplace()
    assert public_status(snap, NOW)["environments"] == ["live", "sandbox"]
    assert list(by_id(public_status(snap, NOW, "sandbox"))) == ["sandbox-payments"]
    assert list(by_id(public_status(snap, NOW, "live"))) == ["payments"]


def test_probe_down_makes_its_version_an_outage():
    snap = marketplace(payments_probe_state="Down")
    snap.probes[1]["metadata"]["labels"]["pitwall.dev/version"] = "v1"  # the flow checks v1 only
    pay = by_id(public_status(snap, NOW))["payments"]
    states = {v["name"]: (v["state"], v["reason"]) for v in pay["versions"]}
    assert states == {
        "v1": ("operational", "Operating normally"),
        "v2": ("outage", "Not responding to our checks"),
    }
    assert pay["state"] == "outage"


def test_uptime_combines_the_products_probes_per_day():
    snap = marketplace()
    bars = by_id(public_status(snap, NOW))["payments"]["uptime"]
    assert bars["days"] == 90 and len(bars["bars"]) == 90
    assert bars["bars"][-1]["day"] == NOW.date().isoformat()
    today = bars["bars"][-1]
    assert (today["ok"], today["total"]) == (2 * 2880, 2 * 2880)  # isUp probe + OAuth flow
    ten_days_ago = bars["bars"][-11]
    assert ten_days_ago["ok"] == 2880 and ten_days_ago["level"] == "outage"  # isUp failed all day
    three = bars["bars"][-4]
    assert (
        three["percent"] == pytest.approx(100 * (5760 - 400) / 5760, abs=0.01) and three["level"] == "outage"
    )
    assert bars["bars"][0]["total"] == 2880  # the flow has 30 days only
    sandbox = by_id(public_status(snap, NOW))["sandbox-payments"]["uptime"]
    assert sandbox["percent"] is None and {b["level"] for b in sandbox["bars"]} == {"none"}


def test_uptime_percent_is_floored_not_rounded_up():
    snap = Snapshot(
        products=[product("orders")],
        probes=[probe("p", product="orders", version="v1", history=daily(1, ok=99999, total=100000))],
    )
    assert by_id(public_status(snap, NOW))["orders"]["uptime"]["percent"] == 99.99


def test_firing_critical_alert_on_a_probe_is_an_incident_of_its_product():
    model = public_status(incident_snapshot(), NOW)
    [incident] = model["incidents"]
    assert incident["product"] == "payments" and incident["versions"] == ["v2"]
    assert incident["title"] == "Payments API: degraded service"
    assert incident["summary"] == "Our checks of Payments API v2 are failing; requests may fail or time out."
    assert incident["status"] == "investigating" and incident["since"] == stamp(NOW - timedelta(minutes=20))


def test_acknowledged_incident_is_identified():
    [incident] = public_status(incident_snapshot(acknowledged_by="homer"), NOW)["incidents"]
    assert incident["status"] == "identified"
    assert "homer" not in json.dumps(incident)


@pytest.mark.parametrize(
    "change",
    [
        {"state": "pending"},
        {"state": "held"},
        {"state": "resolved"},
        {"severity": "medium"},
        {"severity": "blocked"},
    ],
)
def test_not_incidents(change):
    entry = {**alert("Probe", "payments-v2-isup"), **change}
    snap = marketplace(extra={"rules": [rule("r", "critical", [entry])]})
    assert public_status(snap, NOW)["incidents"] == []


def test_alerts_on_non_public_products_and_unrelated_probes_are_not_shown():
    snap = marketplace(
        extra={
            "rules": [
                rule(
                    "r",
                    "critical",
                    [
                        alert("ApiProduct", "reference-data"),
                        alert("Probe", "demo-api-isup"),
                        alert("Probe", "gone"),
                    ],
                )
            ]
        }
    )
    assert public_status(snap, NOW)["incidents"] == []


def test_backend_alert_hurts_the_products_that_depend_on_it():
    snap = marketplace(
        extra={"rules": [rule("backends", "high", [alert("Backend", "core-banking", severity="high")])]}
    )
    [incident] = public_status(snap, NOW)["incidents"]
    assert incident["product"] == "payments" and incident["severity"] == "high"
    assert "upstream provider" in incident["summary"] and "core-banking" not in json.dumps(incident)
    optional = marketplace(
        extra={"rules": [rule("b", "high", [alert("Backend", "identity", severity="high")])]}
    )
    optional.products[1]["spec"]["public"] = True  # reference-data uses identity optionally
    assert [i["product"] for i in public_status(optional, NOW)["incidents"]] == [
        "payments",
        "sandbox-payments",
    ]


def test_active_and_upcoming_windows():
    soon, now_on = NOW + timedelta(days=2), NOW - timedelta(minutes=30)
    snap = marketplace(
        extra={
            "windows": [
                window(
                    "core-banking-weekly",
                    "Scheduled",
                    [{"name": "payments", "versions": ["v1", "v2"], "effect": "Unavailable"}],
                    start=soon,
                    backends=["core-banking"],
                ),
                window(
                    "refdata",
                    "Active",
                    [{"name": "reference-data", "versions": ["v1"], "effect": "Unavailable"}],
                    start=now_on,
                    reason="Reference data reload",
                ),
                window(
                    "sandbox-upgrade",
                    "Active",
                    [{"name": "sandbox-payments", "versions": ["v1"], "effect": "Degraded"}],
                    start=now_on,
                    reason="Sandbox upgrade",
                ),
                window(
                    "old",
                    "Completed",
                    [{"name": "payments", "versions": ["v2"], "effect": "Unavailable"}],
                    start=NOW - timedelta(days=3),
                ),
            ]
        }
    )
    model = public_status(snap, NOW)
    [upcoming] = model["maintenance"]["upcoming"]
    # "Core Banking" is a Backend's displayName: the public page does not name provider systems
    assert upcoming["title"] == "Weekly a provider system patching"
    assert upcoming["start"] == stamp(soon) and upcoming["end"] == stamp(soon + timedelta(hours=2))
    assert upcoming["products"] == [
        {"id": "payments", "displayName": "Payments API", "versions": ["v1", "v2"], "impact": "unavailable"}
    ]
    [active] = model["maintenance"]["active"]  # the non-public product's window is not shown
    assert active["title"] == "Sandbox upgrade" and active["products"][0]["impact"] == "degraded"
    assert by_id(model)["sandbox-payments"]["state"] == "degraded"


def test_window_reason_naming_internal_things_is_redacted():
    snap = marketplace(
        extra={
            "windows": [
                window(
                    "w",
                    "Scheduled",
                    [{"name": "payments", "versions": ["v2"], "effect": "Unavailable"}],
                    start=NOW + timedelta(days=1),
                    reason="Patch core-banking on 10.1.2.3 (db.payments.svc.cluster.local), "
                    "ask ops@acme.example; acme-fintech informed",
                )
            ]
        }
    )
    [w] = public_status(snap, NOW)["maintenance"]["upcoming"]
    assert w["title"] == (
        "Patch a provider system on [address] ([internal host]), ask [email]; a consumer informed"
    )


def test_product_endpoint_model():
    snap = incident_snapshot()
    one = public_product(snap, NOW, "payments")
    assert one["id"] == "payments" and len(one["incidents"]) == 1
    assert set(one["maintenance"]) == {"active", "upcoming"}
    assert public_product(snap, NOW, "reference-data") is None  # exists, but not public
    assert public_product(snap, NOW, "nope") is None


def test_same_name_in_two_namespaces_gets_qualified_ids():
    snap = Snapshot(products=[product("orders", namespace="team-a"), product("orders", namespace="team-b")])
    assert sorted(by_id(public_status(snap, NOW))) == ["team-a.orders", "team-b.orders"]


def test_relationships_stay_within_a_namespace():
    other = probe("other", product="payments", version="v2", state="Down", namespace="elsewhere")
    snap = marketplace(extra={"probes": [other]})
    assert by_id(public_status(snap, NOW))["payments"]["state"] == "operational"


def test_nothing_internal_reaches_the_public_model():
    """Every internal string of a busy marketplace: outage, incidents, windows, failures."""
    failing = backend(
        "core-banking",
        "Unavailable",
        failure={"correlationId": "deadbeef-aaaa-4bbb-8ccc-ddddeeeeffff", "reason": "timeout"},
    )
    snap = marketplace(
        payments_probe_state="Down",
        extra={
            "backends": [failing],
            "rules": [
                rule(
                    "revenue-critical-down",
                    "critical",
                    [
                        alert("Probe", "payments-v2-isup"),
                        alert("Backend", "core-banking"),
                        alert("ApiProduct", "payments"),
                    ],
                )
            ],
            "windows": [
                window(
                    "core-banking-weekly",
                    "Active",
                    [{"name": "payments", "versions": ["v1"], "effect": "Unavailable"}],
                    start=NOW - timedelta(minutes=3),
                    backends=["core-banking"],
                    consumers=["acme-fintech"],
                )
            ],
        },
    )
    pay = snap.products[0]
    pay["status"]["conditions"][1] = {
        "type": "Available",
        "status": "False",
        "reason": "BackendUnavailable",
        "message": "critical backend core-banking is unavailable",
        "lastTransitionTime": stamp(NOW),
    }
    text = json.dumps(
        [public_status(snap, NOW), public_status(snap, NOW, "live"), public_product(snap, NOW, "payments")]
    )
    leaked = [s for s in INTERNAL if s in text]
    assert leaked == []
    assert "outage" in text and "maintenance" in text  # the test is not vacuous
