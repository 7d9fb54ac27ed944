"""One pure evaluation of a MaintenanceWindow per reconcile.

The reconciler calls :func:`evaluate` whenever it wakes up (create, update, resume after a
restart, or the timer set for ``wake_at``) and acts on the answer: switch Services when the
phase changes, send the due notices, write ``status``, and sleep until ``wake_at``. Because
the answer depends only on the spec, ``status.notices`` and ``now``, an operator restart in the
middle of a window simply re-evaluates: the page stays up, a window whose end passed while
nobody watched completes at once, and no notice is sent twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .. import durations
from ..api.maintenancewindow import MaintenanceWindowSpec
from ..errors import InvalidSpec
from .notices import Notice, due_notices, lead_time
from .schedule import (
    ACTIVE,
    Occurrence,
    classify,
    next_occurrence,
    occurrence_at,
    parse,
    previous_occurrence,
)


@dataclass(frozen=True)
class Evaluation:
    phase: str
    occurrence: Occurrence | None  # the one in progress, else the next one
    due: tuple[Notice, ...]  # send these, then record them in status.notices
    wake_at: datetime | None  # the next instant at which the answer changes

    def status(self) -> dict:
        """Schedule fields of ``status``; None values clear stale fields under a merge patch."""
        occurrence = self.occurrence
        return {
            "phase": self.phase,
            "nextStart": durations.rfc3339(occurrence.start) if occurrence else None,
            "nextEnd": durations.rfc3339(occurrence.end) if occurrence else None,
            "activeSince": durations.rfc3339(occurrence.start)
            if occurrence and self.phase == ACTIVE
            else None,
        }


def evaluate(
    spec: MaintenanceWindowSpec, now: datetime, *, deleted: bool = False, already_sent: Iterable[dict] = ()
) -> Evaluation:
    """Phase, occurrence, due notices and wake-up time. Raises InvalidSpec (-> Stalled) for a
    schedule that cannot work, except for a deleted window, which is only wound down."""
    already_sent = list(already_sent or ())
    if deleted:
        try:
            schedule = parse(spec.schedule)
            current = occurrence_at(schedule, now) or next_occurrence(schedule, now)
            # An occurrence that ended before the deletion was seen (no leader ran at its end:
            # a restart, a leader change) still owes its end notice if its start went out.
            previous = previous_occurrence(schedule, now)
        except InvalidSpec:  # nothing can be running under a schedule that never worked
            current = previous = None
        due = [
            n
            for o in (previous, current)
            if o is not None
            for n in due_notices(spec, o, now, already_sent, cancelled=True)
        ]
        return Evaluation(classify(None, None, deleted=True), None, tuple(due), None)

    schedule = parse(spec.schedule)
    current = occurrence_at(schedule, now)
    upcoming = next_occurrence(schedule, now)
    # The previous occurrence may still owe its end notice (end edited to the past, a restart).
    relevant = [o for o in (previous_occurrence(schedule, now), current, upcoming) if o]
    due = [n for o in relevant for n in due_notices(spec, o, now, already_sent)]
    moments = [current.end] if current else []
    if upcoming:
        moments += [upcoming.start - lead_time(spec), upcoming.start]
    future = [m for m in moments if m > now]
    return Evaluation(
        classify(current, upcoming), current or upcoming, tuple(due), min(future) if future else None
    )
