"""Notices: each due exactly once, emergencies labelled, too little notice refused."""

from datetime import UTC, datetime, timedelta

import pytest
from tests.helpers.windows import window_spec

from pitwall.maintenance.notices import (
    ADVANCE,
    END,
    KEEP,
    START,
    Notice,
    due_notices,
    lead_time_violation,
    record,
)
from pitwall.maintenance.schedule import Occurrence


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


START_AT = utc(2026, 12, 5, 20)
OCCURRENCE = Occurrence(START_AT, START_AT + timedelta(hours=2))
SPEC = {
    "reason": "Core banking upgrade",
    "schedule": {"start": "2026-12-05T20:00:00Z", "duration": "2h"},
    "notice": {"leadTime": "72h"},
}


def kinds(notices):
    return [n.kind for n in notices]


def sent(*notices):
    entries = []
    for notice in notices:
        entries = record(entries, notice, at=START_AT, delivered=True, recipients=["acme"])
    return entries


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (START_AT - timedelta(hours=72, seconds=1), []),
        (START_AT - timedelta(hours=72), [ADVANCE]),
        (START_AT - timedelta(seconds=1), [ADVANCE]),
        (START_AT, [START]),
        (OCCURRENCE.end - timedelta(seconds=1), [START]),
    ],
)
def test_each_notice_is_due_at_its_time(now, expected):
    assert kinds(due_notices(window_spec(SPEC), OCCURRENCE, now, [])) == expected


def test_a_recorded_notice_is_never_due_again():
    advance = due_notices(window_spec(SPEC), OCCURRENCE, START_AT - timedelta(hours=1), [])
    assert due_notices(window_spec(SPEC), OCCURRENCE, START_AT - timedelta(minutes=1), sent(*advance)) == []
    start = due_notices(window_spec(SPEC), OCCURRENCE, START_AT, sent(*advance))
    assert kinds(start) == [START]
    end = due_notices(window_spec(SPEC), OCCURRENCE, OCCURRENCE.end, sent(*advance, *start))
    assert kinds(end) == [END]
    assert (
        due_notices(
            window_spec(SPEC), OCCURRENCE, OCCURRENCE.end + timedelta(hours=5), sent(*advance, *start, *end)
        )
        == []
    )


def test_recorded_occurrences_match_whatever_offset_they_were_written_in():
    already = [{"kind": "start", "occurrence": "2026-12-05T22:00:00+02:00"}, {"kind": "broken"}]
    assert due_notices(window_spec(SPEC), OCCURRENCE, START_AT + timedelta(minutes=5), already) == []


def test_no_end_notice_for_an_occurrence_whose_start_was_never_announced():
    assert due_notices(window_spec(SPEC), OCCURRENCE, OCCURRENCE.end + timedelta(minutes=1), []) == []


def test_the_end_notice_goes_out_when_a_running_window_is_cancelled():
    announced = sent(Notice(START, OCCURRENCE))
    now = START_AT + timedelta(minutes=30)
    assert kinds(due_notices(window_spec(SPEC), OCCURRENCE, now, announced, cancelled=True)) == [END]
    assert due_notices(window_spec(SPEC), OCCURRENCE, now, [], cancelled=True) == []


def test_an_emergency_window_inside_its_lead_time_announces_at_once_labelled_emergency():
    spec = {**SPEC, "emergency": True, "emergencyReason": "Security patch"}
    due = due_notices(window_spec(spec), OCCURRENCE, START_AT - timedelta(hours=2), [])
    assert due == [Notice(ADVANCE, OCCURRENCE, emergency=True)]
    assert all(n.emergency for n in due_notices(window_spec(spec), OCCURRENCE, START_AT, sent(*due)))


def test_the_default_lead_time_is_72_hours():
    spec = {**SPEC, "notice": {}}
    assert due_notices(window_spec(spec), OCCURRENCE, START_AT - timedelta(hours=73), []) == []
    assert kinds(due_notices(window_spec(spec), OCCURRENCE, START_AT - timedelta(hours=71), [])) == [ADVANCE]


def test_record_writes_the_status_entry_and_keeps_the_list_bounded():
    entries = record(
        None,
        Notice(END, OCCURRENCE),
        at=utc(2026, 12, 5, 22, 0, 1),
        delivered=False,
        recipients=["acme", "ops"],
        error="acme: 550 mailbox unavailable",
    )
    assert entries == [
        {
            "kind": "end",
            "occurrence": "2026-12-05T20:00:00Z",
            "at": "2026-12-05T22:00:01Z",
            "delivered": False,
            "recipients": ["acme", "ops"],
            "error": "acme: 550 mailbox unavailable",
        }
    ]
    many = entries * (KEEP + 5)
    assert len(record(many, Notice(END, OCCURRENCE), at=START_AT, delivered=True, recipients=[])) == KEEP


NOW = utc(2026, 11, 28, 10)


def violation(spec: dict, now, previous: dict | None = None):
    """lead_time_violation on specs parsed as the admission webhook parses them."""
    return lead_time_violation(window_spec(spec), now, previous=window_spec(previous) if previous else None)


def test_too_little_notice_is_refused_with_what_to_do_instead():
    spec = {**SPEC, "schedule": {"start": "2026-11-28T12:00:00Z", "duration": "1h"}}
    assert violation(spec, NOW) == (
        "maintenance starts in 2h but consumers need 72h notice: move the start to after "
        "2026-12-01T10:00:00Z or set emergency: true with emergencyReason"
    )


def test_enough_notice_or_an_explained_emergency_is_accepted():
    assert violation(SPEC, utc(2026, 12, 2, 20)) is None
    soon = {**SPEC, "schedule": {"start": "2026-11-28T12:00:00Z", "duration": "1h"}}
    assert violation({**soon, "emergency": True, "emergencyReason": "CVE-2026-1234"}, NOW) is None
    assert violation({**soon, "notice": {"leadTime": "1h"}}, NOW) is None


def test_an_emergency_without_a_reason_is_still_refused():
    spec = {**SPEC, "schedule": {"start": "2026-11-28T10:30:00Z", "duration": "1h"}, "emergency": True}
    message = violation(spec, NOW)
    assert message.startswith("maintenance starts in 30m but consumers need 72h notice")
    assert message.endswith("give the emergencyReason that emergency: true requires")


def test_a_window_already_running_starts_now():
    spec = {**SPEC, "schedule": {"start": "2026-11-28T09:00:00Z", "duration": "2h"}}
    assert violation(spec, NOW).startswith("maintenance starts now but")


def test_a_recurring_window_is_never_refused_for_lead_time():
    spec = {**SPEC, "schedule": {"cron": "0 22 * * SAT", "duration": "2h", "timeZone": "UTC"}}
    assert violation(spec, NOW) is None  # Saturday 10:00 UTC, the run is at 22:00
    one_off = {**SPEC, "schedule": {"start": "2026-11-28T22:00:00Z", "duration": "2h"}}
    assert violation(one_off, NOW).startswith("maintenance starts in 12h")


def test_updates_are_judged_only_when_they_move_the_start_earlier():
    running = {**SPEC, "schedule": {"start": "2026-11-28T09:00:00Z", "end": "2026-11-28T13:00:00Z"}}
    shortened = {**running, "schedule": {"start": "2026-11-28T09:00:00Z", "end": "2026-11-28T11:00:00Z"}}
    assert violation(shortened, NOW, previous=running) is None
    postponed = {**SPEC, "schedule": {"start": "2026-11-28T14:00:00Z", "duration": "1h"}}
    planned = {**SPEC, "schedule": {"start": "2026-11-28T12:00:00Z", "duration": "1h"}}
    assert violation(postponed, NOW, previous=planned) is None
    assert violation(planned, NOW, previous=postponed).startswith("maintenance starts in 2h")


# -- the outbox: owed per recipient, sent beside the reconcile ---------------------------------------
def _result(recipient, ok, *, permanent=False, at=START_AT, kind=START, error=None):
    from pitwall.maintenance.notices import SendResult

    return SendResult(kind, "2026-12-05T20:00:00Z", recipient, ok, permanent, error, at)


def test_an_owed_notice_is_decided_once_and_sent_per_recipient():
    from pitwall.maintenance.notices import apply_sends, due_sends, owe

    notice = Notice(START, OCCURRENCE)
    entries = owe([], notice, at=START_AT, recipients=["acme", "ops"])
    # decided: never due again, whatever the outbox does with it
    assert due_notices(window_spec(SPEC), OCCURRENCE, START_AT + timedelta(minutes=1), entries) == []
    due, later = due_sends(entries, START_AT)
    assert [d[:3] for d in due] == [
        (START, "2026-12-05T20:00:00Z", "acme"),
        (START, "2026-12-05T20:00:00Z", "ops"),
    ]
    assert later is None
    # what is in flight (sent, result not yet recorded) is not handed out twice
    assert due_sends(entries, START_AT, exclude=due[:1])[0] == due[1:]

    entries, lost = apply_sends(entries, [_result("acme", True), _result("ops", True)])
    assert lost == [] and entries[0]["delivered"] is True and "pending" not in entries[0]
    assert entries[0]["recipients"] == ["acme", "ops"]
    # a result applied twice (a reconcile retried after a failed write) changes nothing
    assert apply_sends(entries, [_result("acme", True)])[0] == entries


def test_a_permanent_refusal_is_recorded_once_and_never_retried():
    from pitwall.maintenance.notices import apply_sends, due_sends, owe

    entries = owe([], Notice(START, OCCURRENCE), at=START_AT, recipients=["acme"])
    entries, lost = apply_sends(
        entries, [_result("acme", False, permanent=True, error="SMTP 550 no such user")]
    )
    assert len(lost) == 1 and "550" in lost[0]
    assert entries[0]["failed"] == ["acme"] and entries[0]["delivered"] is False
    assert due_sends(entries, START_AT + timedelta(days=1)) == ([], None)


def test_transient_failures_back_off_then_give_up_with_the_loss_recorded():
    from pitwall.maintenance.notices import MAX_TRIES, apply_sends, due_sends, owe

    entries = owe([], Notice(START, OCCURRENCE), at=START_AT, recipients=["acme"])
    now, waits = START_AT, []
    for attempt in range(1, MAX_TRIES + 1):
        entries, lost = apply_sends(
            entries, [_result("acme", False, at=now, error="HTTP 503")], retry_base=10
        )
        if attempt < MAX_TRIES:
            assert lost == []
            due, later = due_sends(entries, now)
            assert due == [] and later > now  # not again at once: backoff
            waits.append((later - now).total_seconds())
            now = later
        else:
            assert len(lost) == 1 and "gave up after" in lost[0]
    assert waits == sorted(waits) and waits[0] == 10 and waits[1] == 20
    assert due_sends(entries, now + timedelta(days=1)) == ([], None)


def test_a_window_deleted_after_its_advance_notice_owes_a_cancellation():
    from pitwall.maintenance.notices import CANCELLED

    before = START_AT - timedelta(hours=1)
    announced = sent(Notice(ADVANCE, OCCURRENCE))
    assert kinds(due_notices(window_spec(SPEC), OCCURRENCE, before, announced, cancelled=True)) == [CANCELLED]
    assert due_notices(window_spec(SPEC), OCCURRENCE, before, [], cancelled=True) == []  # nobody was told
    running = sent(Notice(ADVANCE, OCCURRENCE), Notice(START, OCCURRENCE))
    assert kinds(
        due_notices(window_spec(SPEC), OCCURRENCE, START_AT + timedelta(minutes=5), running, cancelled=True)
    ) == [END]
