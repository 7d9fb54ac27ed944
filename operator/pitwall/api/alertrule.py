"""AlertRule: what pages whom, how fast, with acknowledgement and escalation."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from ..floors import ADMISSION
from .base import (
    CONDITION_TYPE,
    LABEL_LEN,
    NAME_LEN,
    SHORT_TEXT,
    TEXT,
    Model,
    cel,
    duration,
    flag,
    integer,
    items,
    mapping,
    rule,
    section,
    text,
    timestamp,
    unique_by,
)
from .receivers import AlertReceiver, ReceiverName
from .resource import AGE, READY, Column, Names, Resource
from .shared import ConditionStatus, LabelMap, LabelRequirement, Status

Severity = Literal["critical", "high", "medium", "low", "blocked"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
AlertKind = Literal["ApiProduct", "Probe", "Backend"]
ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)
AlertState = Literal["pending", "firing", "held", "resolved"]
ALERT_STATES: tuple[str, ...] = get_args(AlertState)
Event = Literal["firing", "escalation", "reminder", "resolved"]
EVENTS: tuple[str, ...] = get_args(Event)

DELIVERIES_KEPT = 20  # delivery attempts alerts/state.py keeps per alert (status.alerts[].deliveries)


class Selector(Model):
    """Which objects in this namespace the rule watches."""

    kinds: list[Annotated[AlertKind, Field(description="A kind.")]] = items(
        "Kinds to watch.", 3, default=list(ALERT_KINDS), min_items=1, list_type="set"
    )
    match_labels: LabelMap | None = mapping("Label selector. Objects whose labels include all of these.")
    match_expressions: list[LabelRequirement] | None = items(
        "Label selector. Label selector requirements, all of which must hold.", 16
    )


class When(Model):
    """The condition that fires the alert."""

    condition: str = text("Condition type to watch.", 316, default="Ready", pattern=CONDITION_TYPE)
    status: ConditionStatus = Field("False", description="Fire when the condition has this status.")
    for_: str = duration("It must hold this long before the alert fires.", "0s")


ReceiverNames = list[ReceiverName]


class EscalationStep(Model):
    """An escalation step."""

    after: str = duration("Time since the alert fired.", ..., minimum=ADMISSION.escalation_delay)
    receivers: ReceiverNames = items(
        "Receivers (names from spec.receivers) notified at this step.", 20, default=..., min_items=1
    )


class Digest(Model):
    """A periodic summary sent to some receivers."""

    interval: str = duration("How often.", ..., minimum=ADMISSION.digest_interval)
    receivers: ReceiverNames = items("Receivers (names from spec.receivers).", 20, default=..., min_items=1)


# "{kind:>999999999}" would make every alert of the rule a gigabyte string.
SUMMARY_RULE = rule(
    r"!self.matches(r'(^|[^{])\{[^{}:]*:')",
    "summary placeholders take no format spec: write {kind}, {name}, {namespace}, {rule}, "
    "{condition}, {status}, {reason}, {message} or {severity} as they are (and {{ for a brace)",
)


TrafficSignal = Literal["errorRate", "latency", "requestRate", "noTraffic", "failedRequests"]
TRAFFIC_SIGNALS: tuple[str, ...] = get_args(TrafficSignal)
TrafficScope = Literal["product", "version", "consumer"]
ErrorClass = Literal["failed", "server", "client", "timeout"]


class TrafficCondition(Model):
    """Fire on the real traffic of the selected ApiProducts (their spec.traffic, read from Prometheus)
    instead of a condition; when.for, severity, receivers, escalation, maintenance holds apply alike."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "self.signal == 'noTraffic' || has(self.above) || has(self.below)",
                "a traffic condition needs above or below (noTraffic needs neither)",
            ),
            rule(
                "self.signal != 'requestRate' || has(self.below)",
                "requestRate fires below a rate: set below",
                field_path=".below",
            ),
            rule(
                "!(self.signal in ['errorRate', 'latency', 'failedRequests']) || has(self.above)",
                "errorRate, latency and failedRequests fire above a threshold: set above",
                field_path=".above",
            ),
            rule(
                "!has(self.warRoom) || !self.warRoom || self.signal == 'failedRequests'",
                "warRoom is a failedRequests threshold",
                field_path=".warRoom",
            ),
        )
    }

    signal: TrafficSignal = Field(
        description="errorRate (share of requests of errorClass), latency (quantile in ms), "
        "requestRate (requests/s, or with weekAgoRatio a share of last week's), noTraffic "
        "(no requests at all), failedRequests (server errors and timeouts counted over "
        "`over`)."
    )
    per: TrafficScope = Field(
        "version",
        description="One alert per product, per version or per consumer "
        "(consumers among each version's top consumers by requests and by failures).",
    )
    above: float | None = Field(
        None,
        ge=0,
        description="Fire above: a share 0..1 (errorRate), milliseconds (latency), a count (failedRequests).",
    )
    below: float | None = Field(
        None,
        ge=0,
        description="Fire below (requestRate): requests per second, or a share "
        "of the same time a week ago with weekAgoRatio.",
    )
    week_ago_ratio: bool = flag(
        "requestRate: below is a share of last week's rate (0.5: half of last week).", False
    )
    quantile: Literal["p50", "p95", "p99"] = Field("p99", description="latency: which quantile.")
    error_class: ErrorClass = Field(
        "failed",
        description="errorRate: failed (server errors and timeouts), server (5xx), client (4xx) or timeout.",
    )
    min_rps: float = Field(
        0.1,
        ge=0,
        description="errorRate and latency are not judged below this rate (one "
        "failed call out of two is not an outage).",
    )
    over: str = duration("failedRequests: counted over this period.", "10m")
    war_room: bool = flag(
        "A war-room escalation: firing opens the war room (status.warRoom, Events WarRoomOpened "
        "on the rule and the products) and pages this rule's own receivers.",
        False,
    )


class AlertRuleSpec(Model):
    """When to alert, whom, and how it escalates."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "self.severity == 'blocked' || (has(self.receivers) && self.receivers.exists(r, "
                "!has(r.escalationOnly) || !r.escalationOnly))",
                "a paging rule needs at least one receiver that is not escalationOnly (only severity blocked may "
                "have none)",
                field_path=".receivers",
            ),
            rule(
                "!has(self.escalation) || self.escalation.all(e, e.receivers.all(n, "
                "has(self.receivers) && self.receivers.exists(r, r.name == n)))",
                "escalation receivers must name entries of spec.receivers",
                field_path=".escalation",
            ),
            rule(
                "!has(self.digest) || self.digest.receivers.all(n, "
                "has(self.receivers) && self.receivers.exists(r, r.name == n))",
                "digest receivers must name entries of spec.receivers",
                field_path=".digest.receivers",
            ),
        )
    }

    severity: Severity = Field(
        description="critical (answer within 30m), high (2h), medium (24h), low (48h), or "
        "blocked (recorded, never paged)."
    )
    summary: str | None = text(
        'Alert summary template, e.g. "{kind} {name} is down". Placeholders take no format spec.',
        TEXT,
        rules=[SUMMARY_RULE],
    )
    selector: Selector
    when: When = section(When.__doc__, default_empty=True, factory=When)
    receivers: list[AlertReceiver] | None = items(
        "Where notifications go (unique names).", 20, rules=[unique_by("name", "receiver names")]
    )
    escalation: list[EscalationStep] | None = items(
        "Escalation steps for alerts not acknowledged in time.", 10
    )
    repeat_interval: str = duration(
        "Remind while the alert stays firing and unacknowledged (0s: never).",
        "4h",
        minimum=ADMISSION.repeat_interval,
        zero_ok=True,
    )
    send_resolved: bool = flag("Notify when the alert resolves.", True)
    group_wait: str = duration("Wait this long to group alerts of this rule into one message.", "0s")
    digest: Digest | None = None
    traffic: TrafficCondition | None = Field(None, description=TrafficCondition.__doc__)


# ------------------------------------------------------------------ status


class Delivery(Model):
    """One notification attempt series."""

    receiver: str | None = text("Receiver name.", LABEL_LEN)
    event: Event | None = Field(None, description="What was sent.")
    at: str | None = timestamp("When.")
    ok: bool | None = flag("Delivered.")
    attempts: int | None = integer("Attempts made.", minimum=0)
    error: str | None = text(
        "Last error: the HTTP status and where, never the receiver's answer (secrets masked).", TEXT
    )


class Owed(Model):
    """An owed notification."""

    receiver: str | None = text("Receiver name.", LABEL_LEN)
    event: Event | None = Field(None, description="What is owed.")
    due: str | None = timestamp("Not before this.")
    tries: int | None = integer("Failed deliveries so far.", minimum=0)


class AlertObject(Model):
    """The object the alert is about."""

    kind: str | None = text("Kind.", 64)
    name: str | None = text("Name.", NAME_LEN)


class Alert(Model):
    """One alert: this rule and one object."""

    key: str | None = text("Stable alert key (acknowledge with pitwall.dev/acknowledge=KEY).", 512)
    object: AlertObject | None = None
    subject: str | None = text("Human summary.", TEXT)
    state: AlertState | None = Field(None, description="pending, firing, held (maintenance) or resolved.")
    pending_since: str | None = timestamp("When the condition started to hold.")
    since: str | None = timestamp("When it fired.")
    severity: Severity | None = Field(None, description="Severity.")
    ack_deadline: str | None = timestamp("Answer before this.")
    acknowledged_by: str | None = text("Who acknowledged.", SHORT_TEXT)
    acknowledged_at: str | None = timestamp("When it was acknowledged.")
    escalation_step: int | None = integer("Escalation steps taken so far.", minimum=0)
    last_notified_at: str | None = timestamp("Last notification sent.")
    resolved_at: str | None = timestamp("When it resolved.")
    deliveries: list[Delivery] | None = items(f"Deliveries (the most recent {DELIVERIES_KEPT}).", 50)
    notified: list[Annotated[str, Field(max_length=LABEL_LEN, description="Receiver name.")]] | None = items(
        "Receivers that were sent a firing, escalation or reminder: the resolve goes to them.", 20
    )
    outstanding: list[Owed] | None = items(
        "Notifications decided but not delivered yet (retried; survive a restart).", 40
    )
    message: str | None = text(
        "The condition's message when last evaluated (failing step, reason, "
        "correlation id, log link; masked, at most 1,000 characters): the "
        "Details line of notifications.",
        TEXT,
    )


class WarRoom(Model):
    """The war room of a warRoom rule: open while any of its alerts fires."""

    state: Literal["open", "closed"] | None = Field(None, description="open or closed.")
    opened_at: str | None = timestamp("When it opened.")
    closed_at: str | None = timestamp("When it closed.")
    products: list[Annotated[str, Field(max_length=NAME_LEN, description="A product.")]] | None = items(
        "Products whose failed requests passed the threshold.", 50
    )
    failed_requests: float | None = Field(None, description="Failed requests over the period when it opened.")
    threshold: float | None = Field(None, description="The threshold passed.")
    message: str | None = text("What happened, in words.", TEXT)


class AlertRuleStatus(Status):
    """Alert state, kept here so a restart neither loses nor repeats a notification."""

    firing: int | None = integer("Alerts firing now.", minimum=0)
    alerts: list[Alert] | None = items("Open and recently resolved alerts.", 1000)
    last_digest_at: str | None = timestamp("When the last digest was sent.")
    war_room: WarRoom | None = None


class AlertRule(Resource):
    """What pages whom, how fast, with acknowledgement and escalation."""

    names = Names(
        "alertrules",
        ("pwalert",),
        (
            READY,
            Column("Severity", ".spec.severity", description="critical, high, medium, low or blocked."),
            Column("Firing", ".status.firing", "integer", "Alerts firing now."),
            Column("When", ".spec.when.condition", description="The condition watched.", priority=1),
            AGE,
        ),
    )

    spec: AlertRuleSpec
    status: AlertRuleStatus | None = None
