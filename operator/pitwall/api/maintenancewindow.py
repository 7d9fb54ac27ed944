"""MaintenanceWindow: a planned change window: maintenance page, held alerts and notice to consumers."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from ..floors import ADMISSION
from .base import (
    CRON,
    EMAIL_LEN,
    LABEL_LEN,
    LONG_TEXT,
    NAME_LEN,
    TEXT,
    TIME_ZONE,
    Model,
    cel,
    duration,
    flag,
    integer,
    items,
    mapping,
    matching,
    rule,
    section,
    text,
    timestamp,
    unique_by,
)
from .receivers import Receiver
from .resource import AGE, READY, Column, Names, Resource
from .shared import AffectedConsumer, LabelMap, ObjectName, SecretKeyRef, Status

Phase = Literal["Scheduled", "Active", "Completed", "Cancelled"]
PHASES: tuple[str, ...] = get_args(Phase)
NoticeKind = Literal["advance", "start", "end", "cancelled"]
Effect = Literal["Unavailable", "Degraded"]

NOTICES_KEPT = 50  # what maintenance/notices.py keeps (a unit test holds the two together)
DEFAULT_TIME_ZONE = "UTC"
DEFAULT_LEAD_TIME = "72h"


class Schedule(Model):
    """When: a one-off window (start with end or duration) or a recurring one (cron, duration, timeZone)."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "has(self.start) != has(self.cron)",
                "set exactly one of schedule.start (one-off) and schedule.cron (recurring)",
            ),
            rule(
                "!has(self.start) || has(self.end) != has(self.duration)",
                "a one-off window needs exactly one of schedule.end and schedule.duration",
            ),
            rule(
                "!has(self.cron) || (has(self.duration) && !has(self.end))",
                "a recurring window (schedule.cron) needs schedule.duration and no schedule.end",
            ),
            rule(
                "!has(self.start) || !has(self.end) || self.end > self.start",
                "schedule.end must be after schedule.start",
                field_path=".end",
            ),
        )
    }

    start: str | None = timestamp("Start of a one-off window.")
    end: str | None = timestamp("End of a one-off window.")
    duration: str | None = duration("Length of the window.", minimum=ADMISSION.window_duration)
    cron: str | None = text(
        'Recurring start, 5-field cron, e.g. "0 22 * * SAT".',
        128,
        rules=[
            matching(
                CRON,
                'must be a cron schedule with 5 fields such as "0 22 * * SAT", or @daily, @weekly ...',
                quoted='is not a cron schedule: use 5 fields such as "0 22 * * SAT", or @daily, @weekly ...',
            )
        ],
    )
    time_zone: str = text(
        "IANA time zone of the cron schedule and of the times in notices, e.g. Africa/Johannesburg.",
        64,
        default=DEFAULT_TIME_ZONE,
        rules=[
            matching(
                TIME_ZONE,
                "must be an IANA time zone name such as Africa/Johannesburg or UTC",
                quoted="is not an IANA time zone name such as Africa/Johannesburg or UTC",
            )
        ],
    )


class ProductTargets(Model):
    """ApiProducts by name and/or labels."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "has(self.names) || (has(self.matchLabels) && size(self.matchLabels) > 0)",
                "targets.apiProducts needs names or matchLabels",
            )
        )
    }

    names: list[Annotated[ObjectName, Field(description="An ApiProduct name.")]] | None = items(
        "ApiProduct names.", 100, min_items=1
    )
    match_labels: LabelMap | None = mapping("ApiProducts whose labels include all of these.")


class Targets(Model):
    """What is under maintenance: ApiProducts and/or Backends (at least one)."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "has(self.apiProducts) || has(self.backends)",
                "a maintenance window needs at least one target: targets.apiProducts or targets.backends",
            )
        )
    }

    api_products: ProductTargets | None = None
    backends: list[Annotated[ObjectName, Field(description="A Backend name.")]] | None = items(
        "Backend names.", 100, min_items=1
    )


class ConsumerEmail(Model):
    """How to email consumers."""

    secret_ref: SecretKeyRef = Field(description="Secret key with the SMTP URL smtp://user:pass@host:port.")
    from_: str | None = text("Sender address.", EMAIL_LEN)


class Notice(Model):
    """Advance notice to consumers and receivers."""

    lead_time: str = duration("Notify this long before start.", DEFAULT_LEAD_TIME)
    notify_consumers: bool = flag("Notify consumers of affected products (their contact).", True)
    receivers: list[Receiver] | None = items(
        "Also notify these receivers (same shape as AlertRule receivers).",
        10,
        rules=[unique_by("name", "notice receiver names")],
    )
    consumer_email: ConsumerEmail | None = None


class MaintenanceWindowSpec(Model):
    """A planned change window."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "!self.emergency || has(self.emergencyReason)",
                "an emergency window needs emergencyReason",
                field_path=".emergencyReason",
                reason="FieldValueRequired",
            )
        )
    }

    reason: str = text("Why (shown in notices and on the status page).", TEXT, default=..., min_length=1)
    schedule: Schedule
    targets: Targets
    maintenance_page: bool = flag(
        "Serve the maintenance page (503 + Retry-After) for affected products.", True
    )
    suppress_alerts: bool = flag("Hold alerts on affected objects while active.", True)
    notice: Notice = section(Notice.__doc__, default_empty=True, factory=Notice)
    emergency: bool = flag(
        "An emergency window: allowed with less notice than leadTime; says so in every notice.", False
    )
    emergency_reason: str | None = text(
        "Why this cannot wait (required when emergency is true).", TEXT, min_length=1
    )


# ------------------------------------------------------------------ status


Version = Annotated[str, Field(max_length=LABEL_LEN, description="A version.")]


class AffectedProduct(Model):
    """A product and its versions."""

    name: str | None = text("ApiProduct name.", NAME_LEN)
    versions: list[Version] | None = items("Versions.", 20)
    effect: Effect | None = Field(
        None, description="Unavailable (maintenance page, alerts held) or Degraded (notice only)."
    )


class Affected(Model):
    """What the window touches."""

    api_products: list[AffectedProduct] | None = items("Affected products.", 500)
    backends: list[Annotated[str, Field(max_length=NAME_LEN, description="A Backend name.")]] | None = items(
        "Affected backends.", 100
    )
    consumers: list[AffectedConsumer] | None = items("Consumers to tell.", 1000)


class PendingSend(Model):
    """A send still owed to one recipient (the outbox delivers it beside the reconcile)."""

    name: str | None = text("The recipient.", NAME_LEN)
    tries: int | None = integer("Failed tries so far.", minimum=0)
    due: str | None = timestamp("Not before this.")
    error: str | None = text("The last failure (secrets masked).", TEXT)


class SentNotice(Model):
    """A notice: decided once, then owed to each recipient until delivered or given up."""

    kind: NoticeKind | None = Field(
        None,
        description="advance, start, end or cancelled (deleted after its advance notice, before its start).",
    )
    occurrence: str | None = timestamp("The start of the occurrence it belongs to.")
    at: str | None = timestamp("When it was decided (recorded as owed).")
    delivered: bool | None = flag("Delivered to every recipient.")
    recipients: list[Annotated[str, Field(max_length=NAME_LEN, description="A recipient.")]] | None = items(
        "Who it was delivered to (consumer and receiver names).", 500
    )
    pending: list[PendingSend] | None = items(
        "Recipients it is still owed to (retried with backoff; survives a restart).", 500
    )
    failed: list[Annotated[str, Field(max_length=NAME_LEN, description="A recipient.")]] | None = items(
        "Recipients given up on (refused for good, or retries spent).", 500
    )
    error: str | None = text(
        "Delivery errors: the HTTP status and where, never the receiver's answer (secrets masked).", LONG_TEXT
    )


class MaintenanceWindowStatus(Status):
    """Where the window stands."""

    phase: Phase | None = Field(None, description="Scheduled, Active, Completed or Cancelled.")
    next_start: str | None = timestamp("Next (or current) start.")
    next_end: str | None = timestamp("Next (or current) end.")
    active_since: str | None = timestamp("When the current occurrence started.")
    affected: Affected | None = None
    notices: list[SentNotice] | None = items(f"Notices sent (the most recent {NOTICES_KEPT}).", 100)


class MaintenanceWindow(Resource):
    """A planned change window: maintenance page, held alerts and notice to consumers."""

    names = Names(
        "maintenancewindows",
        ("pwmw",),
        (
            READY,
            Column("Phase", ".status.phase", description="Scheduled, Active, Completed or Cancelled."),
            Column("Next Start", ".status.nextStart", description="Next (or current) start."),
            Column("Duration", ".spec.schedule.duration", description="Length of the window."),
            Column("Emergency", ".spec.emergency", "boolean", "An emergency window.", priority=1),
            AGE,
        ),
    )

    spec: MaintenanceWindowSpec
    status: MaintenanceWindowStatus | None = None
