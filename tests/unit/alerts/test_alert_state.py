"""The alert state machine, driven through time with plain data (no cluster, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pitwall.alerts.rules import parse_rule
from pitwall.alerts.state import (
    DELIVERIES_KEEP,
    RESOLVED_KEEP,
    DeliveryResult,
    Observation,
    alert_key,
    apply_results,
    evaluate,
    observe,
    parse_acks,
)

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def at(**delta) -> datetime:
    return T0 + timedelta(**delta)


def make_rule(name="probes-down", namespace="shop", **spec):
    base = {
        "severity": "critical",
        "selector": {"kinds": ["Probe"]},
        "when": {"condition": "Ready", "status": "False", "for": "1m"},
        "receivers": [
            {"name": "ops", "type": "msteams", "secretRef": {"name": "teams", "key": "url"}},
            {"name": "pd", "type": "pagerduty", "secretRef": {"name": "pd", "key": "key"}},
            {
                "name": "lead",
                "type": "slack",
                "secretRef": {"name": "slack", "key": "url"},
                "escalationOnly": True,
            },
            {
                "name": "team",
                "type": "email",
                "secretRef": {"name": "smtp", "key": "url"},
                "email": {"to": ["team@example.com"], "from": "pitwall@example.com"},
                "escalationOnly": True,
            },
        ],
        "escalation": [{"after": "30m", "receivers": ["lead"]}, {"after": "2h", "receivers": ["team"]}],
    }
    base.update(spec)
    return parse_rule(namespace, name, base)


def down(name="checkout", since=T0, kind="Probe", message="step home: got 503"):
    return Observation(kind, name, "False", since, "ProbeFailing", message)


def up(name="checkout", since=T0, kind="Probe"):
    return Observation(kind, name, "True", since, "ProbeSucceeding", "all steps passed")


def sent(ev) -> set[tuple[str, str, tuple[str, ...]]]:
    """(receiver, event, alert names) of every notification an evaluation asks for."""
    return {(n.receiver.name, n.event, tuple(a.name for a in n.alerts)) for n in ev.notifications}


def delivered(ev, when, ok=True, error=None):
    """The records after every notification of ``ev`` was delivered (or failed) at ``when``."""
    results = [
        DeliveryResult(n.receiver.name, n.event, n.keys, ok, 1 if ok else 8, error, when)
        for n in ev.notifications
    ]
    return apply_results(ev.records, results)


def step(rule, records, observations, when, **kw):
    """Evaluate, then deliver everything successfully: the records the next evaluation sees."""
    ev = evaluate(rule, records, observations, when, **kw)
    return ev, delivered(ev, when)


def record(records, name="checkout"):
    return next(r for r in records if r["object"]["name"] == name)


def test_waits_for_the_duration_then_fires_to_initial_receivers_only():
    rule = make_rule()
    ev, records = step(rule, [], [down(since=T0)], at(seconds=20))
    assert ev.notifications == []
    assert record(records)["state"] == "pending"
    assert record(records)["pendingSince"] == "2026-03-01T10:00:00Z"
    assert ev.wake_at == at(minutes=1)

    ev, records = step(rule, records, [down(since=T0)], at(minutes=1))
    assert sent(ev) == {("ops", "firing", ("checkout",)), ("pd", "firing", ("checkout",))}
    rec = record(records)
    assert rec["state"] == "firing"
    assert rec["since"] == "2026-03-01T10:01:00Z"
    assert rec["ackDeadline"] == "2026-03-01T10:31:00Z"
    assert ev.firing == 1


def test_for_counts_from_the_conditions_transition_time():
    ev = evaluate(make_rule(), [], [down(since=at(minutes=-5))], T0)
    assert sent(ev) == {("ops", "firing", ("checkout",)), ("pd", "firing", ("checkout",))}


def test_a_pending_alert_that_recovers_is_forgotten_quietly():
    rule = make_rule()
    _, records = step(rule, [], [down(since=T0)], at(seconds=30))
    ev, records = step(rule, records, [up(since=at(seconds=40))], at(seconds=45))
    assert ev.notifications == []
    assert records == []
    assert [(t.old, t.new) for t in ev.transitions] == [("pending", None)]


def test_no_duplicates_while_it_stays_firing():
    rule = make_rule(repeatInterval="4h")
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    for minutes in (2, 5, 10, 29):
        ev, records = step(rule, records, [down(since=T0)], at(minutes=minutes))
        assert ev.notifications == [], minutes


def test_escalates_by_time_since_firing_each_step_once():
    rule = make_rule()
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    ev, records = step(rule, records, [down(since=T0)], at(minutes=30))
    assert ev.notifications == []
    assert ev.wake_at == at(minutes=31)

    ev, records = step(rule, records, [down(since=T0)], at(minutes=31))
    assert sent(ev) == {("lead", "escalation", ("checkout",))}
    assert record(records)["escalationStep"] == 1
    ev, records = step(rule, records, [down(since=T0)], at(minutes=40))
    assert ev.notifications == []

    ev, records = step(rule, records, [down(since=T0)], at(hours=2, minutes=1))
    assert sent(ev) == {("team", "escalation", ("checkout",))}
    assert record(records)["escalationStep"] == 2


def test_steps_missed_while_the_operator_was_down_are_called_once():
    rule = make_rule()
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    ev, records = step(rule, records, [down(since=T0)], at(hours=3))
    assert sent(ev) == {("lead", "escalation", ("checkout",)), ("team", "escalation", ("checkout",))}
    assert record(records)["escalationStep"] == 2
    ev, _ = step(rule, records, [down(since=T0)], at(hours=3, minutes=1))
    assert ev.notifications == []


def test_acknowledgement_stops_escalation_and_reminders():
    rule = make_rule(repeatInterval="1h")
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    key = record(records)["key"]
    ev, records = step(rule, records, [down(since=T0)], at(minutes=10), acks={key: "alice"})
    assert ev.acks_applied == (key,)
    assert ev.notifications == []
    rec = record(records)
    assert rec["acknowledgedBy"] == "alice"
    assert rec["acknowledgedAt"] == "2026-03-01T10:10:00Z"
    for hours in (1, 2, 5):
        ev, records = step(rule, records, [down(since=T0)], at(hours=hours, minutes=2))
        assert ev.notifications == [], hours
    assert ev.wake_at is None


def test_acknowledging_drops_an_escalation_still_owed():
    rule = make_rule()
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    ev = evaluate(rule, records, [down(since=T0)], at(minutes=31))
    failed = delivered(ev, at(minutes=31), ok=False, error="HTTP 503")
    ev = evaluate(rule, failed, [down(since=T0)], at(hours=1), acks={record(failed)["key"]: "bob"})
    assert ev.notifications == []
    assert record(ev.records)["outstanding"] == []


def test_unknown_acknowledgements_are_reported():
    rule = make_rule()
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    ev = evaluate(rule, records, [down(since=T0)], at(minutes=2), acks={"probe-typo-123": "bob"})
    assert ev.acks_applied == ()
    assert ev.acks_unknown == ("probe-typo-123",)


def test_ack_annotation_takes_a_comma_list_and_an_optional_author():
    assert parse_acks({"pitwall.dev/acknowledge": "a, b,,c"}) == {
        "a": "annotation",
        "b": "annotation",
        "c": "annotation",
    }
    assert parse_acks({"pitwall.dev/acknowledge": "a", "pitwall.dev/acknowledged-by": "carol"}) == {
        "a": "carol"
    }
    assert parse_acks(None) == {}


def test_reminders_repeat_to_the_initial_receivers_until_acknowledged():
    rule = make_rule(repeatInterval="1h", escalation=[])
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    ev, records = step(rule, records, [down(since=T0)], at(minutes=59))
    assert ev.notifications == []
    assert ev.wake_at == at(hours=1, minutes=1)
    ev, records = step(rule, records, [down(since=T0)], at(hours=1, minutes=1))
    assert sent(ev) == {("ops", "reminder", ("checkout",)), ("pd", "reminder", ("checkout",))}
    ev, records = step(rule, records, [down(since=T0)], at(hours=2, minutes=1))
    assert sent(ev) == {("ops", "reminder", ("checkout",)), ("pd", "reminder", ("checkout",))}

    key = record(records)["key"]
    ev, records = step(rule, records, [down(since=T0)], at(hours=2, minutes=5), acks={key: "dave"})
    ev, records = step(rule, records, [down(since=T0)], at(hours=9))
    assert ev.notifications == []


def test_once_escalated_the_escalation_receivers_are_reminded_too():
    rule = make_rule(repeatInterval="1h", escalation=[{"after": "30m", "receivers": ["lead"]}])
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    ev, records = step(rule, records, [down(since=T0)], at(minutes=31))
    assert sent(ev) == {("lead", "escalation", ("checkout",))}
    # the escalation was the last notification: the next reminder is an hour after it
    assert ev.wake_at == at(hours=1, minutes=31)
    ev, records = step(rule, records, [down(since=T0)], at(hours=1, minutes=1))
    assert ev.notifications == []
    ev, records = step(rule, records, [down(since=T0)], at(hours=1, minutes=31))
    assert sent(ev) == {
        ("ops", "reminder", ("checkout",)),
        ("pd", "reminder", ("checkout",)),
        ("lead", "reminder", ("checkout",)),
    }


def test_zero_repeat_interval_means_no_reminders():
    rule = make_rule(repeatInterval="0s", escalation=[])
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    ev, _ = step(rule, records, [down(since=T0)], at(days=3))
    assert ev.notifications == []
    assert ev.wake_at is None


def test_resolve_reaches_every_receiver_that_saw_the_alert():
    rule = make_rule()
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    _, records = step(rule, records, [down(since=T0)], at(minutes=31))  # lead escalated
    ev, records = step(rule, records, [up(since=at(minutes=40))], at(minutes=41))
    assert sent(ev) == {
        ("ops", "resolved", ("checkout",)),
        ("pd", "resolved", ("checkout",)),
        ("lead", "resolved", ("checkout",)),
    }
    rec = record(records)
    assert rec["state"] == "resolved"
    assert rec["resolvedAt"] == "2026-03-01T10:41:00Z"
    assert ev.notifications[0].alerts[0].message == "all steps passed"
    assert ev.firing == 0
    ev, _ = step(rule, records, [up(since=at(minutes=40))], at(minutes=50))
    assert ev.notifications == []


def test_send_resolved_false_keeps_quiet_on_recovery():
    rule = make_rule(sendResolved=False)
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    ev, records = step(rule, records, [up()], at(minutes=5))
    assert ev.notifications == []
    assert record(records)["state"] == "resolved"


def test_a_deleted_or_deselected_object_resolves_its_alert():
    rule = make_rule()
    _, records = step(rule, [], [down("a", since=T0), down("b", since=T0)], at(minutes=1))
    ev, records = step(rule, records, [down("a", since=T0)], at(minutes=2))
    assert sent(ev) == {("ops", "resolved", ("b",)), ("pd", "resolved", ("b",))}
    assert "no longer exists" in ev.notifications[0].alerts[0].message
    assert record(records, "a")["state"] == "firing"
    # A deleted rule: evaluate with nothing selected resolves everything left.
    ev, _ = step(rule, records, [], at(minutes=3))
    assert sent(ev) == {("ops", "resolved", ("a",)), ("pd", "resolved", ("a",))}


def test_held_in_maintenance_never_fires_then_fires_if_still_down_after_the_window():
    rule = make_rule()
    held = {("Probe", "checkout")}
    ev, records = step(rule, [], [down(since=T0)], at(minutes=5), held=held)
    assert ev.notifications == []
    assert record(records)["state"] == "held"
    ev, records = step(rule, records, [down(since=T0)], at(hours=3), held=held)
    assert ev.notifications == []
    ev, records = step(rule, records, [down(since=T0)], at(hours=3, minutes=1))
    assert sent(ev) == {("ops", "firing", ("checkout",)), ("pd", "firing", ("checkout",))}


def test_held_alert_that_never_fired_resolves_silently():
    rule = make_rule()
    held = {("Probe", "checkout")}
    _, records = step(rule, [], [down(since=T0)], at(minutes=5), held=held)
    ev, records = step(rule, records, [up()], at(minutes=30), held=held)
    assert ev.notifications == []
    assert records == []


def test_firing_before_the_window_is_held_without_escalation_but_keeps_its_resolve():
    rule = make_rule()
    held = {("Probe", "checkout")}
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    ev, records = step(rule, records, [down(since=T0)], at(minutes=45), held=held)
    assert ev.notifications == []  # no escalation to lead while held
    assert record(records)["state"] == "held"
    assert ev.firing == 0
    ev, records = step(rule, records, [up()], at(minutes=50), held=held)
    assert sent(ev) == {("ops", "resolved", ("checkout",)), ("pd", "resolved", ("checkout",))}


def test_blocked_severity_is_recorded_but_never_notifies():
    rule = make_rule(severity="blocked", repeatInterval="1m")
    ev, records = step(rule, [], [down(since=T0)], at(minutes=1))
    assert ev.notifications == []
    rec = record(records)
    assert rec["state"] == "firing" and rec["severity"] == "blocked"
    assert "ackDeadline" not in rec
    assert ev.firing == 1
    assert [(t.old, t.new) for t in ev.transitions] == [(None, "firing")]
    ev, records = step(rule, records, [down(since=T0)], at(hours=5))
    assert ev.notifications == []
    ev, records = step(rule, records, [up()], at(hours=6))
    assert ev.notifications == []
    assert record(records)["state"] == "resolved"


def test_alerts_firing_together_share_one_notification_per_receiver():
    rule = make_rule()
    ev = evaluate(rule, [], [down("a", since=T0), down("b", since=T0), up("c")], at(minutes=1))
    assert sent(ev) == {("ops", "firing", ("a", "b")), ("pd", "firing", ("a", "b"))}
    assert len(ev.notifications) == 2


def test_group_wait_gathers_alerts_that_fire_close_together():
    rule = make_rule(groupWait="30s", when={"condition": "Ready", "status": "False", "for": "0s"})
    ev, records = step(rule, [], [down("a", since=T0)], T0)
    assert ev.notifications == []
    assert ev.wake_at == at(seconds=30)
    ev, records = step(rule, records, [down("a", since=T0), down("b", since=at(seconds=10))], at(seconds=10))
    assert ev.notifications == []
    ev, records = step(rule, records, [down("a", since=T0), down("b", since=at(seconds=10))], at(seconds=30))
    assert sent(ev) == {("ops", "firing", ("a", "b")), ("pd", "firing", ("a", "b"))}


def test_restart_with_the_same_records_sends_nothing_new():
    rule = make_rule()
    obs = [down("a", since=T0), down("b", since=T0)]
    _, records = step(rule, [], obs, at(minutes=1))
    _, records = step(rule, records, obs, at(minutes=31))
    again = evaluate(rule, records, obs, at(minutes=31))
    assert again.notifications == []
    assert again.records == records
    assert again.transitions == []


def test_a_crash_between_deciding_and_sending_loses_nothing():
    rule = make_rule()
    decided = evaluate(rule, [], [down(since=T0)], at(minutes=1))
    # The records were saved, the operator died before delivering: the next run sends them, once.
    rerun = evaluate(rule, decided.records, [down(since=T0)], at(minutes=1, seconds=20))
    assert sent(rerun) == sent(decided)
    after = delivered(rerun, at(minutes=1, seconds=21))
    assert evaluate(rule, after, [down(since=T0)], at(minutes=2)).notifications == []


def test_a_failed_delivery_is_retried_by_a_later_evaluation_and_recorded():
    rule = make_rule()
    ev = evaluate(rule, [], [down(since=T0)], at(minutes=1))
    results = [
        DeliveryResult(
            "ops", "firing", ev.notifications[0].keys, False, 8, "HTTP 500 from https://x/***", at(minutes=1)
        ),
        DeliveryResult("pd", "firing", ev.notifications[1].keys, True, 1, None, at(minutes=1)),
    ]
    records = apply_results(ev.records, results)
    rec = record(records)
    assert rec["outstanding"] == [
        {"receiver": "ops", "event": "firing", "due": "2026-03-01T10:01:30Z", "tries": 1}
    ]
    assert [(d["receiver"], d["ok"], d["attempts"]) for d in rec["deliveries"]] == [
        ("ops", False, 8),
        ("pd", True, 1),
    ]
    ev = evaluate(rule, records, [down(since=T0)], at(minutes=1, seconds=10))
    assert ev.notifications == []
    assert ev.wake_at == at(minutes=1, seconds=30)
    ev = evaluate(rule, records, [down(since=T0)], at(minutes=1, seconds=30))
    assert sent(ev) == {("ops", "firing", ("checkout",))}
    records = delivered(ev, at(minutes=1, seconds=31))
    assert record(records)["outstanding"] == []
    assert evaluate(rule, records, [down(since=T0)], at(minutes=2)).notifications == []


def test_an_undelivered_firing_is_replaced_by_the_resolve():
    rule = make_rule()
    ev = evaluate(rule, [], [down(since=T0)], at(minutes=1))
    records = delivered(ev, at(minutes=1), ok=False, error="down")
    ev = evaluate(rule, records, [up()], at(minutes=2))
    assert sent(ev) == {("ops", "resolved", ("checkout",)), ("pd", "resolved", ("checkout",))}


def test_delivery_log_is_bounded():
    rule = make_rule()
    ev = evaluate(rule, [], [down(since=T0)], at(minutes=1))
    records = ev.records
    for i in range(DELIVERIES_KEEP + 5):
        records = apply_results(
            records,
            [
                DeliveryResult(
                    "ops", "firing", ev.notifications[0].keys, False, 1, f"try {i}", at(minutes=2 + i)
                )
            ],
        )
    deliveries = record(records)["deliveries"]
    assert len(deliveries) == DELIVERIES_KEEP
    assert deliveries[-1]["error"] == f"try {DELIVERIES_KEEP + 4}"


def test_resolved_records_are_kept_a_day_and_at_most_fifty():
    rule = make_rule(when={"condition": "Ready", "status": "False"})
    names = [f"p{i:02d}" for i in range(RESOLVED_KEEP + 5)]
    _, records = step(rule, [], [down(n) for n in names], T0)
    _, records = step(rule, records, [up(n) for n in names[:10]], at(minutes=1))
    _, records = step(rule, records, [up(n) for n in names], at(minutes=2))
    assert len(records) == RESOLVED_KEEP
    # the ten resolved first are the ones let go (five of them)
    assert {r["object"]["name"] for r in records} >= set(names[10:])
    ev, records = step(rule, records, [], at(hours=24, minutes=1, seconds=30))
    assert records == []


def test_the_same_object_firing_again_starts_a_fresh_alert():
    rule = make_rule()
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    key = record(records)["key"]
    _, records = step(rule, records, [down(since=T0)], at(minutes=5), acks={key: "erin"})
    _, records = step(rule, records, [up()], at(minutes=10))
    ev, records = step(rule, records, [down(since=at(minutes=20))], at(minutes=21))
    assert sent(ev) == {("ops", "firing", ("checkout",)), ("pd", "firing", ("checkout",))}
    rec = record(records)
    assert rec["key"] == key
    assert "acknowledgedBy" not in rec and rec["escalationStep"] == 0
    assert len(records) == 1


def test_a_receiver_removed_from_the_rule_is_owed_nothing():
    rule = make_rule()
    ev = evaluate(rule, [], [down(since=T0)], at(minutes=1))
    smaller = make_rule(
        receivers=[{"name": "pd", "type": "pagerduty", "secretRef": {"name": "pd", "key": "k"}}],
        escalation=[],
    )
    ev = evaluate(smaller, ev.records, [down(since=T0)], at(minutes=1))
    assert sent(ev) == {("pd", "firing", ("checkout",))}


def test_turning_a_rule_blocked_stops_paging_but_still_resolves():
    rule = make_rule()
    _, records = step(rule, [], [down(since=T0)], at(minutes=1))
    blocked = make_rule(severity="blocked")
    ev, records = step(blocked, records, [down(since=T0)], at(hours=3))
    assert ev.notifications == []
    ev, _ = step(blocked, records, [up()], at(hours=4))
    assert sent(ev) == {("ops", "resolved", ("checkout",)), ("pd", "resolved", ("checkout",))}


def test_subject_follows_the_summary_template():
    rule = make_rule(summary="{kind} {name} in {namespace} is down: {reason}")
    ev = evaluate(rule, [], [down(since=T0)], at(minutes=1))
    assert record(ev.records)["subject"] == "Probe checkout in shop is down: ProbeFailing"
    default = evaluate(make_rule(), [], [down(since=T0)], at(minutes=1))
    assert record(default.records)["subject"] == "Probe checkout: Ready is False (ProbeFailing)"


@pytest.mark.parametrize(
    "summary, subject",
    [
        ("{name} {owner}", "checkout {owner}"),  # unknown fields stay as typed
        ("{name} {", "{name} {"),  # so does a broken template
        ("{0} down", "{0} down"),
        ("{name.nope}", "{name.nope}"),
    ],
)
def test_a_bad_summary_template_never_breaks_the_alert(summary, subject):
    ev = evaluate(make_rule(summary=summary), [], [down(since=T0)], at(minutes=1))
    assert record(ev.records)["subject"] == subject


def test_keys_are_stable_short_and_unique_per_rule_object_and_namespace():
    a = make_rule()
    assert alert_key(a, "Probe", "checkout") == alert_key(make_rule(), "Probe", "checkout")
    assert alert_key(a, "Probe", "checkout").startswith("probe-checkout-")
    others = {
        alert_key(make_rule(name="other"), "Probe", "checkout"),
        alert_key(make_rule(namespace="other"), "Probe", "checkout"),
        alert_key(a, "Backend", "checkout"),
        alert_key(a, "Probe", "cart"),
    }
    assert alert_key(a, "Probe", "checkout") not in others and len(others) == 4
    assert len(alert_key(a, "ApiProduct", "x" * 253)) <= 255
    assert "," not in alert_key(a, "Probe", "checkout")


@pytest.mark.parametrize(
    "conditions, expected",
    [
        (
            [
                {
                    "type": "Ready",
                    "status": "False",
                    "lastTransitionTime": "2026-03-01T09:00:00Z",
                    "reason": "Down",
                    "message": "503",
                }
            ],
            ("False", datetime(2026, 3, 1, 9, tzinfo=UTC), "Down", "503"),
        ),
        ([{"type": "Healthy", "status": "True"}], ("Unknown", None, "", "")),
        (None, ("Unknown", None, "", "")),
    ],
)
def test_observe_reads_the_condition_from_an_object(conditions, expected):
    obj = {"kind": "Probe", "metadata": {"name": "checkout"}, "status": {"conditions": conditions}}
    obs = observe(obj, "Ready")
    assert (obs.kind, obs.name) == ("Probe", "checkout")
    assert (obs.status, obs.since, obs.reason, obs.message) == expected
