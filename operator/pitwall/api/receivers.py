"""Notification receivers: AlertRule.spec.receivers and MaintenanceWindow.spec.notice.receivers."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from .base import DNS_LABEL, EMAIL_LEN, EMAIL_RULE, LABEL_LEN, Model, cel, flag, items, rule, text, url
from .shared import SecretKeyRef

ReceiverType = Literal["msteams", "slack", "opsgenie", "pagerduty", "email", "webhook"]
RECEIVER_TYPES: tuple[str, ...] = get_args(ReceiverType)
# Receivers whose ``url`` field is an override or a plain webhook URL (the rest keep it in a Secret).
URL_TYPES = ("opsgenie", "pagerduty", "webhook")

EmailAddress = Annotated[
    str, Field(description="An email address.", max_length=EMAIL_LEN, json_schema_extra=cel(EMAIL_RULE))
]
ReceiverName = Annotated[str, Field(max_length=LABEL_LEN, pattern=DNS_LABEL, description="A receiver name.")]


class EmailSettings(Model):
    """Email settings (type email)."""

    to: list[EmailAddress] | None = items("Recipients.", 50, min_items=1)
    from_: str | None = text("Sender, e.g. Pitwall <pitwall@example.com>.", EMAIL_LEN)


class Receiver(Model):
    """A notification receiver."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "has(self.secretRef) || (self.type == 'webhook' && has(self.url))",
                "every receiver needs secretRef, except a webhook receiver with a plain url",
            ),
            rule(
                "self.type != 'email' || (has(self.email) && has(self.email.to))",
                "an email receiver needs email.to",
            ),
            rule("!has(self.email) || self.type == 'email'", "email settings are only for type email"),
            rule(
                "!has(self.url) || self.type in ['opsgenie', 'pagerduty', 'webhook']",
                "url is only for opsgenie, pagerduty and webhook receivers; put msteams and slack webhook URLs "
                "in a Secret and use secretRef",
            ),
        )
    }

    name: str = text(
        "Receiver name, referenced by escalation and digest.",
        LABEL_LEN,
        default=...,
        min_length=1,
        pattern=DNS_LABEL,
    )
    type: ReceiverType = Field(description="Where notifications go.")
    secret_ref: SecretKeyRef | None = Field(
        None,
        description="The Secret key holding the webhook URL (msteams, slack, webhook), the API key "
        "(opsgenie), the routing key (pagerduty) or the SMTP URL smtp://user:pass@host:port "
        "(email).",
    )
    url: str | None = url(
        "API base URL override (opsgenie, pagerduty) or a plain webhook URL (webhook) that needs no secret."
    )
    email: EmailSettings | None = None


class AlertReceiver(Receiver):
    """A notification receiver."""

    escalation_only: bool = flag("Only notified by escalation steps, never on first firing.", False)
