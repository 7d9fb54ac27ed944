"""AlertRule status written through its model: the records, the patch, and what cannot be written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from tests.unit.test_api_models import undeclared

from pitwall import api
from pitwall.alerts import state
from pitwall.alerts import status as alert_status
from pitwall.api import crdgen

AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
STAMP = "2026-11-29T12:00:00Z"


def full_record() -> state.AlertRecord:
    return state.AlertRecord(
        key="probe-checkout-1a2b3c4d",
        kind="Probe",
        name="checkout",
        subject="Probe checkout: Ready is False (Down)",
        state="firing",
        severity="high",
        pending_since=AT,
        since=AT,
        acknowledged_by="ana",
        acknowledged_at=AT,
        escalation_step=1,
        last_notified_at=AT,
        notified=["ops"],
        outstanding=[state.Owed("ops", "reminder", AT, 1)],
        deliveries=[{"receiver": "ops", "event": "firing", "at": STAMP, "ok": True, "attempts": 1}],
        message="step isUp: 503",
    )


def test_a_record_is_stored_camel_case_with_its_times_and_nothing_unset():
    assert full_record().to_dict() == {
        "key": "probe-checkout-1a2b3c4d",
        "object": {"kind": "Probe", "name": "checkout"},
        "subject": "Probe checkout: Ready is False (Down)",
        "state": "firing",
        "pendingSince": STAMP,
        "since": STAMP,
        "severity": "high",
        "ackDeadline": "2026-11-29T14:00:00Z",  # high: 2h
        "acknowledgedBy": "ana",
        "acknowledgedAt": STAMP,
        "escalationStep": 1,
        "lastNotifiedAt": STAMP,
        "deliveries": [{"receiver": "ops", "event": "firing", "at": STAMP, "ok": True, "attempts": 1}],
        "notified": ["ops"],
        "outstanding": [{"receiver": "ops", "event": "reminder", "due": STAMP, "tries": 1}],
        "message": "step isUp: 503",
    }


def test_a_pending_record_keeps_its_empty_lists_and_step_zero():
    record = state.AlertRecord("k", "Probe", "p", "p down", "pending", "low", pending_since=AT)
    written = record.to_dict()
    assert (
        written["escalationStep"],
        written["notified"],
        written["outstanding"],
        written["deliveries"],
    ) == (
        0,
        [],
        [],
        [],
    )
    assert not {"since", "ackDeadline", "acknowledgedBy", "resolvedAt", "message"} & set(written)


def test_a_record_round_trips_through_the_stored_form():
    written = full_record().to_dict()
    assert state.AlertRecord.from_dict(written).to_dict() == written


def test_the_patch_has_only_the_fields_given_and_declares_every_one():
    record = full_record().to_dict()
    assert alert_status.patch() == {}
    assert alert_status.patch(firing=0, alerts=[]) == {"firing": 0, "alerts": []}
    full = alert_status.patch(
        firing=1,
        alerts=[record],
        last_digest_at=STAMP,
        war_room={"state": "open", "openedAt": STAMP, "products": ["cart"], "threshold": 5.0, "message": "m"},
    )
    assert full["alerts"] == [record] and full["lastDigestAt"] == STAMP
    assert full["warRoom"] == {
        "state": "open",
        "openedAt": STAMP,
        "products": ["cart"],
        "threshold": 5.0,
        "message": "m",
    }
    assert undeclared(crdgen.openapi_schema(api.AlertRule)["properties"]["status"], full) == []


def test_what_the_model_does_not_declare_is_not_written():
    # The API server would prune it silently; the model drops it before the patch.
    war_room = {"state": "closed", "closedAt": STAMP, "openedBy": "someone"}
    assert alert_status.patch(war_room=war_room) == {"warRoom": {"state": "closed", "closedAt": STAMP}}


@pytest.mark.parametrize(
    "record",
    [
        {"key": "k", "state": "exploded"},
        {"key": "k", "state": "firing", "severity": "urgent"},
        {"key": "k", "deliveries": [{"receiver": "ops", "event": "firing"}] * 51},
    ],
)
def test_a_status_the_model_refuses_is_never_sent(record):
    with pytest.raises(ValidationError):
        alert_status.patch(alerts=[record])


def test_a_long_acknowledged_by_is_cut_to_what_the_status_holds():
    acks = state.parse_acks({state.ACK_ANNOTATION: "k", state.ACK_BY_ANNOTATION: "x" * 1000})
    assert acks == {"k": "x" * 256}
    record = full_record()
    record.acknowledged_by = acks["k"]
    assert record.to_dict()["acknowledgedBy"] == "x" * 256


def test_delivery_outcomes_are_recorded_through_the_model():
    (written,) = state.apply_results(
        [full_record().to_dict()],
        [state.DeliveryResult("ops", "reminder", ("probe-checkout-1a2b3c4d",), False, 2, "HTTP 503", AT)],
    )
    assert written["deliveries"][-1] == {
        "receiver": "ops",
        "event": "reminder",
        "at": STAMP,
        "ok": False,
        "attempts": 2,
        "error": "HTTP 503",
    }
    assert written["outstanding"][0]["tries"] == 2


def max_length(model, field: str) -> int:
    return next(m.max_length for m in model.model_fields[field].metadata if hasattr(m, "max_length"))


def test_what_the_state_machine_cuts_fits_what_the_model_holds():
    # else a long condition message or many retries would make every status write fail
    assert state.SUBJECT_MAX <= max_length(api.alertrule.Alert, "subject")
    assert state.MESSAGE_MAX <= max_length(api.alertrule.Alert, "message")
    assert state.DELIVERIES_KEEP <= max_length(api.alertrule.Alert, "deliveries")
    assert state.RESOLVED_KEEP < max_length(api.alertrule.AlertRuleStatus, "alerts")
    record = full_record()
    record.subject, record.message = "s" * state.SUBJECT_MAX, "m" * 5000
    record.deliveries = record.deliveries * state.DELIVERIES_KEEP
    assert alert_status.patch(alerts=[record.to_dict()])["alerts"][0]["message"].endswith("…")


def war_room_rule() -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "AlertRule",
        "metadata": {"name": "war-room", "namespace": "shop"},
        "spec": {
            "severity": "critical",
            "selector": {"kinds": ["ApiProduct"]},
            "receivers": [{"name": "bridge", "type": "webhook", "url": "http://127.0.0.1:9/bridge"}],
            "traffic": {"signal": "failedRequests", "above": 40, "over": "15s", "warRoom": True},
        },
    }


async def test_the_war_room_is_written_through_the_model_with_what_opened_it(monkeypatch):
    from tests.unit.kubeapi import KubeAPI, runtime

    from pitwall import durations
    from pitwall.alerts import traffic
    from pitwall.alerts.rules import parse_rule

    monkeypatch.setattr(durations, "now", lambda: AT)
    kube_api = KubeAPI()
    kube_api.put(war_room_rule())
    rt = runtime(kube_api)
    rule = parse_rule("shop", "war-room", war_room_rule()["spec"])
    firing = {
        "key": "k",
        "object": {"kind": "ApiProduct", "name": "cart"},
        "state": "firing",
        "subject": "cart",
    }
    result = state.Evaluation([firing], [], [], (), (), 1, None)
    observed = [state.Observation("ApiProduct", "cart", "True", value=75.0)]
    await traffic.war_room(rt, kube_api.get("AlertRule", "shop", "war-room"), rule, result, observed)
    room = kube_api.get("AlertRule", "shop", "war-room")["status"]["warRoom"]
    assert {k: v for k, v in room.items() if k != "message"} == {
        "state": "open",
        "openedAt": STAMP,
        "products": ["cart"],
        "failedRequests": 75.0,
        "threshold": 40.0,
    }
    assert room["message"].startswith("war room opened: failed requests of cart passed 40 over 15s")

    calm = state.Evaluation([{**firing, "state": "resolved"}], [], [], (), (), 0, None)
    await traffic.war_room(rt, kube_api.get("AlertRule", "shop", "war-room"), rule, calm, [])
    room = kube_api.get("AlertRule", "shop", "war-room")["status"]["warRoom"]
    assert (room["state"], room["closedAt"], room["failedRequests"]) == ("closed", STAMP, 75.0)
