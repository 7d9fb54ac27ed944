"""Schedules: one-off and recurring windows, phases, and daylight saving time."""

from datetime import UTC, datetime, timedelta

import pytest
from tests.helpers.windows import schedule, window_spec

from pitwall.errors import InvalidSpec
from pitwall.maintenance import schedule as schedules
from pitwall.maintenance.schedule import (
    ACTIVE,
    CANCELLED,
    COMPLETED,
    SCHEDULED,
    Occurrence,
    next_occurrence,
    occurrence_at,
    previous_occurrence,
)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def parse(raw: dict | None):
    """The schedule parser on ``spec.schedule`` as the model parses it."""
    return schedules.parse(schedule(raw))


def phase(spec: dict, now: datetime, deleted: bool = False) -> str:
    return schedules.phase(window_spec(spec), now, deleted)


def recurring(cron: str, duration: str, zone: str) -> dict:
    return {"cron": cron, "duration": duration, "timeZone": zone}


ONE_OFF = {"schedule": {"start": "2026-12-05T22:00:00+02:00", "duration": "2h"}}


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 12, 5, 19, 59, 59), SCHEDULED),
        (utc(2026, 12, 5, 20, 0), ACTIVE),
        (utc(2026, 12, 5, 21, 59, 59), ACTIVE),
        (utc(2026, 12, 5, 22, 0), COMPLETED),
    ],
)
def test_one_off_phases_follow_start_and_duration(now, expected):
    assert phase(ONE_OFF, now) == expected


def test_one_off_with_end_is_active_between_start_and_end():
    spec = {"schedule": {"start": "2026-12-05T20:00:00Z", "end": "2026-12-05T21:30:00Z"}}
    assert occurrence_at(parse(spec["schedule"]), utc(2026, 12, 5, 21)) == Occurrence(
        utc(2026, 12, 5, 20), utc(2026, 12, 5, 21, 30)
    )


def test_editing_end_to_before_now_completes_the_window_at_once():
    now = utc(2026, 12, 5, 21)
    running = {"schedule": {"start": "2026-12-05T20:00:00Z", "end": "2026-12-05T23:00:00Z"}}
    shortened = {"schedule": {"start": "2026-12-05T20:00:00Z", "end": "2026-12-05T20:30:00Z"}}
    assert phase(running, now) == ACTIVE
    assert phase(shortened, now) == COMPLETED
    assert previous_occurrence(parse(shortened["schedule"]), now).end == utc(2026, 12, 5, 20, 30)


def test_a_deleted_window_is_cancelled_even_with_a_broken_schedule():
    assert phase(ONE_OFF, utc(2026, 12, 5, 21), deleted=True) == CANCELLED
    assert phase({"schedule": {}}, utc(2026, 12, 5, 21), deleted=True) == CANCELLED


def test_one_off_is_displayed_in_the_offset_it_was_written_in_unless_a_zone_is_given():
    assert parse(ONE_OFF["schedule"]).zone.utcoffset(None) == timedelta(hours=2)
    assert (
        str(parse({**ONE_OFF["schedule"], "timeZone": "Africa/Johannesburg"}).zone) == "Africa/Johannesburg"
    )


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ({}, "start (one-off) or cron (recurring)"),
        ({"start": "2026-12-05T20:00:00Z", "cron": "0 22 * * SAT", "duration": "1h"}, "both start and cron"),
        ({"start": "2026-12-05T20:00:00Z"}, "needs end or duration"),
        (
            {"start": "2026-12-05T20:00:00Z", "end": "2026-12-05T21:00:00Z", "duration": "1h"},
            "both end and duration",
        ),
        ({"start": "2026-12-05T20:00:00Z", "end": "2026-12-05T19:00:00Z"}, "is not after start"),
        ({"start": "2026-12-05T20:00:00", "duration": "1h"}, "RFC 3339 time with an offset"),
        ({"start": "2026-12-05T20:00:00Z", "duration": "soon"}, "is not a duration"),
        ({"cron": "0 22 * * SAT"}, "needs a duration"),
        ({"cron": "every saturday", "duration": "1h"}, "five-field cron"),
        ({"cron": "0 0 22 * * SAT", "duration": "1h"}, "five-field cron"),
        ({"cron": "@reboot", "duration": "1h"}, "five-field cron"),
        ({"cron": "0 0 30 2 *", "duration": "1h"}, "never fires"),
        ({"cron": "0 * * * *", "duration": "2h"}, "occurrences would overlap"),
        ({"cron": "0 22 * * SAT", "duration": "1h", "timeZone": "Mars/Olympus"}, "not an IANA time zone"),
    ],
)
def test_unusable_schedules_are_refused_with_a_readable_reason(schedule, words):
    with pytest.raises(InvalidSpec) as caught:
        parse(schedule)
    assert caught.value.reason == "InvalidSchedule"
    assert words in caught.value.message


# Recurring windows keep their local wall-clock time across DST changes.
# Europe/Berlin: CET (+1) -> CEST (+2) on 2026-03-29 02:00, back on 2026-10-25 03:00.
# America/New_York: EST (-5) -> EDT (-4) on 2026-03-08 02:00, back on 2026-11-01 02:00.


@pytest.mark.parametrize(
    ("zone", "now", "first", "second"),
    [
        ("Europe/Berlin", utc(2026, 3, 27), utc(2026, 3, 28, 21), utc(2026, 4, 4, 20)),
        ("Europe/Berlin", utc(2026, 10, 23), utc(2026, 10, 24, 20), utc(2026, 10, 31, 21)),
        ("America/New_York", utc(2026, 3, 6), utc(2026, 3, 8, 3), utc(2026, 3, 15, 2)),
        ("America/New_York", utc(2026, 10, 30), utc(2026, 11, 1, 2), utc(2026, 11, 8, 3)),
    ],
)
def test_saturday_22_00_stays_22_00_local_across_dst(zone, now, first, second):
    schedule = parse(recurring("0 22 * * SAT", "2h", zone))
    upcoming = next_occurrence(schedule, now)
    assert upcoming == Occurrence(first, first + timedelta(hours=2))
    assert next_occurrence(schedule, upcoming.start).start == second


@pytest.mark.parametrize(
    ("zone", "cron", "now", "start"),
    [
        # 02:30 does not exist on the spring-forward night: the window starts at 03:00 local.
        ("Europe/Berlin", "30 2 * * *", utc(2026, 3, 28, 12), utc(2026, 3, 29, 1)),
        ("America/New_York", "30 2 * * SUN", utc(2026, 3, 7), utc(2026, 3, 8, 7)),
    ],
)
def test_a_start_in_the_spring_forward_gap_moves_to_the_first_valid_instant(zone, cron, now, start):
    schedule = parse(recurring(cron, "1h", zone))
    assert next_occurrence(schedule, now) == Occurrence(start, start + timedelta(hours=1))


def test_an_ambiguous_fall_back_start_uses_the_first_occurrence_and_runs_once():
    schedule = parse(recurring("30 2 * * *", "1h", "Europe/Berlin"))
    night = next_occurrence(schedule, utc(2026, 10, 24, 12))
    assert night.start == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, not 02:30 CET an hour later
    assert next_occurrence(schedule, night.start).start == utc(2026, 10, 26, 1, 30)  # the next night


def test_an_ambiguous_start_in_new_york_uses_daylight_time():
    schedule = parse(recurring("30 1 * * SUN", "30m", "America/New_York"))
    assert next_occurrence(schedule, utc(2026, 10, 31)).start == utc(2026, 11, 1, 5, 30)  # 01:30 EDT


def test_duration_is_elapsed_time_even_when_the_clocks_change_inside_the_window():
    schedule = parse(recurring("0 1 * * *", "3h", "Europe/Berlin"))
    night = next_occurrence(schedule, utc(2026, 3, 28, 12))
    assert night == Occurrence(utc(2026, 3, 29, 0), utc(2026, 3, 29, 3))  # 01:00 CET to 05:00 CEST


def test_cron_shorthands_run_at_local_midnight():
    weekly = parse(recurring("@weekly", "1h", "Europe/Berlin"))
    assert next_occurrence(weekly, utc(2026, 7, 1)).start == utc(2026, 7, 4, 22)  # Sunday 00:00 CEST


def test_an_occurrence_already_in_progress_is_active():
    spec = {"schedule": recurring("0 22 * * SAT", "2h", "Europe/Berlin")}
    schedule = parse(spec["schedule"])
    now = utc(2026, 4, 4, 21, 15)  # 23:15 CEST, the window started at 22:00 CEST
    assert occurrence_at(schedule, now) == Occurrence(utc(2026, 4, 4, 20), utc(2026, 4, 4, 22))
    assert phase(spec, now) == ACTIVE
    assert next_occurrence(schedule, now).start == utc(2026, 4, 11, 20)


def test_in_progress_during_the_repeated_fall_back_hour():
    schedule = parse(recurring("30 2 * * *", "1h", "Europe/Berlin"))
    now = utc(2026, 10, 25, 1, 15)  # 02:15 CET, the second pass; the window began at 02:30 CEST
    assert occurrence_at(schedule, now) == Occurrence(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30))


def test_between_occurrences_a_recurring_window_is_scheduled_and_remembers_the_last_one():
    spec = {"schedule": recurring("0 22 * * SAT", "2h", "UTC")}
    schedule = parse(spec["schedule"])
    now = utc(2026, 4, 5, 0, 0)  # the Saturday window has just ended
    assert occurrence_at(schedule, now) is None
    assert phase(spec, now) == SCHEDULED
    assert previous_occurrence(schedule, now) == Occurrence(utc(2026, 4, 4, 22), utc(2026, 4, 5))
