"""The probe's Up/Down state: thresholds with hysteresis, as a pure function.

Only consecutive counts and the state are kept, exactly what ``status`` persists, so a restarted
operator resumes where it was. Hysteresis comes from the state itself: an Up probe goes Down
only after ``failure_threshold`` failures in a row, a Down probe comes back only after
``success_threshold`` successes in a row, so alternating results never flip it.

``Maintenance`` and ``Paused`` are imposed from outside (a MaintenanceWindow, ``spec.paused``).
Runs still count while one is imposed, but the state stays imposed; when it is lifted, the
state follows from the counts (Down if the target kept failing, Up if it kept answering,
Unknown until the thresholds decide).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..api.probe import PROBE_STATES

# The model's enum (``status.state``), in the order it declares them.
UP, DOWN, UNKNOWN, MAINTENANCE, PAUSED = PROBE_STATES
IMPOSED = frozenset({MAINTENANCE, PAUSED})


@dataclass(frozen=True, slots=True)
class Health:
    state: str = UNKNOWN
    consecutive_failures: int = 0
    consecutive_successes: int = 0

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> Health:
        status = status or {}
        state = status.get("state")
        return cls(
            state=state if state in PROBE_STATES else UNKNOWN,
            consecutive_failures=int(status.get("consecutiveFailures") or 0),
            consecutive_successes=int(status.get("consecutiveSuccesses") or 0),
        )

    def to_status(self) -> dict:
        return {
            "state": self.state,
            "consecutiveFailures": self.consecutive_failures,
            "consecutiveSuccesses": self.consecutive_successes,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    health: Health
    transition: bool  # the state changed: write status now, emit an Event

    @property
    def state(self) -> str:
        return self.health.state


def observe(
    previous: Health, ok: bool, *, failure_threshold: int, success_threshold: int, imposed: str | None = None
) -> Outcome:
    """Fold one run's result into the state."""
    if ok:
        counted = replace(
            previous, consecutive_failures=0, consecutive_successes=previous.consecutive_successes + 1
        )
    else:
        counted = replace(
            previous, consecutive_successes=0, consecutive_failures=previous.consecutive_failures + 1
        )
    return settle(
        counted, failure_threshold=failure_threshold, success_threshold=success_threshold, imposed=imposed
    )


def settle(
    health: Health, *, failure_threshold: int, success_threshold: int, imposed: str | None = None
) -> Outcome:
    """The state the counts and the imposed state call for, without a new run.

    Call it when maintenance starts or ends, or a probe is paused or resumed.
    """
    previous = health.state
    if imposed is not None:
        state = imposed
    else:
        base = UNKNOWN if previous in IMPOSED else previous
        if base != DOWN and health.consecutive_failures >= failure_threshold:
            state = DOWN
        elif base != UP and health.consecutive_successes >= success_threshold:
            state = UP
        else:
            state = base
    return Outcome(replace(health, state=state), transition=state != previous)
