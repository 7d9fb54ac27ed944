"""What the overloaded probe engine tells people: which object the Events name, the Pod
condition, the /healthz details (probes/overload.py; the real thing in
tests/integration/test_overload.py)."""

from __future__ import annotations

from pitwall.probes.overload import OVERLOADED, RECOVERED, event, health, involved_object, pod_condition
from pitwall.probes.scheduler import Overload

ACTIVE = Overload(True, 42.0, 3.25, 17, 100.0, 12)
ENDED = Overload(False, 42.0, 3.25, 0, 100.0)
NEVER = Overload(False, 0.0, 0.0, 0, 0.0)


def test_events_name_the_pod_else_the_leader_lease_else_nothing():
    pod = involved_object(
        {"POD_NAME": "pitwall-7c9-x", "POD_NAMESPACE": "pitwall-system", "POD_UID": "u1"}, "x", True
    )
    assert (pod["kind"], pod["metadata"]) == (
        "Pod",
        {"name": "pitwall-7c9-x", "namespace": "pitwall-system", "uid": "u1"},
    )
    lease = involved_object({}, "pitwall-system", True)
    assert (lease["kind"], lease["metadata"]["name"], lease["metadata"]["namespace"]) == (
        "Lease",
        "pitwall-operator",
        "pitwall-system",
    )
    assert involved_object({}, "pitwall-system", False) is None


def test_an_overload_is_a_warning_and_says_how_late_and_what_to_do():
    reason, message, warning = event(ACTIVE)
    assert (reason, warning) == (OVERLOADED, True)
    assert "3.2s late" in message and "17 waiting" in message and "--probe-shards" in message
    assert "12 runs in flight at most" in message
    assert "never fails a check" in message
    reason, message, warning = event(ENDED)
    assert (reason, warning) == (RECOVERED, False)
    assert "on time again after 42s" in message


def test_the_pod_condition_is_true_while_on_time():
    assert pod_condition(NEVER, "t")["status"] == "True"
    assert pod_condition(NEVER, "t")["reason"] == "OnTime"
    condition = pod_condition(ACTIVE, "2026-11-29T18:00:00Z")
    assert condition["type"] == "pitwall.dev/ProbeEngine"
    assert (condition["status"], condition["reason"]) == ("False", "Overloaded")
    assert condition["lastTransitionTime"] == "2026-11-29T18:00:00Z"


def test_healthz_details():
    assert health(NEVER) == {"overloaded": False, "overloadedSecondsTotal": 0.0, "runsInFlightLimit": 0}
    details = health(ACTIVE)
    assert details["overloaded"] is True and details["waiting"] == 17 and details["worstLagSeconds"] == 3.25
    assert details["since"].endswith("Z")
