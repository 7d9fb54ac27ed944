"""A mail that cannot be composed as given is sanitised, or recorded once as failed: never a raise
(a raise escaped the delivery's error handling, and the reconcile re-sent the notice in a loop)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy

import pytest

from pitwall.alerts.delivery import RetryPolicy, deliver_message
from pitwall.alerts.payloads import header_value
from pitwall.alerts.rules import parse_receiver, parse_rule
from pitwall.api.alertrule import SUMMARY_RULE
from pitwall.errors import InvalidSpec

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01, max_total=5, timeout=5)
RECEIVER = {
    "name": "mail",
    "type": "email",
    "secretRef": {"name": "smtp", "key": "url"},
    "email": {"to": ["oncall@example.com"], "from": "Pitwall\r\nBcc: everyone@example.com"},
}


@dataclass
class Notice:
    subject: str = "Planned maintenance: Payments\r\nBcc: victim@example.com\n API v2"
    text: str = "Planned maintenance.\n"
    html: str = "<p>Planned maintenance.</p>"
    data: dict = field(default_factory=dict)


def test_header_values_lose_control_characters_and_stay_one_line():
    assert header_value("Payments\r\nBcc: x@example.com") == "Payments Bcc: x@example.com"
    assert header_value("a\x00b\x1b[31mc\x7f") == "a b [31mc"
    assert len(header_value("x" * 5000)) == 998


async def test_crlf_in_a_display_name_reaches_the_inbox_as_one_subject_line(smtp_receiver, client):
    result = await deliver_message(
        parse_receiver(RECEIVER), Notice(), f"smtp://127.0.0.1:{smtp_receiver.port}", client, policy=FAST
    )
    assert (result.ok, result.attempts) == (True, 1)
    [envelope] = smtp_receiver.messages
    assert envelope.rcpt_tos == ["oncall@example.com"]  # no injected Bcc
    message = message_from_bytes(envelope.content, policy=policy.default)
    assert message["Subject"] == "Planned maintenance: Payments Bcc: victim@example.com API v2"
    assert message["Bcc"] is None


async def test_a_mail_that_cannot_be_composed_is_one_failed_result_without_retries(smtp_receiver, client):
    @dataclass
    class Broken(Notice):
        html: str = "\ud800"  # a lone surrogate: no charset can encode it

    result = await deliver_message(
        parse_receiver(RECEIVER), Broken(), f"smtp://127.0.0.1:{smtp_receiver.port}", client, policy=FAST
    )
    assert (result.ok, result.attempts) == (False, 0)
    assert result.error.startswith("could not compose the mail: ")
    assert smtp_receiver.messages == []


RULE = {
    "severity": "high",
    "selector": {"kinds": ["Probe"]},
    "receivers": [{"name": "ops", "type": "webhook", "url": "http://127.0.0.1/"}],
}


@pytest.mark.parametrize("summary", ["{kind:>999999999}", "{{{name:>999999999}}}", "{name:{kind}}"])
def test_a_summary_placeholder_with_a_format_spec_is_refused(summary):
    # each alert's subject would be a gigabyte string
    with pytest.raises(InvalidSpec) as exc:
        parse_rule("ns", "r", {**RULE, "summary": summary})
    assert exc.value.reason == "InvalidSummary" and "takes no format spec" in exc.value.message


@pytest.mark.parametrize("summary", ["{kind} {name} is down", "{name} {", "{{ratio: 1}} {name}", "{0} down"])
def test_plain_and_broken_summaries_are_kept(summary):
    assert parse_rule("ns", "r", {**RULE, "summary": summary}).summary == summary


@pytest.mark.parametrize(
    "summary, refused",
    [
        ("{kind:>999999999}", True),
        ("x {name:10}", True),
        ("{kind} {name}", False),
        ("{{ratio: 1}}", False),
    ],
)
def test_the_crd_refuses_format_specs_it_can_see(summary, refused):
    pattern = SUMMARY_RULE["rule"].removeprefix("!self.matches(r'").removesuffix("')")
    assert bool(re.search(pattern, summary)) is refused
