"""The page says what is true: how much is affected, and an outage is an incident even unpaged."""

from __future__ import annotations

import json

from pitwall.statuspage.model import public_status
from pitwall.statuspage.render import render_public

from .builders import INTERNAL, NOW, marketplace


def test_one_version_down_is_a_partial_outage_and_an_incident_without_any_alert_rule():
    snap = marketplace()  # no alert rules at all
    snap.products[0]["status"]["versions"][1]["readyReplicas"] = 0  # payments v2 serves nothing, v1 fine
    model = public_status(snap, NOW)
    assert model["overall"]["headline"] == "Partial outage"
    assert model["overall"]["affected"] == ["Payments API v2: Outage"]
    payments = next(p for p in model["products"] if p["id"] == "payments")
    assert payments["stateLabel"] == "Partial outage"
    assert [v["state"] for v in payments["versions"]] == ["operational", "outage"]
    [incident] = model["incidents"]
    assert incident["product"] == "payments" and incident["versions"] == ["v2"]
    assert incident["title"] == "Payments API: outage"
    assert incident["summary"] == "Payments API v2 is not fully available; requests may fail."
    html = render_public(model)
    assert "Partial outage" in html and "No current incidents" not in html
    assert "All APIs are down" not in html
    text = json.dumps(model)
    assert not [s for s in INTERNAL if s in text]


def test_every_version_down_is_a_major_outage():
    snap = marketplace(payments_probe_state="Down")
    for product in snap.products:
        for version in product["status"]["versions"]:
            version["readyReplicas"] = 0
            version["state"] = "Complete"
    model = public_status(snap, NOW)
    assert model["overall"]["headline"] == "Major outage"
    assert {p["stateLabel"] for p in model["products"]} == {"Outage"}
    assert {i["product"] for i in model["incidents"]} == {"payments", "sandbox-payments"}
    assert model["incidents"][0]["versions"] == []  # the whole product


def test_degraded_without_outage_is_no_incident():
    snap = marketplace()
    snap.products[0]["status"]["versions"][0]["readyReplicas"] = 1  # v1 1/2 ready
    model = public_status(snap, NOW)
    assert model["overall"]["headline"] == "Degraded service"
    assert model["incidents"] == []
