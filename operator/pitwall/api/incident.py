"""Incident: what third parties are told about an outage, its updates and its history.

Opened by the operator when a public product version becomes degraded or goes down (or an
emergency MaintenanceWindow opens), closed by it on recovery; on-call engineers edit it
(``pitwall incident update``, or ``kubectl edit``): its status word, updates with their author,
the post-incident report. Being a resource, it has RBAC, kubectl, GitOps-visible history, and
survives operator restarts; the status page and its feed read it from the watch cache.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from .base import (
    LABEL_LEN,
    LONG_TEXT,
    NAME_LEN,
    SHORT_TEXT,
    TEXT,
    Model,
    cel,
    flag,
    items,
    object_name,
    rule,
    text,
    timestamp,
    url,
)
from .resource import AGE, READY, Column, Names, Resource
from .shared import Status

IncidentType = Literal["incident", "emergency-maintenance"]
INCIDENT_TYPES: tuple[str, ...] = get_args(IncidentType)
Progress = Literal["investigating", "identified", "monitoring", "resolved"]
PROGRESS: tuple[str, ...] = get_args(Progress)
Phase = Literal["Open", "Recovering", "Resolved"]
PHASES: tuple[str, ...] = get_args(Phase)
Impact = Literal["degraded", "outage", "maintenance"]

UPDATES_KEPT = 100
NOTICES_KEPT = 100

Version = Annotated[str, Field(max_length=LABEL_LEN, description="A version name.")]


class AffectedProduct(Model):
    """An ApiProduct of this namespace and the versions the incident affects."""

    name: str = object_name("ApiProduct name.", ...)
    versions: list[Version] | None = items("Versions (none: every running version).", 20)


class Update(Model):
    """A human update, as consumers read it."""

    message: str = text(
        "What consumers read (plain text; shown escaped).", LONG_TEXT, default=..., min_length=1
    )
    status: Progress | None = Field(
        None,
        description="investigating, identified, monitoring or resolved: the "
        "incident's status from this update on.",
    )
    author: str | None = text(
        "Who wrote it. `pitwall incident update` sets the kubeconfig user; an update "
        "added with kubectl without it is attributed to its field manager "
        "(status.updateAuthors).",
        SHORT_TEXT,
    )
    at: str | None = timestamp("When it was written (filled in by the operator when missing).")


class IncidentSpec(Model):
    """What the incident is about and what the on-call engineers said."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "self.type != 'emergency-maintenance' || has(self.window)",
                "an emergency-maintenance incident names its MaintenanceWindow in spec.window",
                field_path=".window",
                reason="FieldValueRequired",
            )
        )
    }

    type: IncidentType = Field(
        "incident",
        description="incident (opened from probes, backends, traffic) or "
        "emergency-maintenance (an emergency MaintenanceWindow).",
    )
    products: list[AffectedProduct] = items("The affected products.", 100, default=..., min_items=1)
    window: str | None = object_name("emergency-maintenance: the MaintenanceWindow.")
    title: str | None = text(
        "A title for consumers (default: composed from the products and the impact).", 200
    )
    status: Progress = Field(
        "investigating",
        description="investigating, identified, monitoring or resolved. "
        "resolved closes the incident at once.",
    )
    post_incident_report: str | None = url("Link to the post-incident report, shown with the incident.")
    updates: list[Update] | None = items(
        f"Human updates, oldest first (at most {UPDATES_KEPT}).", UPDATES_KEPT
    )
    notify: bool = flag("Send notices for this incident (false: page and feed only).", True)


class UpdateAuthor(Model):
    """Who wrote an update that carries no author or time, as the operator found it."""

    index: int | None = Field(None, ge=0, description="The update's index in spec.updates.")
    author: str | None = text("Field manager (kubectl, a GitOps tool) that added it.", SHORT_TEXT)
    at: str | None = timestamp("When the operator first saw it.")


class SentNotice(Model):
    """One notice of this incident: start, update-N or resolved."""

    event: str | None = text("start, update-N (the Nth spec.updates entry) or resolved.", 32)
    state: Literal["Sending", "Sent", "Interrupted"] | None = Field(
        None,
        description="Sending is recorded before the first delivery and stays until every recipient "
        "has it (sent again after a restart or a failure, with the same dedup key); Sent after. "
        "Interrupted: written by earlier versions, never sent again.",
    )
    at: str | None = timestamp("When it was sent (or last tried).")
    pending: list[Annotated[str, Field(max_length=NAME_LEN, description="A recipient.")]] | None = items(
        "Recipients still owed it after a failed try (Sending).", 500
    )
    tries: int | None = Field(None, ge=0, description="Tries that failed for a reason a retry may fix.")
    due: str | None = timestamp("When the next try is due (Sending after a failure).")
    recipients: list[Annotated[str, Field(max_length=NAME_LEN, description="A recipient.")]] | None = items(
        "Consumers and receivers it reached.", 500
    )
    failed: list[Annotated[str, Field(max_length=NAME_LEN, description="A recipient.")]] | None = items(
        "Recipients it could not reach.", 500
    )
    error: str | None = text(
        "Delivery errors: the status and where, never the receiver's answer (secrets masked).", LONG_TEXT
    )


class IncidentStatus(Status):
    """What the operator observed and did."""

    phase: Phase | None = Field(
        None,
        description="Open, Recovering (operational again, resolves after the "
        "product's incidents.mergeWindow) or Resolved.",
    )
    impact: Impact | None = Field(None, description="The worst impact seen: degraded, outage or maintenance.")
    cause: str | None = text("The cause in consumer language (never backend names or hosts).", TEXT)
    affected: list[AffectedProduct] | None = items("Every product version affected so far.", 100)
    started_at: str | None = timestamp("When the product became degraded or unavailable.")
    recovered_at: str | None = timestamp("When it was last seen operational again (phase Recovering).")
    resolved_at: str | None = timestamp("When the incident was resolved.")
    resolved_by: str | None = text("pitwall (recovered) or the author of the resolving update.", SHORT_TEXT)
    resolution: str | None = text("How it ended, in consumer language.", TEXT)
    update_authors: list[UpdateAuthor] | None = items(
        "Authors and times of updates that carry none.", UPDATES_KEPT
    )
    notices: list[SentNotice] | None = items(f"Notices sent (the most recent {NOTICES_KEPT}).", NOTICES_KEPT)


class Incident(Resource):
    """An incident as consumers see it: impact, cause, updates, resolution; opened and closed by Pitwall."""

    names = Names(
        "incidents",
        ("pwinc",),
        (
            READY,
            Column("Type", ".spec.type", description="incident or emergency-maintenance."),
            Column("Phase", ".status.phase", description="Open, Recovering or Resolved."),
            Column(
                "Status", ".spec.status", description="investigating, identified, monitoring or resolved."
            ),
            Column("Impact", ".status.impact", description="degraded, outage or maintenance."),
            Column("Started", ".status.startedAt", "date", "When it started."),
            Column("Cause", ".status.cause", description="The cause in consumer language.", priority=1),
            AGE,
        ),
    )

    spec: IncidentSpec
    status: IncidentStatus | None = None


__all__ = [
    "INCIDENT_TYPES",
    "NOTICES_KEPT",
    "PHASES",
    "PROGRESS",
    "UPDATES_KEPT",
    "Incident",
    "IncidentSpec",
    "IncidentStatus",
]
