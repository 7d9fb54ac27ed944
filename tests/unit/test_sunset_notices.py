"""Sunset notices: told when deprecated, reminded before sunsetAt, each once (products/sunset.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pitwall.api.apiproduct import ApiProductSpec, SunsetNotice
from pitwall.api.base import default_of, parse
from pitwall.products import sunset

SUNSET = datetime(2027, 3, 1, tzinfo=UTC)


RELAY = {"consumerEmail": {"secretRef": {"name": "smtp", "key": "url"}}}


def spec(
    lifecycle="deprecated", sunset_at="2027-03-01T00:00:00Z", lead_times=None, notice=RELAY, **extra
) -> ApiProductSpec:
    """The product's spec, parsed as the reconciler parses it (the model's defaults filled in)."""
    version = {"name": "v1", "lifecycle": lifecycle, "image": "x"}
    if sunset_at:
        version["sunsetAt"] = sunset_at
    if notice is not None and lead_times is not None:
        notice = {**notice, "leadTimes": lead_times}
    raw = {
        "displayName": "Payments API",
        "owner": {"contact": "payments-oncall@example.com"},
        "versions": [version, {"name": "v2", "image": "y"}],
        "consumers": [
            {"name": "globex", "versions": ["v1"], "contact": {"email": "g@x"}},
            {"name": "acme", "versions": ["v2"], "contact": {"email": "a@x"}},
            {"name": "umbrella", "contact": {"name": "Umbrella", "email": "u@x"}},
        ],
        **({"sunsetNotice": notice} if notice is not None else {}),
        **extra,
    }
    return parse(ApiProductSpec, raw)


def run(s, now, sent=()):
    """Send what is due and record it, as the reconciler does."""
    sent = list(sent)
    notices = sunset.due(s, now, sent)
    for n in notices:
        sent = sunset.record(
            sent, n, at=now, delivered=True, recipients=[c.name for c in n.consumers], error=None
        )
    return notices, sent


def test_deprecation_is_announced_once_to_the_versions_consumers_then_each_lead_time_once():
    s = spec()
    notices, sent = run(s, SUNSET - timedelta(days=100))
    assert [(n.kind, n.lead_time) for n in notices] == [("deprecated", None)]
    assert [c.name for c in notices[0].consumers] == ["globex", "umbrella"]  # acme uses v2 only
    assert run(s, SUNSET - timedelta(days=99), sent)[0] == []  # restart: nothing again
    notices, sent = run(s, SUNSET - timedelta(days=29), sent)
    assert [(n.kind, n.lead_time) for n in notices] == [("reminder", "30d")]
    assert run(s, SUNSET - timedelta(days=20), sent)[0] == []
    notices, sent = run(s, SUNSET - timedelta(days=6), sent)
    assert [(n.kind, n.lead_time) for n in notices] == [("reminder", "7d")]
    assert run(s, SUNSET - timedelta(hours=1), sent)[0] == []
    assert run(s, SUNSET + timedelta(hours=1), [])[0] == []  # after the sunset: nothing


def test_late_deprecation_folds_the_due_reminder_in_and_never_sends_a_stale_one():
    s = spec(lead_times=["90d", "30d", "7d"])
    notices, sent = run(s, SUNSET - timedelta(days=20))
    assert [(n.kind, n.covers) for n in notices] == [("deprecated", ("30d",))]
    assert {(e["kind"], e.get("leadTime")) for e in sent} == {("deprecated", None), ("reminder", "30d")}
    assert run(s, SUNSET - timedelta(days=19), sent)[0] == []  # no "90 days left"
    assert [n.lead_time for n in run(s, SUNSET - timedelta(days=5), sent)[0]] == ["7d"]


def test_a_moved_sunset_is_reminded_again_and_published_versions_owe_nothing():
    s = spec()
    _, sent = run(s, SUNSET - timedelta(days=6))
    moved = spec(sunset_at="2027-06-01T00:00:00Z")
    assert run(moved, SUNSET - timedelta(days=5), sent)[0] == []  # 92 days to go, no lead time
    assert [n.lead_time for n in run(moved, datetime(2027, 5, 10, tzinfo=UTC), sent)[0]] == ["30d"]
    assert run(spec(lifecycle="published", sunset_at=None), SUNSET, [])[0] == []
    assert run(spec(notice=None), SUNSET - timedelta(days=6))[0] == []


def test_the_notice_says_what_when_and_where_to_go():
    s = spec()
    assert s.consumers is not None
    [notice] = sunset.due(s, SUNSET - timedelta(days=100), [])
    message = sunset.compose("payments", s, notice, s.consumers[2], SUNSET - timedelta(days=100))
    assert message.subject == "Payments API v1 is deprecated: sunset on 2027-03-01 00:00 UTC"
    assert "Hello Umbrella," in message.text and "100 days from now" in message.text
    assert "Please move to v2 before then." in message.text
    assert message.data["kind"] == "sunset-deprecated" and message.data["replacements"] == ["v2"]
    [reminder] = sunset.due(
        s, SUNSET - timedelta(days=6, hours=12), [{"version": "v1", "kind": "deprecated"}]
    )
    assert (
        sunset.compose("payments", s, reminder, s.consumers[0], SUNSET - timedelta(days=6, hours=12)).subject
        == "Reminder: Payments API v1 sunsets in 6 days (2027-03-01 00:00 UTC)"
    )


def test_a_notice_is_recorded_owed_before_it_is_sent_and_never_decided_again():
    s = spec(lead_times=["30d", "7d"])
    now = SUNSET - timedelta(days=5)
    [notice] = sunset.due(s, now, [])
    owed = sunset.owe([], notice, s, at=now)
    assert [(e["kind"], e.get("leadTime"), e.get("pending")) for e in owed] == [
        ("deprecated", None, ["globex", "umbrella"]),
        ("reminder", "7d", None),  # folded in: recorded with it
    ]
    assert all(e["delivered"] is False for e in owed)
    assert sunset.due(s, now, owed) == []  # a restart decides nothing again ...
    assert sunset.owed(owed, now) == ([owed[0]], None)  # ... the outbox still owes it


def test_a_failed_consumer_is_tried_again_and_the_outcome_reaches_the_folded_reminder():
    s = spec(lead_times=["30d", "7d"])
    now = SUNSET - timedelta(days=5)
    [notice] = sunset.due(s, now, [])
    owed = sunset.owe([], notice, s, at=now)
    key = sunset.ident(owed[0])
    entries, finished = sunset.settle(
        owed,
        key,
        at=now,
        reached=["globex"],
        failed=["umbrella"],
        refused=[],
        errors=["umbrella: 503"],
        retry_base=10,
    )
    assert finished is None and entries[0]["pending"] == ["umbrella"] and entries[0]["tries"] == 1
    assert sunset.owed(entries, now) == ([], now + timedelta(seconds=10))
    later = now + timedelta(seconds=10)
    entries, finished = sunset.settle(
        entries, key, at=later, reached=["umbrella"], failed=[], refused=[], errors=[]
    )
    assert finished is not None and finished["delivered"] is True
    assert [(e["kind"], e["delivered"], e["recipients"]) for e in entries] == [
        ("deprecated", True, ["globex", "umbrella"]),
        ("reminder", True, ["globex", "umbrella"]),
    ]
    assert "pending" not in entries[0]
    # the same round recorded twice changes nothing
    assert sunset.settle(entries, key, at=later, reached=[], failed=["umbrella"], refused=[], errors=[]) == (
        entries,
        None,
    )


def test_a_notice_nobody_can_be_told_is_recorded_failed_at_once():
    s = spec(notice={})  # no relay: e-mail contacts cannot be told
    [notice] = sunset.due(s, SUNSET - timedelta(days=100), [])
    [entry] = sunset.owe([], notice, s, at=SUNSET - timedelta(days=100))
    assert entry["delivered"] is False and "pending" not in entry and "no consumer" in entry["error"]


def test_lead_times_the_spec_leaves_out_are_the_models_and_its_own_win():
    assert default_of(SunsetNotice, "lead_times") == ["30d", "7d"]
    # sunsetNotice: {} (the relay unset) still reminds at the model's lead times
    notices, _ = run(spec(notice={}), SUNSET - timedelta(days=6), [{"version": "v1", "kind": "deprecated"}])
    assert [n.lead_time for n in notices] == ["7d"]
    notices, _ = run(
        spec(lead_times=["2d"]), SUNSET - timedelta(days=6), [{"version": "v1", "kind": "deprecated"}]
    )
    assert notices == []  # 2d not reached yet; 7d is not the spec's
    # an explicit empty list is no reminders, not the default
    assert (
        run(spec(lead_times=[]), SUNSET - timedelta(days=6), [{"version": "v1", "kind": "deprecated"}])[0]
        == []
    )


def test_a_version_without_a_lifecycle_is_published_and_named_as_the_replacement():
    s = spec()
    assert s.versions[1].lifecycle == default_of(type(s.versions[1]), "lifecycle") == "published"
    assert s.consumers is not None
    [notice] = sunset.due(s, SUNSET - timedelta(days=100), [])
    assert sunset.compose("payments", s, notice, s.consumers[0], SUNSET).data["replacements"] == ["v2"]
