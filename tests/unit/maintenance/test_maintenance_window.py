"""evaluate(): what the reconciler does on each wake-up, including after a restart."""

from datetime import UTC, datetime, timedelta

import pytest
from tests.helpers.windows import window_spec

from pitwall.errors import InvalidSpec
from pitwall.maintenance import window
from pitwall.maintenance.notices import ADVANCE, END, START, record
from pitwall.maintenance.schedule import ACTIVE, CANCELLED, COMPLETED, SCHEDULED


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def evaluate(spec: dict, now: datetime, **kwargs):
    """evaluate() on the spec as the reconciler parses it."""
    return window.evaluate(window_spec(spec), now, **kwargs)


ONE_OFF = {"schedule": {"start": "2026-12-05T20:00:00Z", "duration": "2h"}, "notice": {"leadTime": "24h"}}
WEEKLY = {
    "schedule": {"cron": "0 22 * * SAT", "duration": "2h", "timeZone": "Europe/Berlin"},
    "notice": {"leadTime": "24h"},
}


def run(spec, now, history=()):
    """Evaluate and record what was due, as the reconciler would."""
    result = evaluate(spec, now, already_sent=history)
    for notice in result.due:
        history = record(list(history), notice, at=now, delivered=True, recipients=["acme"])
    return result, history


def test_a_scheduled_window_wakes_for_the_advance_notice_then_for_the_start():
    result = evaluate(ONE_OFF, utc(2026, 12, 1))
    assert result.phase == SCHEDULED
    assert result.due == ()
    assert result.wake_at == utc(2026, 12, 4, 20)
    assert result.status() == {
        "phase": SCHEDULED,
        "nextStart": "2026-12-05T20:00:00Z",
        "nextEnd": "2026-12-05T22:00:00Z",
        "activeSince": None,
    }
    advance, history = run(ONE_OFF, result.wake_at)
    assert [n.kind for n in advance.due] == [ADVANCE]
    assert evaluate(ONE_OFF, result.wake_at, already_sent=history).wake_at == utc(2026, 12, 5, 20)


def test_an_active_window_wakes_at_its_end_and_then_completes():
    started, history = run(ONE_OFF, utc(2026, 12, 5, 20))
    assert started.phase == ACTIVE
    assert [n.kind for n in started.due] == [START]
    assert started.wake_at == utc(2026, 12, 5, 22)
    assert started.status()["activeSince"] == "2026-12-05T20:00:00Z"
    ended, history = run(ONE_OFF, started.wake_at, history)
    assert ended.phase == COMPLETED
    assert [n.kind for n in ended.due] == [END]
    assert ended.wake_at is None
    assert ended.status() == {"phase": COMPLETED, "nextStart": None, "nextEnd": None, "activeSince": None}
    assert evaluate(ONE_OFF, utc(2026, 12, 6), already_sent=history).due == ()


def test_after_a_restart_past_the_end_the_window_completes_at_once_and_says_so_once():
    _, history = run(ONE_OFF, utc(2026, 12, 5, 20, 0, 1))  # started, then the operator went away
    back = evaluate(ONE_OFF, utc(2026, 12, 6, 9), already_sent=history)
    assert back.phase == COMPLETED
    assert [n.kind for n in back.due] == [END]


def test_editing_end_to_the_past_ends_the_window_now():
    _, history = run(ONE_OFF, utc(2026, 12, 5, 20, 0, 1))
    edited = {**ONE_OFF, "schedule": {"start": "2026-12-05T20:00:00Z", "end": "2026-12-05T20:30:00Z"}}
    result = evaluate(edited, utc(2026, 12, 5, 21), already_sent=history)
    assert result.phase == COMPLETED
    assert [n.kind for n in result.due] == [END]


def test_a_recurring_window_ends_one_run_and_schedules_the_next():
    start = utc(2026, 4, 4, 20)  # Saturday 22:00 CEST
    _, history = run(WEEKLY, start)
    after = evaluate(WEEKLY, start + timedelta(hours=2), already_sent=history)
    assert after.phase == SCHEDULED
    assert [(n.kind, n.occurrence.start) for n in after.due] == [(END, start)]
    assert after.status()["nextStart"] == "2026-04-11T20:00:00Z"
    assert after.wake_at == utc(2026, 4, 10, 20)  # the next advance notice


def test_deleting_a_running_window_cancels_it_and_closes_what_was_announced():
    _, history = run(ONE_OFF, utc(2026, 12, 5, 20))
    result = evaluate(ONE_OFF, utc(2026, 12, 5, 21), deleted=True, already_sent=history)
    assert result.phase == CANCELLED
    assert [n.kind for n in result.due] == [END]
    assert result.wake_at is None
    assert evaluate({"schedule": {}}, utc(2026, 12, 5, 21), deleted=True).phase == CANCELLED


def test_a_schedule_that_cannot_work_is_an_invalid_spec():
    with pytest.raises(InvalidSpec):
        evaluate({"schedule": {"cron": "0 22 * * SAT"}}, utc(2026, 12, 5))


def test_a_window_deleted_after_its_end_passed_unseen_still_owes_its_end_notice():
    # Seen by make chaos (seed 925669): the start notice went out, the operator was killed as
    # the window ended, and the window was deleted before any leader saw its end.
    _, history = run(ONE_OFF, utc(2026, 12, 5, 20))
    result = evaluate(ONE_OFF, utc(2026, 12, 5, 23), deleted=True, already_sent=history)
    assert [(n.kind, n.occurrence.start) for n in result.due] == [(END, utc(2026, 12, 5, 20))]
    ended = list(history)
    for notice in result.due:
        ended = record(ended, notice, at=utc(2026, 12, 5, 23), delivered=True, recipients=["acme"])
    assert evaluate(ONE_OFF, utc(2026, 12, 5, 23), deleted=True, already_sent=ended).due == ()  # once
    assert evaluate(ONE_OFF, utc(2026, 12, 5, 23), deleted=True).due == ()  # never announced: nothing
