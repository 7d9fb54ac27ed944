"""Payloads in each service's documented format, built from real evaluations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pitwall.alerts import payloads
from pitwall.alerts.rules import parse_rule
from pitwall.alerts.state import DeliveryResult, Observation, apply_results, evaluate

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def rule(severity="critical", **extra):
    return parse_rule("shop", "probes-down", {
        "severity": severity,
        "when": {"condition": "Ready", "status": "False", "for": "1m"},
        "receivers": [{"name": "ops", "type": "msteams", "secretRef": {"name": "t", "key": "url"}}],
        "escalation": [{"after": "30m", "receivers": ["ops"]}],
        **extra,
    })


def down(name="checkout", message="step home: expected 200, got 503"):
    return Observation("Probe", name, "False", T0, "ProbeFailing", message)


def firing(names=("checkout",), severity="critical", **extra):
    ev = evaluate(rule(severity, **extra), [], [down(n) for n in names], T0 + timedelta(minutes=1))
    return ev.notifications[0]


def resolved(names=("checkout",)):
    r = rule()
    ev = evaluate(r, [], [down(n) for n in names], T0 + timedelta(minutes=1))
    records = apply_results(ev.records, [DeliveryResult("ops", "firing", ev.notifications[0].keys, True, 1, None,
                                                        T0 + timedelta(minutes=1))])
    up = [Observation("Probe", n, "True", T0 + timedelta(minutes=9), "Ok", "all steps passed") for n in names]
    return evaluate(r, records, up, T0 + timedelta(minutes=10)).notifications[0]


def card_body(message):
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    content = attachment["content"]
    assert content["type"] == "AdaptiveCard" and content["version"] == "1.2"
    return content["body"]


def all_text(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def test_teams_firing_card_says_what_where_since_and_how_to_acknowledge():
    n = firing()
    body = card_body(payloads.teams(n))
    assert body[0]["color"] == "Attention"
    assert body[0]["text"] == "FIRING [critical] Probe checkout: Ready is False (ProbeFailing)"
    text = all_text(body)
    key = n.alerts[0].key
    assert "Probe shop/checkout" in text
    assert "2026-03-01 10:01:00 UTC" in text                      # firing since
    assert "2026-03-01 10:31:00 UTC (critical: within 30m)" in text  # ack deadline
    assert f"kubectl -n shop annotate alertrule probes-down pitwall.dev/acknowledge={key}" in text
    assert f"pitwall ack -n shop probes-down {key}" in text
    assert "expected 200, got 503" in text


def test_teams_resolved_card_is_green_and_says_how_long_it_lasted():
    body = card_body(payloads.teams(resolved()))
    assert body[0]["color"] == "Good"
    assert body[0]["text"].startswith("RESOLVED [critical]")
    text = all_text(body)
    assert "after 9m" in text
    assert "acknowledge=" not in text


def test_teams_card_stays_under_the_size_limit_with_many_alerts():
    n = firing(names=[f"probe-{i:03d}" for i in range(300)])
    message = payloads.teams(n)
    assert len(json.dumps(message).encode()) <= payloads.TEAMS_MAX_BYTES
    body = card_body(message)
    assert body[0]["text"] == "FIRING [critical] 300 alerts of rule probes-down"
    assert "more (see the AlertRule status)" in body[-1]["text"]


def test_slack_message_has_text_and_blocks_within_limits():
    n = firing(names=[f"p{i}" for i in range(30)], summary="{name} <broken> & down")
    message = payloads.slack(n)
    assert message["text"] == "FIRING [critical] 30 alerts of rule probes-down"
    blocks = message["blocks"]
    assert len(blocks) <= 50
    assert blocks[0]["type"] == "header" and blocks[0]["text"]["type"] == "plain_text"
    sections = [b for b in blocks if b["type"] == "section"]
    assert len(sections) == payloads.SLACK_MAX_ALERTS
    assert sections[0]["text"]["text"].startswith("*p0 &lt;broken&gt; &amp; down*")
    assert all(len(s["text"]["text"]) <= 3000 for s in sections)
    assert "10 more" in blocks[-1]["elements"][0]["text"]


@pytest.mark.parametrize("severity, priority, pd", [("critical", "P1", "critical"), ("high", "P2", "error"),
                                                    ("medium", "P3", "warning"), ("low", "P4", "info")])
def test_severity_maps_to_opsgenie_priority_and_pagerduty_severity(severity, priority, pd):
    n = firing(severity=severity)
    alert = n.alerts[0]
    assert payloads.opsgenie_create(n, alert)["priority"] == priority
    assert payloads.pagerduty(n, alert, "rk")["payload"]["severity"] == pd


def test_opsgenie_create_uses_the_alert_key_as_alias_and_keeps_the_message_short():
    n = firing(summary="{name} " + "very long words " * 20)
    alert = n.alerts[0]
    body = payloads.opsgenie_create(n, alert)
    assert body["alias"] == alert.key
    assert len(body["message"]) <= 130 and body["message"].startswith("checkout very long")
    assert "pitwall.dev/acknowledge=" in body["description"]
    assert set(body["tags"]) >= {"pitwall", "critical", "Probe", "shop"}
    assert all(isinstance(v, str) for v in body["details"].values())
    assert body["details"]["rule"] == "shop/probes-down"
    close = payloads.opsgenie_close(resolved(), alert)
    assert close["source"] == "pitwall" and "Resolved" in close["note"]


def test_pagerduty_trigger_and_resolve_share_the_dedup_key():
    n = firing()
    alert = n.alerts[0]
    trigger = payloads.pagerduty(n, alert, "routing-123", "https://status.example")
    assert trigger["routing_key"] == "routing-123"
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == alert.key and len(alert.key) <= 255
    payload = trigger["payload"]
    assert payload["summary"] == "Probe checkout: Ready is False (ProbeFailing)"
    assert payload["source"] == "shop/Probe/checkout"
    assert payload["timestamp"] == "2026-03-01T10:01:00Z"
    assert (payload["component"], payload["group"], payload["class"]) == ("checkout", "shop", "Ready=False")
    assert payload["custom_details"]["Alert key"] == alert.key
    assert trigger["client_url"] == "https://status.example"
    resolve = payloads.pagerduty(resolved(), alert, "routing-123")
    assert resolve == {"routing_key": "routing-123", "event_action": "resolve", "dedup_key": alert.key}


def test_email_has_subject_plain_text_and_html():
    n = firing(names=("checkout", "cart"))
    message = payloads.email(n, "pitwall@example.com", ["oncall@example.com", "lead@example.com"])
    assert message["Subject"] == "FIRING [critical] 2 alerts of rule probes-down"
    assert message["To"] == "oncall@example.com, lead@example.com"
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for alert in n.alerts:
        assert alert.key in plain and alert.key in html
    assert "Acknowledge by: 2026-03-01 10:31:00 UTC" in plain
    assert "<table>" in html


def test_alertmanager_v4_webhook_shape():
    n = firing(names=("checkout", "cart"))
    body = payloads.alertmanager(n, "https://pitwall.example")
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "ops"
    assert body["groupLabels"] == {"alertname": "probes-down", "namespace": "shop"}
    assert body["commonLabels"] == {"alertname": "probes-down", "namespace": "shop", "severity": "critical",
                                    "kind": "Probe", "condition": "Ready=False"}
    assert body["externalURL"] == "https://pitwall.example"
    assert set(body) >= {"groupKey", "commonAnnotations", "alerts"}
    first = body["alerts"][0]
    assert set(first) >= {"status", "labels", "annotations", "startsAt", "endsAt", "fingerprint"}
    assert first["status"] == "firing"
    assert first["startsAt"] == "2026-03-01T10:01:00Z"
    assert first["endsAt"] == "0001-01-01T00:00:00Z"
    assert len(first["fingerprint"]) == 16
    assert first["annotations"]["summary"].startswith("Probe ")

    done = payloads.alertmanager(resolved())
    assert done["status"] == "resolved"
    assert done["alerts"][0]["status"] == "resolved"
    assert done["alerts"][0]["endsAt"] == "2026-03-01T10:10:00Z"
    same = next(a for a in body["alerts"] if a["labels"]["object"] == "checkout")
    assert done["alerts"][0]["fingerprint"] == same["fingerprint"]


def test_escalation_and_acknowledged_alerts_read_differently():
    r = rule()
    ev = evaluate(r, [], [down()], T0 + timedelta(minutes=1))
    ev = evaluate(r, ev.records, [down()], T0 + timedelta(minutes=31))
    escalation = next(n for n in ev.notifications if n.event == "escalation")
    assert payloads.headline(escalation).startswith("ESCALATED [critical]")
    assert "step 1 of 1: not acknowledged" in payloads.text(escalation)

    key = escalation.alerts[0].key
    ev = evaluate(r, [], [down()], T0 + timedelta(minutes=1), acks={key: "alice"})
    text = payloads.text(ev.notifications[0])
    assert "Acknowledged: by alice at 2026-03-01 10:01:00 UTC" in text
    assert "To acknowledge" not in text
