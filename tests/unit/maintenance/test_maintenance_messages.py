"""Messages: who is told, and what each recipient reads."""

from datetime import UTC, datetime

from tests.helpers.windows import targets, window_spec

from pitwall.maintenance.messages import CONSUMER, RECEIVER, compose, recipients
from pitwall.maintenance.notices import ADVANCE, END, START, Notice
from pitwall.maintenance.schedule import Occurrence
from pitwall.maintenance.targets import resolve

OCCURRENCE = Occurrence(datetime(2026, 12, 5, 21, tzinfo=UTC), datetime(2026, 12, 5, 23, tzinfo=UTC))
RECEIVERS = [{"name": "ops", "type": "email", "email": {"to": ["ops@example.com"]}}]
SPEC = {
    "reason": "Core banking upgrade",
    "schedule": {"start": "2026-12-05T22:00:00+01:00", "duration": "2h", "timeZone": "Europe/Berlin"},
    "targets": {"backends": ["core-banking"]},
    "notice": {"receivers": RECEIVERS},
}


def everyone(spec, products, backends):
    return {
        r.name: r
        for r in recipients(window_spec(spec), resolve(targets(spec["targets"]), products, backends))
    }


def test_each_consumer_gets_one_notice_with_only_what_it_uses_and_receivers_get_everything(
    products, backends
):
    found = everyone(SPEC, products, backends)
    assert sorted(found) == ["acme", "globex", "ops"]
    acme = found["acme"]
    assert acme.kind == CONSUMER
    assert acme.contact == {"email": "ops@acme.example"}
    assert [(p.name, p.versions) for p in acme.products] == [("accounts", ("v1",)), ("payments", ("v2",))]
    assert (
        found["ops"].kind == RECEIVER
        and found["ops"].receiver.model_dump(by_alias=True, exclude_none=True) == RECEIVERS[0]
    )
    assert [(p.name, p.versions) for p in found["ops"].products] == [
        ("accounts", ("v1",)),
        ("payments", ("v1", "v2")),
    ]


def test_consumers_are_not_told_when_notify_consumers_is_off(products, backends):
    spec = {**SPEC, "notice": {"notifyConsumers": False, "receivers": RECEIVERS}}
    assert sorted(everyone(spec, products, backends)) == ["ops"]


def test_an_advance_notice_gives_times_in_the_window_zone_and_utc_and_who_to_ask(products, backends):
    message = compose(
        Notice(ADVANCE, OCCURRENCE), window_spec(SPEC), everyone(SPEC, products, backends)["acme"]
    )
    assert (
        message.subject == "Planned maintenance: Accounts API v1, Payments API v2, Sat 05 Dec 2026 22:00 CET"
    )
    assert "Reason: Core banking upgrade" in message.text
    assert "Start: Sat 05 Dec 2026 22:00 CET (Europe/Berlin), 2026-12-05 21:00 UTC" in message.text
    assert "End: Sun 06 Dec 2026 00:00 CET (Europe/Berlin), 2026-12-05 23:00 UTC" in message.text
    assert (
        "- Payments API (payments) v2: unavailable (depends on Backend core-banking (critical)); "
        "questions to payments-oncall@example.com"
    ) in message.text
    assert "- Accounts API (accounts) v1: may be degraded" in message.text
    assert "answer HTTP 503 with a Retry-After header" in message.text
    assert "EMERGENCY" not in message.text + message.subject
    assert message.data["start"] == "2026-12-05T21:00:00Z" and message.data["timeZone"] == "Europe/Berlin"
    assert message.data["kind"] == "advance" and message.data["occurrence"] == "2026-12-05T21:00:00Z"


def test_start_and_end_notices(products, backends):
    ops = everyone(SPEC, products, backends)["ops"]
    started = compose(Notice(START, OCCURRENCE), window_spec(SPEC), ops)
    assert (
        started.subject
        == "Maintenance started: Accounts API v1, Payments API v1/v2, until Sun 06 Dec 2026 00:00 CET"
    )
    finished = compose(Notice(END, OCCURRENCE), window_spec(SPEC), ops)
    assert finished.subject == "Maintenance finished: Accounts API v1, Payments API v1/v2"
    assert "back in normal service" in finished.text
    assert "503" not in finished.text


def test_every_notice_of_an_emergency_window_is_labelled(products, backends):
    spec = {**SPEC, "emergency": True, "emergencyReason": "Security patch for CVE-2026-1234"}
    ops = everyone(spec, products, backends)["ops"]
    for kind in (ADVANCE, START, END):
        message = compose(Notice(kind, OCCURRENCE, emergency=True), window_spec(spec), ops)
        assert message.subject.startswith("[EMERGENCY] ")
        assert message.text.startswith("EMERGENCY MAINTENANCE: Security patch for CVE-2026-1234\n")
        assert "<strong>EMERGENCY MAINTENANCE: Security patch for CVE-2026-1234</strong>" in message.html
        assert message.data["emergency"] is True


def test_utc_windows_show_utc_once_and_html_escapes_user_text(products, backends):
    spec = {
        **SPEC,
        "reason": "<script>alert(1)</script> & more",
        "schedule": {"cron": "0 21 * * SAT", "duration": "2h"},
    }
    message = compose(
        Notice(ADVANCE, OCCURRENCE), window_spec(spec), everyone(spec, products, backends)["ops"]
    )
    assert "Start: Sat 05 Dec 2026 21:00 UTC\n" in message.text
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in message.html


def test_a_one_off_without_a_zone_is_shown_in_the_offset_it_was_written_in(products, backends):
    spec = {**SPEC, "schedule": {"start": "2026-12-05T23:00:00+02:00", "duration": "2h"}}
    message = compose(
        Notice(ADVANCE, OCCURRENCE), window_spec(spec), everyone(spec, products, backends)["ops"]
    )
    assert "Start: Sat 05 Dec 2026 23:00 UTC+02:00, 2026-12-05 21:00 UTC" in message.text
