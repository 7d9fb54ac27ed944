"""Incident decisions and notices (pure): open, flapping within the merge window, recovery,
a person's resolution, who is told and what they read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pitwall.durations import rfc3339
from pitwall.incidents import decide, notify

T0 = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)


def evidence(bad=None, operational=False, merge=60.0):
    return decide.Evidence("ns", "payments", "Payments API", bad or {}, operational, merge)


DOWN = {"v2": ("outage", "provider-down", rfc3339(T0 - timedelta(seconds=5)))}


def created(action, now=T0):
    return {
        **action.body,
        "metadata": {**action.body["metadata"], "creationTimestamp": rfc3339(now)},
        "status": action.status,
    }


def test_outage_opens_one_incident_in_consumer_words():
    [action] = decide.plan_product(evidence(DOWN), [], T0)
    assert action.kind == "create"
    assert action.body["metadata"]["labels"][decide.OPENED_BY] == "pitwall"
    assert action.body["spec"]["products"] == [{"name": "payments", "versions": ["v2"]}]
    assert action.status["impact"] == "outage"
    assert action.status["cause"] == "Payments API v2: An upstream provider is unavailable."
    assert action.status["startedAt"] == rfc3339(T0 - timedelta(seconds=5))
    # while it goes on: nothing new
    assert decide.plan_product(evidence(DOWN), [created(action)], T0 + timedelta(seconds=10)) == []


def test_flapping_within_the_merge_window_continues_the_incident():
    incident = created(decide.plan_product(evidence(DOWN), [], T0)[0])
    [recovering] = decide.plan_product(evidence(operational=True), [incident], T0 + timedelta(seconds=10))
    assert recovering.status["phase"] == "Recovering"
    incident["status"] = recovering.status
    # relapse 30 s later (merge window 60 s): the same incident is open again, no new one
    [relapse] = decide.plan_product(evidence(DOWN), [incident], T0 + timedelta(seconds=40))
    assert (
        relapse.kind == "status"
        and relapse.status["phase"] == "Open"
        and relapse.status["recoveredAt"] is None
    )
    incident["status"] = {k: v for k, v in relapse.status.items() if v is not None}
    [again] = decide.plan_product(evidence(operational=True), [incident], T0 + timedelta(seconds=50))
    incident["status"] = again.status
    assert decide.plan_product(evidence(operational=True), [incident], T0 + timedelta(seconds=100)) == []
    [resolved] = decide.plan_product(evidence(operational=True), [incident], T0 + timedelta(seconds=111))
    assert resolved.status["phase"] == "Resolved" and resolved.status["resolvedBy"] == "pitwall"
    assert "operating normally" in resolved.status["resolution"]


def test_a_person_resolves_and_the_same_outage_does_not_reopen():
    incident = created(decide.plan_product(evidence(DOWN), [], T0)[0])
    incident["spec"]["status"] = "resolved"
    incident["spec"]["updates"] = [
        {"message": "Fixed by the provider.", "status": "resolved", "author": "ana"}
    ]
    action = decide.plan_person(incident, T0 + timedelta(seconds=30))
    assert action.status["phase"] == "Resolved" and action.status["resolvedBy"] == "ana"
    assert action.status["resolution"] == "Fixed by the provider."
    incident["status"] = action.status
    assert decide.plan_product(evidence(DOWN), [incident], T0 + timedelta(seconds=40)) == []
    later = {"v2": ("outage", "checks-failing", rfc3339(T0 + timedelta(seconds=90)))}
    assert decide.plan_product(evidence(later), [incident], T0 + timedelta(seconds=95))[0].kind == "create"


def test_maintenance_and_unknown_neither_open_nor_recover():
    assert decide.plan_product(evidence(), [], T0) == []
    incident = created(decide.plan_product(evidence(DOWN), [], T0)[0])
    assert decide.plan_product(evidence(operational=False), [incident], T0 + timedelta(seconds=5)) == []


def test_kubectl_updates_get_their_field_manager_as_author():
    incident = created(decide.plan_product(evidence(DOWN), [], T0)[0])
    incident["spec"]["updates"] = [{"message": "Looking into it"}]
    incident["metadata"]["managedFields"] = [
        {"manager": "pitwall", "time": "2026-11-29T15:00:00Z", "fieldsV1": {"f:spec": {"f:products": {}}}},
        {
            "manager": "kubectl-edit",
            "time": "2026-11-29T15:01:00Z",
            "fieldsV1": {"f:spec": {"f:updates": {}}},
        },
    ]
    authors = decide.update_authors(incident, T0)
    assert authors == [{"index": 0, "author": "kubectl-edit", "at": rfc3339(T0)}]
    incident["status"]["updateAuthors"] = authors
    assert decide.update_authors(incident, T0 + timedelta(seconds=5)) is None
    assert decide.update_author(incident, 0) == "kubectl-edit"


PRODUCT = {
    "metadata": {"name": "payments", "namespace": "ns"},
    "spec": {
        "displayName": "Payments API",
        "versions": [{"name": "v1"}, {"name": "v2"}],
        "consumers": [
            {"name": "acme", "versions": ["v2"], "contact": {"email": "ops@acme.example"}},
            {"name": "globex", "versions": ["v1"], "contact": {"email": "ops@globex.example"}},
            {"name": "initech", "contact": {"webhook": "http://127.0.0.1:9/hook"}},
            {"name": "umbrella", "incidentNotices": False, "contact": {"email": "ops@umbrella.example"}},
        ],
        "incidents": {"receivers": [{"name": "ops", "type": "webhook", "url": "http://127.0.0.1:9/ops"}]},
    },
}


def test_only_consumers_of_affected_versions_who_did_not_opt_out_are_told():
    incident = created(decide.plan_product(evidence(DOWN), [], T0)[0])
    found = notify.recipients(incident, {"payments": PRODUCT})
    assert [(r.name, r.kind, r.versions) for r in found] == [
        ("acme", "consumer", ("v2",)),
        ("initech", "consumer", ("v2",)),
        ("ops", "receiver", ("v2",)),
    ]


def test_notices_once_each_spacing_and_resolution():
    incident = created(decide.plan_product(evidence(DOWN), [], T0)[0])
    assert notify.owed(incident, T0, 600)[0] == notify.Owed("start")
    incident["status"]["notices"] = notify.record([], "start", at=T0, state=notify.SENT, recipients=["acme"])
    assert notify.owed(incident, T0, 600) == (None, None)
    incident["spec"]["updates"] = [
        {"message": "A provider is down; we are working with them.", "status": "identified", "author": "ana"},
        {"message": "Fix deployed.", "status": "monitoring", "author": "ana"},
    ]
    # spacing: 10 minutes after the start notice; the two updates go as one (the latest)
    notice, due = notify.owed(incident, T0 + timedelta(minutes=1), 600)
    assert notice is None and due == T0 + timedelta(minutes=10)
    notice, _ = notify.owed(incident, T0 + timedelta(minutes=10), 600)
    assert notice == notify.Owed("update-1", 1)
    message = notify.compose(
        incident,
        notice,
        notify.recipients(incident, {"payments": PRODUCT})[0],
        {"payments": "Payments API"},
        T0,
    )
    assert message.subject == "Update (monitoring): Payments API v2"
    assert "Fix deployed." in message.text and "ops@" not in message.text
    incident["status"]["notices"] = notify.record(
        incident["status"]["notices"], "update-1", at=T0 + timedelta(minutes=10), state=notify.SENT
    )
    assert notify.owed(incident, T0 + timedelta(hours=1), 600) == (None, None)
    incident["status"]["phase"] = "Resolved"
    incident["status"]["resolvedAt"] = rfc3339(T0 + timedelta(minutes=30))
    assert notify.owed(incident, T0 + timedelta(minutes=30), 600)[0] == notify.Owed("resolved")


def test_an_incident_resolved_before_its_start_notice_tells_no_one():
    incident = created(decide.plan_product(evidence(DOWN), [], T0)[0])
    incident["status"]["phase"] = "Resolved"
    assert notify.owed(incident, T0, 600) == (None, None)


def test_a_notice_left_sending_by_a_restart_is_still_owed_to_the_outbox_not_decided_again():
    incident = created(decide.plan_product(evidence(DOWN), [], T0)[0])
    incident["status"]["notices"] = notify.record([], "start", at=T0, state=notify.SENDING)
    assert notify.owed(incident, T0, 600)[0] is None  # decided once ...
    due, later = notify.sending(incident["status"]["notices"], T0 + timedelta(hours=1))
    assert [n["event"] for n in due] == ["start"] and later is None  # ... and delivered again


def test_nothing_follows_a_start_notice_still_being_delivered():
    incident = created(decide.plan_product(evidence(DOWN), [], T0)[0])
    incident["status"]["notices"] = notify.record([], "start", at=T0, state=notify.SENDING)
    incident["status"]["phase"] = decide.RESOLVED
    assert notify.owed(incident, T0 + timedelta(hours=1), 600)[0] is None  # the resolve waits
    incident["status"]["notices"] = notify.record([], "start", at=T0, state=notify.SENT)
    assert notify.owed(incident, T0 + timedelta(hours=1), 600)[0] == notify.Owed("resolved")


def test_a_failed_recipient_is_tried_again_later_and_the_others_are_not():
    notices = notify.record([], "start", at=T0, state=notify.SENDING)
    notices = notify.settle(
        notices, "start", at=T0, reached=["acme"], failed=["globex"], refused=["initech"], retry_base=15
    )
    [entry] = notices
    assert entry["state"] == notify.SENDING
    assert entry["pending"] == ["globex"] and entry["recipients"] == ["acme"]
    assert entry["tries"] == 1 and entry["due"] == rfc3339(T0 + timedelta(seconds=15))
    assert notify.sending(notices, T0 + timedelta(seconds=10)) == ([], T0 + timedelta(seconds=15))
    assert notify.sending(notices, T0 + timedelta(seconds=15))[0] == [entry]
    later = T0 + timedelta(seconds=20)
    notices = notify.settle(notices, "start", at=later, reached=["globex"], failed=[], refused=[])
    [entry] = notices
    assert entry["state"] == notify.SENT and entry["recipients"] == ["acme", "globex"]
    assert "pending" not in entry and entry["failed"] == [
        "initech"
    ]  # refused for good: recorded, not retried
    # a round recorded twice (its result applied again) changes nothing
    assert notify.settle(notices, "start", at=later, reached=[], failed=["globex"], refused=[]) == notices


def test_a_notice_is_given_up_after_max_tries_with_the_loss_recorded():
    notices = notify.record([], "resolved", at=T0, state=notify.SENDING)
    for i in range(notify.MAX_TRIES):
        assert notices[0]["state"] == notify.SENDING
        notices = notify.settle(
            notices, "resolved", at=T0 + timedelta(hours=i), reached=[], failed=["acme"], refused=[]
        )
    [entry] = notices
    assert (
        entry["state"] == notify.SENT and entry["failed"] == ["acme"] and entry["tries"] == notify.MAX_TRIES
    )
    assert notify.sending(notices, T0 + timedelta(days=1)) == ([], None)


def test_a_notices_dedup_key_is_the_same_on_every_try_and_differs_per_recipient_and_event():
    key = notify.message_id("uid-1", "start", "acme")
    assert key == notify.message_id("uid-1", "start", "acme")
    assert (
        len(
            {
                key,
                notify.message_id("uid-1", "start", "globex"),
                notify.message_id("uid-1", "resolved", "acme"),
                notify.message_id("uid-2", "start", "acme"),
            }
        )
        == 4
    )


def _page_snapshot(**incident_extra):
    from pitwall.statuspage.relations import Snapshot

    product = {
        "metadata": {"name": "payments", "namespace": "ns"},
        "spec": {
            "displayName": "Payments API",
            "public": True,
            "versions": [{"name": "v2"}],
            "backends": [{"name": "core-banking"}],
        },
    }
    incident = {
        "metadata": {"name": "payments-1", "namespace": "ns", "creationTimestamp": rfc3339(T0)},
        "spec": {
            "products": [{"name": "payments", "versions": ["v2"]}],
            "status": "identified",
            "updates": [
                {
                    "message": "core-banking at db1.corp.internal is down <script>x</script>",
                    "status": "identified",
                    "author": "ana",
                    "at": rfc3339(T0),
                }
            ],
        },
        "status": {
            "phase": "Resolved",
            "impact": "outage",
            "cause": "Payments API v2: down.",
            "affected": [{"name": "payments", "versions": ["v2"]}],
            "startedAt": rfc3339(T0),
            "resolvedAt": rfc3339(T0 + timedelta(minutes=12)),
        },
    }
    for k, v in incident_extra.items():
        incident[k] = {**incident[k], **v}
    return Snapshot(products=[product], incidents=[incident])


def test_history_is_public_safe_and_bounded_to_90_days():
    from pitwall.statuspage.model import public_status

    page = public_status(_page_snapshot(), T0 + timedelta(days=1))
    [entry] = page["history"]
    assert entry["duration"] == "12m" and entry["resolved"] and entry["days"] == ["2026-11-29"]
    message = entry["updates"][0]["message"]
    assert "core-banking" not in message and "db1.corp.internal" not in message
    assert "ana" not in str(entry)  # authors stay internal
    assert public_status(_page_snapshot(), T0 + timedelta(days=91))["history"] == []
    private = _page_snapshot()
    private.products[0]["spec"]["public"] = False
    assert public_status(private, T0)["history"] == []


def test_page_and_feed_escape_what_people_wrote():
    import xml.etree.ElementTree as ET

    from pitwall.statuspage.feed import atom
    from pitwall.statuspage.model import public_status
    from pitwall.statuspage.render import render_public

    page = public_status(_page_snapshot(), T0 + timedelta(hours=1))
    html = render_public(page)
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert 'href="#i-payments-payments-1"' in html  # the day's bar links to it
    feed = ET.fromstring(atom(page, title="API status", base_url="http://status.example"))
    entry = feed.find("{http://www.w3.org/2005/Atom}entry")
    assert entry.find("{http://www.w3.org/2005/Atom}title").text == "[Resolved] Payments API: outage"
    assert (
        "<script>x</script>" in entry.find("{http://www.w3.org/2005/Atom}content").text
    )  # text, escaped by XML


def test_emergency_window_opens_and_closes_its_incident():
    window = {
        "metadata": {"name": "hotfix", "namespace": "ns"},
        "spec": {"emergency": True},
        "status": {
            "phase": "Active",
            "activeSince": rfc3339(T0),
            "affected": {"apiProducts": [{"name": "payments", "versions": ["v2"]}]},
        },
    }
    [action] = decide.plan_window(window, [], T0)
    assert action.kind == "create" and action.body["spec"]["type"] == "emergency-maintenance"
    assert action.status["impact"] == "maintenance"
    incident = created(action)
    assert decide.plan_window(window, [incident], T0 + timedelta(seconds=5)) == []
    window["status"]["phase"] = "Completed"
    [done] = decide.plan_window(window, [incident], T0 + timedelta(minutes=5))
    assert done.status["phase"] == "Resolved"
    # no start/resolved notices of its own: the window's notices say so
    assert notify.owed(incident, T0, 600) == (None, None)


def test_internal_view_shows_who_wrote_each_update_and_the_notices():
    from pitwall.statuspage.internal import internal_status
    from pitwall.statuspage.render_internal import render_internal

    snap = _page_snapshot(
        status={
            "notices": [
                {
                    "event": "start",
                    "state": "Sent",
                    "at": rfc3339(T0),
                    "recipients": ["acme"],
                    "failed": ["globex"],
                }
            ]
        }
    )
    model = internal_status(snap, T0 + timedelta(hours=1))
    [entry] = model["incidentObjects"]
    assert entry["updates"][0]["author"] == "ana" and entry["notices"][0]["failed"] == ["globex"]
    html = render_internal(model)
    assert "(ana): core-banking" in html and "<script>x</script>" not in html and "failed: globex" in html
    assert internal_status(snap, T0 + timedelta(days=8))["incidentObjects"] == []


def test_an_incident_of_a_product_no_longer_public_is_resolved():
    incident = created(decide.plan_product(evidence(DOWN), [], T0)[0])
    assert decide.plan_orphan(incident, {("ns", "payments")}, T0) == []
    [action] = decide.plan_orphan(incident, set(), T0)
    assert action.status["phase"] == "Resolved" and "no longer listed" in action.status["resolution"]
