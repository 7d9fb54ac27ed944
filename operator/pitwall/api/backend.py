"""Backend: a provider system that API products depend on."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from .base import NAME_LEN, Model, cel, integer, items, object_name, rule, text, timestamp, url
from .check import Check, LastFailure, LastRun
from .resource import AGE, READY, Column, Names, Resource
from .shared import AffectedConsumer, Owner, Status

BackendState = Literal["Available", "Unavailable", "Unknown", "Maintenance"]
BACKEND_STATES: tuple[str, ...] = get_args(BackendState)
Effect = Literal["Unavailable", "Degraded", "None"]
EFFECTS: tuple[str, ...] = get_args(Effect)


class _UrlFirst(Model):
    # A base of its own so that ``url`` comes first in the schema (pydantic orders base fields first).
    url: str = url("The URL checked (steps' paths are relative to it).", ...)


class Health(Check, _UrlFirst):
    """A Probe-shaped health check run by the probe engine."""


class ProbeRef(Model):
    """Use an existing Probe in this namespace instead of health."""

    name: str = object_name("Probe name.", ...)


class BackendSpec(Model):
    """A provider system behind API products and how to tell it is healthy."""

    model_config = {
        "json_schema_extra": cel(
            rule("!(has(self.health) && has(self.probeRef))", "set at most one of health and probeRef")
        )
    }

    display_name: str | None = text("Human name, e.g. Core banking (mainframe).", 128)
    description: str | None = text("What the system is.", 2048)
    owner: Owner | None = None
    health: Health | None = None
    probe_ref: ProbeRef | None = None


class ProbeCounters(Model):
    """The health check's counters."""

    consecutive_failures: int | None = integer("Failed runs in a row.", minimum=0)
    consecutive_successes: int | None = integer("Successful runs in a row.", minimum=0)
    last_run: LastRun | None = None
    last_failure: LastFailure | None = None


class DependentProduct(Model):
    """A dependent product."""

    name: str | None = text("ApiProduct name.", NAME_LEN)
    criticality: str | None = text("Declared criticality.", 32)
    effect: Effect | None = Field(None, description="What the backend's state does to the product now.")


class Impact(Model):
    """Who hurts when this backend is down."""

    api_products: list[DependentProduct] | None = items("ApiProducts that depend on it.", 500)
    consumers: list[AffectedConsumer] | None = items("Consumers of those products.", 1000)


class BackendStatus(Status):
    """What the operator observed."""

    state: BackendState | None = Field(None, description="Available, Unavailable, Unknown or Maintenance.")
    probe: ProbeCounters | None = None
    last_transition_at: str | None = timestamp("When state last changed.")
    impact: Impact | None = None


class Backend(Resource):
    """A provider system that API products depend on."""

    names = Names(
        "backends",
        ("pwbe",),
        (
            READY,
            Column("State", ".status.state", description="Available, Unavailable, Unknown or Maintenance."),
            Column("Display Name", ".spec.displayName", description="Human name."),
            Column("Probe", ".spec.probeRef.name", description="The Probe used, if any.", priority=1),
            AGE,
        ),
    )

    spec: BackendSpec
    status: BackendStatus | None = None
