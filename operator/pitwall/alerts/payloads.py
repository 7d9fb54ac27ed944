"""What each receiver is sent, in the service's own format (pure: no I/O, no secrets).

Every message says what is wrong, on which object, since when, by when it must be
acknowledged and how to acknowledge it, so whoever reads it at 3 a.m. can act on it alone.
Chat and mail receivers get one message per notification (alerts of a rule that fire
together share it); Opsgenie and PagerDuty get one request per alert, deduplicated on the
alert key, so their own incident handling works as usual.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from .. import durations
from .state import RESOLVED, AlertRecord, Notification

OPSGENIE_PRIORITY = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4"}
PAGERDUTY_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
HEADLINES = {
    "firing": "FIRING",
    "escalation": "ESCALATED",
    "reminder": "STILL FIRING",
    "resolved": "RESOLVED",
}
# Receivers' published limits; a payload over one is refused, and a refused page is a lost page.
# tests/unit/alerts/test_alert_payloads.py builds worst cases (63-character namespaces, 253-character
# names, long summaries, 1,000 alerts) and checks each limit below.
# - Teams (learn.microsoft.com, "Create Incoming Webhooks"): "The message size limit is 28 KB".
TEAMS_MAX_BYTES = 27_000
# - Slack Block Kit (docs.slack.dev, block reference): at most 50 blocks a message, a section's
#   text at most 3,000 characters, a header's plain_text at most 150; chat.postMessage truncates
#   ``text`` over 40,000 characters.
SLACK_MAX_ALERTS = 20  # one section per alert, plus header, context and "more"
SLACK_MAX_BLOCKS, SLACK_SECTION_MAX, SLACK_HEADER_MAX, SLACK_TEXT_MAX = 50, 3000, 150, 40_000
# - Opsgenie Alert API (docs.opsgenie.com, "Alerts and alert fields" / Create alert): message
#   <= 130 characters, alias <= 512, description <= 15,000, at most 20 tags of <= 50 characters
#   each, entity <= 512, source <= 100, details (key + value) <= 8,000 characters in total.
OPSGENIE_MESSAGE_MAX, OPSGENIE_ALIAS_MAX, OPSGENIE_DESCRIPTION_MAX = 130, 512, 15_000
OPSGENIE_TAGS_MAX, OPSGENIE_TAG_MAX, OPSGENIE_ENTITY_MAX, OPSGENIE_SOURCE_MAX = 20, 50, 512, 100
OPSGENIE_DETAILS_MAX = 8000
# - PagerDuty Events API v2 (developer.pagerduty.com, Send an Alert Event): summary <= 1,024
#   characters, dedup_key <= 255; a whole event <= 512 KB (Alertmanager's notifier trims
#   custom_details for the same reason).
PAGERDUTY_SUMMARY_MAX, PAGERDUTY_DEDUP_MAX, PAGERDUTY_EVENT_MAX = 1024, 255, 512 * 1024
# - E-mail (RFC 5322 section 2.1.1): a line, header lines included, at most 998 characters; the
#   subject is kept short enough to read, long headers are folded by the email package.
EMAIL_SUBJECT_MAX = 250
MESSAGE_MAX = 1000  # a condition message is a hint, not a log
ALERTMANAGER_ZERO_TIME = "0001-01-01T00:00:00Z"


def headline(n: Notification) -> str:
    """``FIRING [critical] Probe checkout: Ready is False`` or ``... 3 alerts of rule probes-down``."""
    what = n.alerts[0].subject if len(n.alerts) == 1 else f"{len(n.alerts)} alerts of rule {n.rule.name}"
    return f"{HEADLINES[n.event]} [{n.rule.severity}] {what}"


def ack_commands(n: Notification, key: str) -> str:
    """Both commands work as pasted, from any kubeconfig context: each names the namespace."""
    return (
        f"kubectl -n {n.rule.namespace} annotate alertrule {n.rule.name} pitwall.dev/acknowledge={key} "
        f"--overwrite  (or: pitwall ack -n {n.rule.namespace} {n.rule.name} {key})"
    )


def facts(n: Notification, alert: AlertRecord) -> list[tuple[str, str]]:
    """The lines every format shows about one alert, in reading order."""
    out = [
        ("Object", f"{alert.kind} {n.rule.namespace}/{alert.name}"),
        ("Condition", f"{n.rule.when.condition}={n.rule.when.status} since {_when(alert.pending_since)}"),
    ]
    if alert.since:
        out.append(("Firing since", _when(alert.since)))
    if alert.state == RESOLVED and alert.resolved_at:
        out.append(("Resolved at", f"{_when(alert.resolved_at)} (after {_lasted(alert)})"))
    if n.event == "escalation":
        out.append(
            ("Escalation", f"step {alert.escalation_step} of {len(n.rule.escalation)}: not acknowledged")
        )
    if alert.acknowledged_at:
        out.append(("Acknowledged", f"by {alert.acknowledged_by} at {_when(alert.acknowledged_at)}"))
    elif alert.state != RESOLVED and alert.ack_deadline and alert.since:
        window = durations.format((alert.ack_deadline - alert.since).total_seconds())
        out.append(("Acknowledge by", f"{_when(alert.ack_deadline)} ({alert.severity}: within {window})"))
    if alert.message:
        out.append(("Details", _cut(alert.message, MESSAGE_MAX)))
    out.append(("Alert key", alert.key))
    if alert.state != RESOLVED and not alert.acknowledged_at:
        out.append(("To acknowledge", ack_commands(n, alert.key)))
    return out


def text(n: Notification) -> str:
    """Plain text of the whole notification (email body, Opsgenie description)."""
    parts = [headline(n), f"Rule: {n.rule.namespace}/{n.rule.name}", ""]
    for alert in n.alerts:
        parts.append(alert.subject)
        parts.extend(f"  {title}: {value}" for title, value in facts(n, alert))
        parts.append("")
    return "\n".join(parts)


def teams(n: Notification) -> dict:
    """A Teams Workflows message holding one Adaptive Card, shortened to fit the size limit."""
    shown = len(n.alerts)
    while True:
        message = _teams_card(n, shown)
        if shown == 1 or len(json.dumps(message).encode()) <= TEAMS_MAX_BYTES:
            return message
        shown //= 2


def _teams_card(n: Notification, shown: int) -> dict:
    colour = "Good" if n.event == RESOLVED else "Attention"
    body = [
        {
            "type": "TextBlock",
            "text": headline(n),
            "weight": "Bolder",
            "size": "Medium",
            "color": colour,
            "wrap": True,
        },
        {
            "type": "TextBlock",
            "text": f"Rule {n.rule.namespace}/{n.rule.name}",
            "isSubtle": True,
            "spacing": "None",
            "wrap": True,
        },
    ]
    for alert in n.alerts[:shown]:
        body.append(
            {
                "type": "Container",
                "separator": True,
                "items": [
                    {
                        "type": "TextBlock",
                        "text": alert.subject,
                        "weight": "Bolder",
                        "color": colour,
                        "wrap": True,
                    },
                    {"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in facts(n, alert)]},
                ],
            }
        )
    if shown < len(n.alerts):
        body.append(
            {
                "type": "TextBlock",
                "text": f"... and {len(n.alerts) - shown} more (see the AlertRule status)",
                "isSubtle": True,
                "wrap": True,
            }
        )
    return _card(body)


def teams_message(title: str, text_: str) -> dict:
    """A free-form Teams card (maintenance notices, digests)."""
    return _card(
        [
            {
                "type": "TextBlock",
                "text": title,
                "weight": "Bolder",
                "size": "Medium",
                "color": "Accent",
                "wrap": True,
            },
            {"type": "TextBlock", "text": _cut(text_, TEAMS_MAX_BYTES // 2), "wrap": True},
        ]
    )


def _card(body: list[dict]) -> dict:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.2",
                    "msteams": {"width": "Full"},
                    "body": body,
                },
            }
        ],
    }


def slack(n: Notification) -> dict:
    """A Slack incoming-webhook message: ``text`` for notifications, ``blocks`` for the channel."""
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(headline(n), SLACK_HEADER_MAX)}},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"Rule *{_mrkdwn(n.rule.namespace)}/{_mrkdwn(n.rule.name)}*"}
            ],
        },
    ]
    for alert in n.alerts[:SLACK_MAX_ALERTS]:
        lines = [f"*{_mrkdwn(alert.subject)}*"]
        lines += [
            f"*{t}:* {_mrkdwn(v) if t != 'To acknowledge' else '`' + _mrkdwn(v) + '`'}"
            for t, v in facts(n, alert)
        ]
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), SLACK_SECTION_MAX)}}
        )
    if len(n.alerts) > SLACK_MAX_ALERTS:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": (
                            f"... and {len(n.alerts) - SLACK_MAX_ALERTS} more (see the AlertRule status)"
                        ),
                    }
                ],
            }
        )
    return {"text": _cut(headline(n), SLACK_TEXT_MAX), "blocks": blocks[:SLACK_MAX_BLOCKS]}


def slack_message(title: str, text_: str) -> dict:
    """A free-form Slack message (maintenance notices, digests)."""
    return {
        "text": _cut(title, SLACK_TEXT_MAX),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _cut(title, SLACK_HEADER_MAX)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(_mrkdwn(text_), SLACK_SECTION_MAX)}},
        ],
    }


def opsgenie_create(n: Notification, alert: AlertRecord) -> dict:
    """Body of ``POST /v2/alerts``; a repeat with the same alias only bumps Opsgenie's count."""
    details = {title: _cut(value, 500) for title, value in facts(n, alert)} | {
        "rule": _cut(f"{n.rule.namespace}/{n.rule.name}", 500),
        "event": n.event,
    }
    while sum(len(k) + len(v) for k, v in details.items()) > OPSGENIE_DETAILS_MAX:
        longest = max(details, key=lambda k: len(details[k]))
        details[longest] = _cut(details[longest], max(1, len(details[longest]) // 2))
    tags = ["pitwall", n.rule.severity, alert.kind, n.rule.namespace]  # a namespace may have 63 characters
    return {
        "message": _cut(alert.subject, OPSGENIE_MESSAGE_MAX),
        "alias": _cut(alert.key, OPSGENIE_ALIAS_MAX),
        "description": _cut(
            text(Notification(n.rule, n.receiver, n.event, (alert,))), OPSGENIE_DESCRIPTION_MAX
        ),
        "priority": OPSGENIE_PRIORITY[n.rule.severity],
        "source": _cut("pitwall", OPSGENIE_SOURCE_MAX),
        "entity": _cut(f"{alert.kind}/{alert.name}", OPSGENIE_ENTITY_MAX),
        "tags": list(dict.fromkeys(_cut(t, OPSGENIE_TAG_MAX) for t in tags))[:OPSGENIE_TAGS_MAX],
        "details": details,
    }


def opsgenie_close(n: Notification, alert: AlertRecord) -> dict:
    """Body of ``POST /v2/alerts/{alias}/close?identifierType=alias``."""
    note = f"Resolved by Pitwall at {_when(alert.resolved_at)}"
    return {"source": "pitwall", "note": f"{note}: {_cut(alert.message, 900)}" if alert.message else note}


def pagerduty(n: Notification, alert: AlertRecord, routing_key: str, external_url: str = "") -> dict:
    """A PagerDuty Events v2 event (``POST /v2/enqueue``): trigger, or resolve on the same dedup key."""
    dedup_key = alert.key[:PAGERDUTY_DEDUP_MAX]  # alert_key() keeps it far shorter; never cut in two ways
    if n.event == RESOLVED:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": _cut(alert.subject, PAGERDUTY_SUMMARY_MAX),
            "source": f"{n.rule.namespace}/{alert.kind}/{alert.name}",
            "severity": PAGERDUTY_SEVERITY[n.rule.severity],
            "timestamp": durations.rfc3339(alert.since or alert.pending_since),
            "component": alert.name,
            "group": n.rule.namespace,
            "class": f"{n.rule.when.condition}={n.rule.when.status}",
            "custom_details": {title: value for title, value in facts(n, alert)}
            | {"rule": f"{n.rule.namespace}/{n.rule.name}", "event": n.event},
        },
        "client": "Pitwall",
    }
    if external_url:
        event["client_url"] = external_url
    if len(json.dumps(event).encode()) > PAGERDUTY_EVENT_MAX:
        event["payload"]["custom_details"] = {
            "rule": f"{n.rule.namespace}/{n.rule.name}",
            "event": n.event,
            "note": "details too large for PagerDuty: see the AlertRule status",
        }
    return event


def email(
    n: Notification, sender: str, to: tuple[str, ...] | list[str], message_id: str | None = None
) -> EmailMessage:
    """The notification as a mail; the alert keys also go in a header, for mail filters."""
    message = email_message(headline(n), text(n), _html(n), sender, to, message_id)
    message["X-Pitwall-Alert-Keys"] = ", ".join(n.keys)
    return message


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def header_value(text: str, limit: int = 998) -> str:
    """``text`` fit for a mail header: control characters (CR/LF from a display name would
    make the standard library refuse the whole message, or inject headers) become one space,
    and the line stays within RFC 5322's 998 characters."""
    return " ".join(_CONTROL.sub(" ", text).split())[:limit]


def email_message(
    subject: str,
    text_: str,
    html_: str,
    sender: str,
    to: tuple[str, ...] | list[str],
    message_id: str | None = None,
) -> EmailMessage:
    """A plain-text mail with an HTML alternative (tables read better in most clients).

    ``message_id`` is the dedup key of a message the outbox may send twice (a crash between
    sending and recording it): the same id each time, so mail systems and readers see one.
    """
    message = EmailMessage()
    message["Subject"] = _cut(header_value(subject), EMAIL_SUBJECT_MAX)  # one line, readable
    message["From"] = header_value(sender)
    message["To"] = header_value(", ".join(to))
    message["Date"] = format_datetime(durations.now())
    message["Message-ID"] = f"<{message_id}@pitwall.dev>" if message_id else make_msgid(domain="pitwall.dev")
    message.set_content(text_)
    message.add_alternative(html_, subtype="html")
    return message


def _html(n: Notification) -> str:
    colour = "#1a7f37" if n.event == RESOLVED else "#cf222e"
    parts = [
        f'<html><body><h2 style="color:{colour}">{html.escape(headline(n))}</h2>',
        f"<p>Rule {html.escape(n.rule.namespace)}/{html.escape(n.rule.name)}</p>",
    ]
    for alert in n.alerts:
        rows = "".join(
            f'<tr><th align="left">{html.escape(t)}</th><td>{html.escape(v)}</td></tr>'
            for t, v in facts(n, alert)
        )
        parts.append(f"<h3>{html.escape(alert.subject)}</h3><table>{rows}</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def alertmanager(n: Notification, external_url: str = "") -> dict:
    """The Alertmanager webhook (version 4) body, for tools that already consume it."""
    status = "resolved" if n.event == RESOLVED else "firing"
    alerts = [_alertmanager_alert(n, alert, status, external_url) for alert in n.alerts]
    group = {"alertname": n.rule.name, "namespace": n.rule.namespace}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{n.rule.name}", namespace="{n.rule.namespace}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": n.receiver.name,
        "groupLabels": group,
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }


def _alertmanager_alert(n: Notification, alert: AlertRecord, status: str, external_url: str) -> dict:
    labels = {
        "alertname": n.rule.name,
        "namespace": n.rule.namespace,
        "severity": n.rule.severity,
        "kind": alert.kind,
        "object": alert.name,
        "condition": f"{n.rule.when.condition}={n.rule.when.status}",
        "alert_key": alert.key,
    }
    annotations = {"summary": alert.subject, "description": alert.message, "event": n.event}
    if alert.ack_deadline and status == "firing":
        annotations["ack_deadline"] = durations.rfc3339(alert.ack_deadline)
    if alert.acknowledged_by:
        annotations["acknowledged_by"] = alert.acknowledged_by
    elif status == "firing":
        annotations["acknowledge"] = ack_commands(n, alert.key)
    return {
        "status": status,
        "labels": labels,
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": durations.rfc3339(alert.since or alert.pending_since),
        "endsAt": durations.rfc3339(alert.resolved_at) if status == "resolved" else ALERTMANAGER_ZERO_TIME,
        "generatorURL": external_url,
        "fingerprint": hashlib.sha256(alert.key.encode()).hexdigest()[:16],
    }


def _common(maps: list[dict]) -> dict:
    if not maps:
        return {}
    return {k: v for k, v in maps[0].items() if all(m.get(k) == v for m in maps[1:])}


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "unknown"


def _lasted(alert: AlertRecord) -> str:
    start = alert.since or alert.pending_since
    return (
        durations.format((alert.resolved_at - start).total_seconds())
        if start and alert.resolved_at
        else "unknown"
    )


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _mrkdwn(value: str) -> str:
    """Slack's three control characters; anything else is shown as typed."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
