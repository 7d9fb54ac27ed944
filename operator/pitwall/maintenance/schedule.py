"""When a maintenance window is in effect: schedules, occurrences and phases.

A schedule is one-off (``start`` plus ``end`` or ``duration``) or recurring (``cron`` plus
``duration`` in an IANA ``timeZone``, default UTC). Everything here is pure: callers pass
``now``, so the reconciler, the admission webhook and the tests all agree on the answer.

Recurring windows and daylight saving time:

- The cron expression runs on the wall clock of ``timeZone``, so ``0 22 * * SAT`` starts at
  22:00 local time all year, whatever the UTC offset is that week.
- ``duration`` is elapsed time: a 2h window lasts two real hours even if the clocks change
  inside it.
- A local start time that does not exist (the spring-forward gap, e.g. 02:30 in Europe/Berlin
  on the last Sunday of March) starts at the first valid instant after the gap (03:00 local),
  which is what cron does: the work is not skipped and not started an hour late.
- A local start time that happens twice (fall-back) starts at its first occurrence (the
  earlier instant), once: a window never runs twice in one night.

Occurrences always carry UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from .. import durations, floors
from ..api import maintenancewindow as model
from ..errors import InvalidSpec

SCHEDULED, ACTIVE, COMPLETED, CANCELLED = model.PHASES

REASON = "InvalidSchedule"
# Local wall-clock times can run backwards by the size of a DST shift (1h almost everywhere,
# 2h at most), so searches around "now" in local time look this far either side.
_DST_SLACK = timedelta(hours=3)
# Consecutive cron firings sampled to refuse durations that would make occurrences overlap.
_OVERLAP_SAMPLE = 100
_SAMPLE_FROM = datetime(2000, 1, 1)
# The shorthands the CRD admits besides five fields.
_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"}


class Occurrence(NamedTuple):
    """One run of a window: ``start <= t < end`` (UTC)."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class OneOff:
    start: datetime
    end: datetime
    zone: tzinfo  # for display: timeZone if given, else the offset ``start`` was written in


@dataclass(frozen=True)
class Recurring:
    cron: str
    duration: timedelta
    zone: ZoneInfo


Schedule = OneOff | Recurring


def parse(schedule: model.Schedule | None) -> Schedule:
    """Validate a window's ``spec.schedule`` (as parsed by the model); raises InvalidSpec with a
    message a person can act on. The CRD's CEL rules refuse most of these at admission; this
    also judges what CEL cannot (cron grammar, overlapping runs, time zones, the floors)."""
    schedule = schedule or model.Schedule()
    if schedule.cron and schedule.start:
        raise InvalidSpec(
            REASON,
            "schedule has both start and cron: use start for a one-off window, cron for a recurring one",
        )
    if schedule.cron:
        return _parse_recurring(schedule)
    if schedule.start:
        return _parse_one_off(schedule)
    raise InvalidSpec(REASON, "schedule needs either start (one-off) or cron (recurring)")


def _parse_one_off(schedule: model.Schedule) -> OneOff:
    assert schedule.start is not None
    start = _time(schedule.start, "start")
    if schedule.end and schedule.duration:
        raise InvalidSpec(REASON, "schedule has both end and duration: give one of them")
    if schedule.end:
        end = _time(schedule.end, "end")
    elif schedule.duration:
        end = start + _duration(schedule.duration)
    else:
        raise InvalidSpec(REASON, "a one-off schedule needs end or duration")
    if end <= start:
        raise InvalidSpec(REASON, f"end {schedule.end} is not after start {schedule.start}")
    # Shown in timeZone when one was written (the API server fills in its default), else in
    # the offset ``start`` was written in.
    given = "time_zone" in schedule.model_fields_set and schedule.time_zone
    zone: tzinfo = _zone(schedule.time_zone) if given else (start.tzinfo or UTC)
    return OneOff(start.astimezone(UTC), end.astimezone(UTC), zone)


def _parse_recurring(schedule: model.Schedule) -> Recurring:
    cron = " ".join(str(schedule.cron).split())
    if (cron not in _MACROS and len(cron.split()) != 5) or not croniter.is_valid(cron):
        raise InvalidSpec(
            REASON,
            f"cron {cron!r} is not a five-field cron expression (minute hour "
            "day-of-month month day-of-week, e.g. '0 22 * * SAT') or @daily, @weekly ...",
        )
    if not schedule.duration:
        raise InvalidSpec(REASON, "a recurring schedule needs a duration")
    duration = _duration(schedule.duration)
    try:
        it = croniter(cron, _SAMPLE_FROM)
        firings = [it.get_next(datetime) for _ in range(_OVERLAP_SAMPLE)]
    except CroniterError as exc:
        raise InvalidSpec(REASON, f"cron {cron!r} never fires") from exc
    gap = min(later - earlier for earlier, later in zip(firings, firings[1:], strict=False))
    if duration >= gap:
        raise InvalidSpec(
            REASON,
            f"duration {durations.format(duration.total_seconds())} is not shorter "
            f"than the {durations.format(gap.total_seconds())} between runs of "
            f"{cron!r}: occurrences would overlap",
        )
    return Recurring(cron, duration, _zone(schedule.time_zone or model.DEFAULT_TIME_ZONE))


def _time(value: str, field: str) -> datetime:
    try:
        return durations.parse_time(str(value))
    except ValueError as exc:
        raise InvalidSpec(
            REASON,
            f"{field} {value!r} is not an RFC 3339 time with an offset (e.g. 2026-12-05T22:00:00+01:00)",
        ) from exc


def _duration(value: str) -> timedelta:
    try:
        seconds = durations.parse(value)
    except ValueError as exc:
        raise InvalidSpec(REASON, f"duration: {exc}") from exc
    if seconds <= 0:
        raise InvalidSpec(REASON, "duration must be longer than zero")
    floors.check_window(seconds)
    return timedelta(seconds=seconds)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSpec(REASON, f"timeZone {name!r} is not an IANA time zone (e.g. Europe/Berlin)") from exc


def occurrence_at(schedule: Schedule, now: datetime) -> Occurrence | None:
    """The occurrence in progress at ``now`` (started at or before now, not yet ended), if any."""
    if isinstance(schedule, OneOff):
        return Occurrence(schedule.start, schedule.end) if schedule.start <= now < schedule.end else None
    # Localised starts never decrease as the cron firings go back, and every occurrence lasts
    # the same, so the latest start at or before now is the only candidate.
    start = next(s for s in _starts(schedule, now, forward=False) if s <= now)
    end = start + schedule.duration
    return Occurrence(start, end) if now < end else None


def next_occurrence(schedule: Schedule, now: datetime) -> Occurrence | None:
    """The first occurrence starting after ``now``, or None when none is left."""
    if isinstance(schedule, OneOff):
        return Occurrence(schedule.start, schedule.end) if schedule.start > now else None
    start = next(s for s in _starts(schedule, now, forward=True) if s > now)
    return Occurrence(start, start + schedule.duration)


def previous_occurrence(schedule: Schedule, now: datetime) -> Occurrence | None:
    """The latest occurrence that has ended by ``now`` (its end notice may still be owed)."""
    if isinstance(schedule, OneOff):
        return Occurrence(schedule.start, schedule.end) if schedule.end <= now else None
    start = next(s for s in _starts(schedule, now, forward=False) if s + schedule.duration <= now)
    return Occurrence(start, start + schedule.duration)


def classify(current: Occurrence | None, upcoming: Occurrence | None, *, deleted: bool = False) -> str:
    """The phase from the occurrence in progress and the next one."""
    if deleted:
        return CANCELLED
    if current:
        return ACTIVE
    return SCHEDULED if upcoming else COMPLETED


def phase(spec: model.MaintenanceWindowSpec, now: datetime, deleted: bool = False) -> str:
    """Scheduled, Active, Completed (a one-off whose end has passed, also when end was just
    edited to before now) or Cancelled (the window was deleted)."""
    if deleted:
        return CANCELLED
    schedule = parse(spec.schedule)
    return classify(occurrence_at(schedule, now), next_occurrence(schedule, now))


def _starts(schedule: Recurring, now: datetime, *, forward: bool) -> Iterator[datetime]:
    """Cron starts as UTC instants, from a little before (forward) or after (backward) ``now``."""
    wall = now.astimezone(schedule.zone).replace(tzinfo=None)
    it = croniter(schedule.cron, wall - _DST_SLACK if forward else wall + _DST_SLACK)
    while True:
        yield _localize(it.get_next(datetime) if forward else it.get_prev(datetime), schedule.zone)


def _localize(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time, with the module's gap and fold rules."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)  # fold=0: the earlier of two
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # ``wall`` is in a spring-forward gap: fold=1 reads it with the offset before the gap
    # (an instant before the transition), fold=0 with the offset after it (an instant after).
    # Bisect between them for the transition itself, the first valid instant.
    before = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    after = int(first.timestamp())
    offset_after = first.astimezone(zone).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_after:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)
