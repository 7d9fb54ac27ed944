"""Probe: a synthetic or multi-step functional check of an API."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from .base import (
    DNS_LABEL,
    LABEL_LEN,
    RUNS,
    URL_LEN,
    Model,
    cel,
    flag,
    integer,
    number,
    object_name,
    rule,
    text,
    timestamp,
    url,
)
from .check import Check, LastFailure, LastRun
from .resource import AGE, READY, Column, Names, Resource
from .shared import Status

ProbeState = Literal["Up", "Down", "Unknown", "Maintenance", "Paused"]
PROBE_STATES: tuple[str, ...] = get_args(ProbeState)


class ProductTarget(Model):
    """A version of an ApiProduct in this namespace (its Service)."""

    name: str = object_name("ApiProduct name.", ...)
    version: str = text("Version name.", LABEL_LEN, default=..., pattern=DNS_LABEL)


class Target(Model):
    """What the probe checks: exactly one of apiProduct and url."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "has(self.apiProduct) != has(self.url)", "set exactly one of target.apiProduct and target.url"
            )
        )
    }

    api_product: ProductTarget | None = None
    url: str | None = url("An absolute http(s) URL.")


class _TargetFirst(Model):
    # Declared in a base of its own so that ``target`` comes first in the schema, before the
    # check fields (pydantic orders fields base class first).
    target: Target


class ProbeSpec(Check, _TargetFirst):
    """What to check, how often, and what counts as healthy."""

    paused: bool = flag("Stop running the probe (state Paused) without deleting it.", False)
    check_maintenance_page: bool = flag(
        "During a maintenance window, check that the maintenance page is served "
        "instead of reporting Maintenance blindly.",
        False,
    )


LATENCY_RUNS = 200  # what probes/stats.py keeps (a unit test holds the two together)


class Latency(Model):
    __doc__ = (
        f"Latency percentiles of the last {LATENCY_RUNS} successful runs (a failed run's latency is "
        "mostly its timeout)."
    )

    p50_ms: float | None = number("Median, milliseconds.", minimum=0)
    p95_ms: float | None = number("95th percentile, milliseconds.", minimum=0)


class Availability(Model):
    """Percentage of successful runs."""

    last1h: float | None = number("Last hour, percent.", minimum=0, maximum=100)
    last24h: float | None = number("Last 24 hours, percent.", minimum=0, maximum=100)
    last7d: float | None = number("Last 7 days, percent.", minimum=0, maximum=100)


class HourlyRuns(Model):
    """The current hour and the 7 days before it (at most 169 buckets)."""

    from_: str | None = timestamp("Start of the first hour (UTC).")
    runs: str | None = text("`ok/total` per hour, e.g. `360/360 358/360 0/0`.", 4096, pattern=RUNS)


class DailyRuns(Model):
    """Up to 90 UTC days, for the status page's 90-day bars."""

    from_: str | None = text("The first day, YYYY-MM-DD.", 10, fmt="date")
    runs: str | None = text("`ok/total` per day, e.g. `8640/8640 8633/8640`.", 2048, pattern=RUNS)


class RunHistory(Model):
    """Run counts per hour and per day (uptime bars, availability after a restart). Each series is `ok/total` per bucket, oldest first, space-separated, from `from` on."""  # noqa: E501

    hourly: HourlyRuns | None = None
    daily: DailyRuns | None = None


class ProbeStatus(Status):
    """What the probe observed."""

    state: ProbeState | None = Field(None, description="Up, Down, Unknown, Maintenance or Paused.")
    consecutive_failures: int | None = integer("Failed runs in a row.", minimum=0)
    consecutive_successes: int | None = integer("Successful runs in a row.", minimum=0)
    target: str | None = text("The resolved target URL.", URL_LEN)
    last_run: LastRun | None = None
    last_failure: LastFailure | None = None
    last_transition_at: str | None = timestamp("When state last changed.")
    latency: Latency | None = None
    availability: Availability | None = None
    history: RunHistory | None = None


class Probe(Resource):
    """A synthetic or multi-step functional check of an API."""

    names = Names(
        "probes",
        ("pwprobe",),
        (
            READY,
            Column("State", ".status.state", description="Up, Down, Unknown, Maintenance or Paused."),
            Column("Failures", ".status.consecutiveFailures", "integer", "Consecutive failed runs."),
            Column("Interval", ".spec.interval", description="How often it runs."),
            Column("Last Run", ".status.lastRun.at", "date", "When it last ran."),
            Column("Target", ".status.target", description="Resolved target URL.", priority=1),
            Column("P95 ms", ".status.latency.p95Ms", "number", "95th percentile latency.", priority=1),
            AGE,
        ),
    )

    spec: ProbeSpec
    status: ProbeStatus | None = None
