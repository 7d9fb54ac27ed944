"""Delivery against real local receivers (aiohttp on 127.0.0.1, aiosmtpd for mail)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import format_datetime

import pytest

from pitwall.alerts.delivery import RetryPolicy, _smtp_options, deliver, deliver_message, mask_url
from pitwall.alerts.rules import parse_receiver, parse_rule
from pitwall.alerts.state import DeliveryResult, Observation, apply_results, evaluate

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
FAST = RetryPolicy(
    max_attempts=8, base_delay=0.001, max_delay=0.01, max_total=5, retry_after_cap=30, timeout=2
)


def notification(receiver: dict, names=("checkout",), resolve=False):
    rule = parse_rule(
        "shop", "probes-down", {"severity": "critical", "selector": {}, "receivers": [receiver]}
    )
    down = [Observation("Probe", n, "False", T0, "ProbeFailing", "got 503") for n in names]
    ev = evaluate(rule, [], down, T0)
    if not resolve:
        return ev.notifications[0]
    records = apply_results(
        ev.records, [DeliveryResult(receiver["name"], "firing", ev.notifications[0].keys, True, 1, None, T0)]
    )
    return evaluate(rule, records, [], T0 + timedelta(minutes=5)).notifications[0]


def hook(type_):
    return {"name": "ops", "type": type_, "secretRef": {"name": "s", "key": "k"}}


async def test_teams_card_arrives(http_receiver, client):
    n = notification(hook("msteams"))
    [result] = await deliver(n, f"{http_receiver.base}/workflows/abc?sig=SECRET", client, policy=FAST)
    assert (result.ok, result.attempts, result.error) == (True, 1, None)
    assert (result.receiver, result.event, result.keys) == ("ops", "firing", n.keys)
    [seen] = http_receiver.requests
    assert (seen.method, seen.path, seen.query) == ("POST", "/workflows/abc", {"sig": "SECRET"})
    assert seen.body["attachments"][0]["content"]["type"] == "AdaptiveCard"


async def test_slack_and_webhook_bodies_arrive(http_receiver, client):
    await deliver(notification(hook("slack")), f"{http_receiver.base}/services/T/B/X", client, policy=FAST)
    plain = {"name": "ops", "type": "webhook", "url": f"{http_receiver.base}/am"}
    await deliver(notification(plain), None, client, policy=FAST)
    slack, webhook = http_receiver.requests
    assert set(slack.body) == {"text", "blocks"}
    assert (webhook.path, webhook.body["version"], webhook.body["status"]) == ("/am", "4", "firing")


async def test_five_server_errors_then_success_is_delivered_on_the_sixth_attempt(http_receiver, client):
    http_receiver.script = [(500, {})] * 5 + [(200, {})]
    [result] = await deliver(notification(hook("msteams")), f"{http_receiver.base}/hook", client, policy=FAST)
    assert (result.ok, result.attempts) == (True, 6)
    assert len(http_receiver.requests) == 6


async def test_429_retry_after_seconds_is_honoured(http_receiver, client, fake_clock):
    http_receiver.script = [(429, {"Retry-After": "7"})]
    [result] = await deliver(
        notification(hook("slack")),
        f"{http_receiver.base}/hook",
        client,
        policy=RetryPolicy(max_total=100),
        sleep=fake_clock.sleep,
        clock=fake_clock,
    )
    assert (result.ok, result.attempts) == (True, 2)
    assert fake_clock.sleeps == [7]


async def test_429_retry_after_http_date_is_honoured_and_capped(http_receiver, client, fake_clock):
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    http_receiver.script = [(429, {"Retry-After": soon}), (429, {"Retry-After": later})]
    [result] = await deliver(
        notification(hook("slack")),
        f"{http_receiver.base}/hook",
        client,
        policy=RetryPolicy(retry_after_cap=30, max_total=100),
        sleep=fake_clock.sleep,
        clock=fake_clock,
    )
    assert (result.ok, result.attempts) == (True, 3)
    assert 17 <= fake_clock.sleeps[0] <= 20
    assert fake_clock.sleeps[1] == 30


async def test_a_client_error_is_not_retried(http_receiver, client):
    http_receiver.script = [(400, {})]
    [result] = await deliver(
        notification(hook("slack")), f"{http_receiver.base}/services/T/B/TOKEN123", client, policy=FAST
    )
    assert (result.ok, result.attempts) == (False, 1)
    # The status and where, never the answer's body (it echoes the path, token included).
    assert result.error == f"HTTP 400 Bad Request from {http_receiver.base}/***"
    assert len(http_receiver.requests) == 1


async def test_408_is_retried(http_receiver, client):
    http_receiver.script = [(408, {})]
    [result] = await deliver(notification(hook("slack")), f"{http_receiver.base}/x", client, policy=FAST)
    assert (result.ok, result.attempts) == (True, 2)


async def test_a_receiver_that_is_down_is_given_up_on_within_the_attempt_bound(client, closed_port):
    url = f"http://127.0.0.1:{closed_port}/workflows/SECRETPATH?sig=SECRETSIG"
    [result] = await deliver(
        notification(hook("msteams")),
        url,
        client,
        policy=RetryPolicy(max_attempts=3, base_delay=0.001, timeout=1),
    )
    assert (result.ok, result.attempts) == (False, 3)
    assert result.error.startswith(f"http://127.0.0.1:{closed_port}/***: ConnectError")
    assert "SECRET" not in result.error


async def test_the_total_time_bound_stops_retries(http_receiver, client, fake_clock):
    http_receiver.default = (503, {})
    [result] = await deliver(
        notification(hook("msteams")),
        f"{http_receiver.base}/x",
        client,
        policy=RetryPolicy(max_attempts=100, base_delay=4, max_delay=60, max_total=20),
        sleep=fake_clock.sleep,
        clock=fake_clock,
    )
    # waits 4, 8, then 16 more would pass the 20 s budget
    assert (result.ok, result.attempts) == (False, 3)
    assert fake_clock.sleeps == [4, 8]
    assert "gave up" in result.error


async def test_opsgenie_creates_one_alert_per_key_and_closes_by_alias(http_receiver, client):
    receiver = {**hook("opsgenie"), "url": http_receiver.base}
    n = notification(receiver, names=("checkout", "cart"))
    results = await deliver(n, "genie-key-1", client, policy=FAST)
    assert [r.keys for r in results] == [(k,) for k in n.keys]
    assert all(r.ok for r in results)
    for seen, key in zip(http_receiver.requests, n.keys, strict=True):
        assert (seen.method, seen.path) == ("POST", "/v2/alerts")
        assert seen.headers["Authorization"] == "GenieKey genie-key-1"
        assert seen.body["alias"] == key and seen.body["priority"] == "P1"

    http_receiver.requests.clear()
    closing = notification(receiver, names=("checkout",), resolve=True)
    [result] = await deliver(closing, "genie-key-1", client, policy=FAST)
    [seen] = http_receiver.requests
    assert result.ok and result.event == "resolved"
    assert seen.path == f"/v2/alerts/{closing.keys[0]}/close"
    assert seen.query == {"identifierType": "alias"}
    assert seen.headers["Authorization"] == "GenieKey genie-key-1"


async def test_pagerduty_trigger_and_resolve_on_the_same_dedup_key(http_receiver, client):
    receiver = {**hook("pagerduty"), "url": http_receiver.base + "/"}
    n = notification(receiver)
    await deliver(n, "routing-abc", client, policy=FAST)
    await deliver(notification(receiver, resolve=True), "routing-abc", client, policy=FAST)
    trigger, resolve = http_receiver.requests
    assert trigger.path == resolve.path == "/v2/enqueue"
    assert (trigger.body["event_action"], resolve.body["event_action"]) == ("trigger", "resolve")
    assert trigger.body["dedup_key"] == resolve.body["dedup_key"] == n.keys[0]
    assert trigger.body["routing_key"] == resolve.body["routing_key"] == "routing-abc"
    assert trigger.body["payload"]["severity"] == "critical"


async def test_a_missing_secret_value_fails_without_a_request(http_receiver, client):
    [result] = await deliver(notification(hook("pagerduty")), "", client, policy=FAST)
    assert (result.ok, result.attempts) == (False, 0)
    assert http_receiver.requests == []


def email_receiver():
    return {
        "name": "mail",
        "type": "email",
        "secretRef": {"name": "smtp", "key": "url"},
        "email": {"to": ["oncall@example.com", "lead@example.com"], "from": "pitwall@example.com"},
    }


async def test_email_is_delivered_to_a_real_smtp_server(smtp_receiver, client):
    """One mail per alert, each with its own stable Message-ID (a resend after a crash is the
    same mail, however the alerts happen to be grouped then)."""
    n = notification(email_receiver(), names=("checkout", "cart"))
    results = await deliver(
        n,
        f"smtp://127.0.0.1:{smtp_receiver.port}",
        client,
        policy=FAST,
        message_id=lambda single: f"id-{single.keys[0]}",
    )
    assert [(r.ok, r.attempts, r.keys) for r in results] == [(True, 1, (k,)) for k in n.keys]
    assert len(smtp_receiver.messages) == 2
    for key, envelope in zip(n.keys, smtp_receiver.messages, strict=True):
        assert envelope.mail_from == "pitwall@example.com"
        assert envelope.rcpt_tos == ["oncall@example.com", "lead@example.com"]
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert message["Subject"].startswith("FIRING [critical] Probe")
        assert message["Message-ID"] == f"<id-{key}@pitwall.dev>"
        plain = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert key in plain and key in html
        assert "kubectl -n shop annotate alertrule probes-down" in plain


async def test_email_logs_in_with_the_credentials_from_the_url(smtp_receiver, client):
    url = f"smtp://pitwall:p%40ss%3Aword@127.0.0.1:{smtp_receiver.port}"
    [result] = await deliver(notification(email_receiver()), url, client, policy=FAST)
    assert result.ok
    assert smtp_receiver.logins == [(b"pitwall", b"p@ss:word")]


async def test_email_with_wrong_password_is_not_retried_and_not_leaked(smtp_receiver, client):
    url = f"smtp://pitwall:wrong-secret@127.0.0.1:{smtp_receiver.port}"
    [result] = await deliver(notification(email_receiver()), url, client, policy=FAST)
    assert (result.ok, result.attempts) == (False, 1)
    assert "535" in result.error and "wrong-secret" not in result.error
    assert smtp_receiver.messages == []


async def test_email_temporary_failure_is_retried(smtp_receiver, client):
    smtp_receiver.data_replies = ["451 try again later"]
    [result] = await deliver(
        notification(email_receiver()), f"smtp://127.0.0.1:{smtp_receiver.port}", client, policy=FAST
    )
    assert (result.ok, result.attempts) == (True, 2)
    assert smtp_receiver.data_calls == 2 and len(smtp_receiver.messages) == 1


async def test_email_refused_recipients_are_not_retried(smtp_receiver, client):
    smtp_receiver.rcpt_replies = ["550 no such user", "550 no such user"]
    [result] = await deliver(
        notification(email_receiver()), f"smtp://127.0.0.1:{smtp_receiver.port}", client, policy=FAST
    )
    assert (result.ok, result.attempts) == (False, 1)
    assert "550" in result.error


@pytest.mark.parametrize(
    "url, expected",
    [
        (
            "smtp://mail.example:2525",
            {
                "hostname": "mail.example",
                "port": 2525,
                "username": None,
                "password": None,
                "use_tls": False,
                "start_tls": False,
            },
        ),
        (
            "smtp://u:p%2Fw@mail.example?starttls=true",
            {
                "hostname": "mail.example",
                "port": 25,
                "username": "u",
                "password": "p/w",
                "use_tls": False,
                "start_tls": True,
            },
        ),
        (
            "smtps://mail.example",
            {
                "hostname": "mail.example",
                "port": 465,
                "username": None,
                "password": None,
                "use_tls": True,
                "start_tls": False,
            },
        ),
    ],
)
def test_smtp_url_forms(url, expected):
    assert _smtp_options(url) == expected


def test_smtp_url_must_be_smtp():
    with pytest.raises(ValueError):
        _smtp_options("https://mail.example")


@pytest.mark.parametrize(
    "url, masked",
    [
        ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/***"),
        ("https://x.logic.azure.com:443/workflows/1?sig=abc", "https://x.logic.azure.com:443/***"),
        ("https://api.opsgenie.com", "https://api.opsgenie.com"),
    ],
)
def test_urls_are_masked(url, masked):
    assert mask_url(url) == masked


async def test_email_without_from_uses_the_relay_login_or_a_pitwall_address(smtp_receiver, client):
    receiver = {
        "name": "mail",
        "type": "email",
        "secretRef": {"name": "smtp", "key": "url"},
        "email": {"to": ["oncall@example.com"]},
    }
    await deliver(notification(receiver), f"smtp://127.0.0.1:{smtp_receiver.port}", client, policy=FAST)
    assert smtp_receiver.messages[-1].mail_from == "pitwall@127.0.0.1"


@dataclass(frozen=True)
class Notice:
    subject: str = "Planned maintenance: Payments API v2, Sat 05 Dec 2026 22:00 UTC"
    text: str = (
        "Planned maintenance is coming up for the APIs below.\n- Payments API (payments) v2: unavailable\n"
    )
    html: str = "<p>Planned maintenance is coming up.</p>"
    data: dict = field(default_factory=lambda: {"kind": "advance", "reason": "upgrade"})


@pytest.mark.parametrize("type_", ["msteams", "slack", "webhook"])
async def test_free_form_messages_reach_chat_and_webhooks(http_receiver, client, type_):
    receiver = parse_receiver(hook(type_))
    result = await deliver_message(receiver, Notice(), f"{http_receiver.base}/hook", client, policy=FAST)
    assert (result.ok, result.event, result.keys) == (True, "notice", ())
    body = http_receiver.requests[0].body
    if type_ == "msteams":
        assert body["attachments"][0]["content"]["body"][0]["text"] == Notice.subject
    elif type_ == "slack":
        assert body["text"] == Notice.subject
    else:
        assert body == {"kind": "advance", "reason": "upgrade"}


async def test_free_form_message_by_email(smtp_receiver, client):
    receiver = parse_receiver(email_receiver())
    result = await deliver_message(
        receiver, Notice(), f"smtp://127.0.0.1:{smtp_receiver.port}", client, event="digest", policy=FAST
    )
    assert (result.ok, result.event) == (True, "digest")
    message = message_from_bytes(smtp_receiver.messages[0].content, policy=policy.default)
    assert message["Subject"] == Notice.subject
    assert "Payments API (payments) v2" in message.get_body(("plain",)).get_content()


async def test_paging_services_refuse_free_form_messages(http_receiver, client):
    result = await deliver_message(parse_receiver(hook("pagerduty")), Notice(), "rk", client, policy=FAST)
    assert (result.ok, result.attempts) == (False, 0)
    assert http_receiver.requests == []
