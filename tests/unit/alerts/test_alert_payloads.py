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
    return parse_rule(
        "shop",
        "probes-down",
        {
            "severity": severity,
            "selector": {},
            "when": {"condition": "Ready", "status": "False", "for": "1m"},
            "receivers": [{"name": "ops", "type": "msteams", "secretRef": {"name": "t", "key": "url"}}],
            "escalation": [{"after": "30m", "receivers": ["ops"]}],
            **extra,
        },
    )


def down(name="checkout", message="step home: expected 200, got 503"):
    return Observation("Probe", name, "False", T0, "ProbeFailing", message)


def firing(names=("checkout",), severity="critical", **extra):
    ev = evaluate(rule(severity, **extra), [], [down(n) for n in names], T0 + timedelta(minutes=1))
    return ev.notifications[0]


def resolved(names=("checkout",)):
    r = rule()
    ev = evaluate(r, [], [down(n) for n in names], T0 + timedelta(minutes=1))
    records = apply_results(
        ev.records,
        [DeliveryResult("ops", "firing", ev.notifications[0].keys, True, 1, None, T0 + timedelta(minutes=1))],
    )
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
    assert "2026-03-01 10:01:00 UTC" in text  # firing since
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


@pytest.mark.parametrize(
    "severity, priority, pd",
    [
        ("critical", "P1", "critical"),
        ("high", "P2", "error"),
        ("medium", "P3", "warning"),
        ("low", "P4", "info"),
    ],
)
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
    assert body["commonLabels"] == {
        "alertname": "probes-down",
        "namespace": "shop",
        "severity": "critical",
        "kind": "Probe",
        "condition": "Ready=False",
    }
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


# -- receivers' published limits (the numbers and their sources: alerts/payloads.py) --------------------
LONG_NS = "n" * 63  # the longest namespace Kubernetes allows
LONG_NAME = "p" * 253  # the longest object name


def worst_rule(**extra):
    return parse_rule(
        LONG_NS,
        "r" * 253,
        {
            "severity": "critical",
            "selector": {},
            "when": {"condition": "Ready", "status": "False", "for": "1m"},
            "summary": "{kind} {name} in {namespace}: {message} " * 20,
            "receivers": [{"name": "ops", "type": "opsgenie", "secretRef": {"name": "t", "key": "k"}}],
            **extra,
        },
    )


def worst(count=1, event="firing"):
    r = worst_rule()
    observations = [
        Observation("Probe", f"{LONG_NAME[:-4]}{i:04d}", "False", T0, "ProbeFailing", "x" * 5000)
        for i in range(count)
    ]
    ev = evaluate(r, [], observations, T0 + timedelta(minutes=1))
    n = ev.notifications[0]
    if event == "firing":
        return n
    records = apply_results(ev.records, [DeliveryResult("ops", "firing", n.keys, True, 1, None, T0)])
    return evaluate(r, records, [], T0 + timedelta(minutes=5)).notifications[0]


def test_opsgenie_limits_hold_for_the_longest_names():
    n = worst()
    body = payloads.opsgenie_create(n, n.alerts[0])
    assert len(body["message"]) <= 130 and len(body["alias"]) <= 512
    assert len(body["description"]) <= 15_000 and len(body["entity"]) <= 512 and len(body["source"]) <= 100
    assert len(body["tags"]) <= 20 and all(len(t) <= 50 for t in body["tags"])
    assert LONG_NS[:49] in " ".join(body["tags"])  # the namespace is still there, shortened
    assert sum(len(k) + len(str(v)) for k, v in body["details"].items()) <= 8000


def test_pagerduty_limits_hold_for_the_longest_names():
    n = worst()
    event = payloads.pagerduty(n, n.alerts[0], "R" * 32)
    assert len(event["payload"]["summary"]) <= 1024 and len(event["dedup_key"]) <= 255
    assert len(json.dumps(event).encode()) <= 512 * 1024
    resolve = payloads.pagerduty(worst(event="resolved"), n.alerts[0], "R" * 32)
    assert resolve["dedup_key"] == event["dedup_key"]  # the same key, so the resolve closes it


def test_slack_and_teams_limits_hold_for_many_long_alerts():
    n = worst(count=60)
    message = payloads.slack(n)
    assert len(message["blocks"]) <= 50 and len(message["text"]) <= 40_000
    for block in message["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    assert len(json.dumps(payloads.teams(n)).encode()) <= 28 * 1024
    assert len(json.dumps(payloads.teams(worst())).encode()) <= 28 * 1024  # one huge alert too


def test_email_header_lines_stay_within_rfc_5322():
    from email import policy

    n = worst(count=40)
    mail = payloads.email(n, "pitwall@example.com", ["oncall@example.com"], message_id="abc")
    raw = mail.as_bytes(policy=policy.SMTP)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert len(str(mail["Subject"])) <= 250 and "\n" not in str(mail["Subject"])
    assert mail["Message-ID"] == "<abc@pitwall.dev>"  # the outbox's dedup key
