"""Minimums on the durations that drive work: one team's spec cannot make Pitwall busy for all.

Two layers, the same numbers by default:

- ``ADMISSION``: the CRDs refuse anything below these (CEL ``duration()`` rules, see crds.py),
  so ``kubectl apply`` says why at once.
- The operator-wide floors (``pitwall run --min-probe-interval ...`` or ``PITWALL_MIN_*``): never
  below ``ADMISSION``, raised by a cluster admin who wants more headroom. Checked again in code
  when a spec is parsed (probes: ``probes.spec``, reasons ``IntervalTooShort``/``TimeoutTooShort``/
  ``TimeoutAboveInterval``; alert rules and windows: here, reason ``BelowFloor``), because objects stored before a floor existed (or under a lower one)
  are never re-validated by the API server; such an object is ``Stalled`` with a reason naming
  the floor, and costs nothing else.

Durations that only ever fire once per event (``when.for``, ``groupWait``, ``notice.leadTime``,
``maxLatency``, ``retryAfter``) need no floor: zero is meaningful and bounded.

The floors are process-wide (``configure`` once at start-up): they are cluster policy, not
per-object input, and the parse functions that check them are called from many places.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from . import durations
from .errors import InvalidSpec


@dataclass(frozen=True, slots=True)
class Floors:
    """Seconds. ``repeat_interval`` 0 (reminders off) is always allowed."""

    probe_interval: float = 1.0  # Probe.spec.interval, Backend.spec.health.interval
    probe_timeout: float = 0.1  # ... .timeout (and never above the interval)
    repeat_interval: float = 60.0  # AlertRule.spec.repeatInterval (unless 0s)
    escalation_delay: float = 1.0  # AlertRule.spec.escalation[].after
    digest_interval: float = 1.0  # AlertRule.spec.digest.interval
    window_duration: float = 1.0  # MaintenanceWindow.spec.schedule.duration


ADMISSION = Floors()
# Flag / environment names, in the order of Floors' fields.
FLAGS = {
    "probe_interval": ("--min-probe-interval", "PITWALL_MIN_PROBE_INTERVAL"),
    "probe_timeout": ("--min-probe-timeout", "PITWALL_MIN_PROBE_TIMEOUT"),
    "repeat_interval": ("--min-repeat-interval", "PITWALL_MIN_REPEAT_INTERVAL"),
    "escalation_delay": ("--min-escalation-delay", "PITWALL_MIN_ESCALATION_DELAY"),
    "digest_interval": ("--min-digest-interval", "PITWALL_MIN_DIGEST_INTERVAL"),
    "window_duration": ("--min-window-duration", "PITWALL_MIN_WINDOW_DURATION"),
}

_active: list[Floors] = [ADMISSION]


def configure(floors: Floors) -> None:
    _active[0] = floors


def current() -> Floors:
    return _active[0]


def build(values: Mapping[str, str | float | None], env: Mapping[str, str] | None = None) -> Floors:
    """Floors from flag values (durations; None: not given), then the environment, then ADMISSION.

    Raises ValueError for an unreadable duration or a floor below the admission floor (the CRDs
    would admit what the operator then refuses to go below anyway, so such a setting is a typo).
    """
    if env is None:
        env = os.environ
    out = ADMISSION
    for f in fields(Floors):
        flag, var = FLAGS[f.name]
        raw = values.get(f.name)
        if raw is None:
            raw = env.get(var) or None
        if raw is None:
            continue
        seconds = durations.parse(raw)
        minimum = getattr(ADMISSION, f.name)
        if seconds < minimum:
            raise ValueError(f"{flag} {raw}: below the admission floor {durations.format(minimum)}")
        out = replace(out, **{f.name: seconds})
    return out


def _refuse(field: str, value: float, floor: float, flag: str) -> InvalidSpec:
    return InvalidSpec(
        "BelowFloor",
        f"{field} {durations.format(value)} is below the operator's floor "
        f"{durations.format(floor)} ({flag}); use {durations.format(floor)} or more",
    )


def check_alerting(
    repeat_interval: float, escalation_after: list[float], digest_interval: float | None
) -> None:
    """Raise ``InvalidSpec("BelowFloor")`` for an AlertRule that would notify too often."""
    floors = current()
    if 0 < repeat_interval < floors.repeat_interval or repeat_interval < 0:
        raise _refuse("repeatInterval", repeat_interval, floors.repeat_interval, FLAGS["repeat_interval"][0])
    for i, after in enumerate(escalation_after):
        if after < floors.escalation_delay:
            raise _refuse(
                f"escalation[{i}].after", after, floors.escalation_delay, FLAGS["escalation_delay"][0]
            )
    if digest_interval is not None and digest_interval < floors.digest_interval:
        raise _refuse("digest.interval", digest_interval, floors.digest_interval, FLAGS["digest_interval"][0])


def check_window(duration: float) -> None:
    floors = current()
    if duration < floors.window_duration:
        raise _refuse("schedule.duration", duration, floors.window_duration, FLAGS["window_duration"][0])
