"""Who a watch event wakes (``wiring.route``) and what kopf is asked to do per event (``handlers``).

A Probe's steady status write (its counts, numbers and last run, about once a minute) comes back
as a watch event; at 5,000 probes that is 20 a second, and each woke the probe's reconcile,
every AlertRule of its namespace, its product and an incident pass (issue 18). Only a change
someone reacts to may wake them.
"""

from __future__ import annotations

import asyncio
import copy

import kopf

from pitwall import handlers, wiring
from pitwall.runtime import Runtime, Settings


class _Incidents:
    def __init__(self) -> None:
        self.pokes = 0

    def poke(self) -> None:
        self.pokes += 1


def _runtime() -> tuple[Runtime, dict[str, list[str]], _Incidents]:
    rt = Runtime(kube=None, settings=Settings())  # type: ignore[arg-type]
    woken: dict[str, list[str]] = {}
    for kind in ("Probe", "AlertRule", "ApiProduct", "Backend"):

        async def reconcile(namespace: str, name: str, kind: str = kind) -> None:
            woken.setdefault(kind, []).append(name)

        rt.register(kind, reconcile, workers=1)
    incidents = _Incidents()
    rt.incidents = incidents  # type: ignore[assignment]
    for obj in (
        {"kind": "AlertRule", "metadata": {"namespace": "shop", "name": "pages"}, "spec": {}},
        {"kind": "ApiProduct", "metadata": {"namespace": "shop", "name": "orders"}, "spec": {}},
        {
            "kind": "Backend",
            "metadata": {"namespace": "shop", "name": "erp"},
            "spec": {"probeRef": {"name": "orders-v1"}},
        },
        {"kind": "Backend", "metadata": {"namespace": "shop", "name": "crm"}, "spec": {}},
    ):
        rt.stores[obj["kind"]].update("ADDED", obj)
    return rt, woken, incidents


PROBE = {
    "kind": "Probe",
    "metadata": {
        "namespace": "shop",
        "name": "orders-v1",
        "uid": "u1",
        "generation": 3,
        "resourceVersion": "100",
        "labels": {"team": "orders"},
    },
    "spec": {"interval": "10s", "target": {"apiProduct": {"name": "orders", "version": "v1"}}},
    "status": {
        "state": "Up",
        "observedGeneration": 3,
        "consecutiveSuccesses": 40,
        "consecutiveFailures": 0,
        "lastRun": {"at": "2026-11-30T00:00:00Z", "ok": True},
        "availability": {"last24h": 100.0},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Up", "message": "the last runs passed"}
        ],
    },
}


async def _route(rt: Runtime, event_type: str | None, obj: dict) -> None:
    meta = obj["metadata"]
    store = rt.stores["Probe"]
    previous = store.get(meta["namespace"], meta["name"])
    store.update(event_type, obj)
    wiring.route(rt, "Probe", event_type, obj, previous)
    rt.start()
    for _ in range(50):  # let the workers take what was queued
        await asyncio.sleep(0)


async def _known(rt: Runtime, woken: dict[str, list[str]], incidents: _Incidents) -> None:
    """The probe is in the cache, and what its arrival woke is forgotten."""
    await _route(rt, "ADDED", copy.deepcopy(PROBE))
    woken.clear()
    incidents.pokes = 0


def _next(**status) -> dict:
    obj = copy.deepcopy(PROBE)
    obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)
    obj["status"].update(status)
    return obj


async def test_a_steady_status_echo_wakes_only_the_backend_that_mirrors_the_probe():
    rt, woken, incidents = _runtime()
    try:
        await _known(rt, woken, incidents)
        await _route(
            rt,
            "MODIFIED",
            _next(
                consecutiveSuccesses=46,
                lastRun={"at": "2026-11-30T00:01:00Z", "ok": True},
                availability={"last24h": 99.9},
                history={"days": "x"},
            ),
        )
        assert woken == {"Backend": ["erp"]}
        assert incidents.pokes == 0
        # The cache has the new numbers all the same (the status page and the CLI read them).
        assert rt.stores["Probe"].get("shop", "orders-v1")["status"]["consecutiveSuccesses"] == 46
    finally:
        await rt.stop()


async def test_a_relisting_of_an_unchanged_probe_wakes_no_reconcile_but_the_mirror():
    rt, woken, incidents = _runtime()
    try:
        await _known(rt, woken, incidents)
        await _route(rt, None, copy.deepcopy(PROBE))
        assert woken == {"Backend": ["erp"]}
        assert incidents.pokes == 0
    finally:
        await rt.stop()


async def test_a_verdict_a_spec_or_a_label_change_wakes_everyone_concerned():
    changes = [
        _next(state="Down"),
        _next(conditions=[{"type": "Ready", "status": "False", "reason": "Down", "message": "step 1: 503"}]),
        _next(lastFailure={"at": "2026-11-30T00:01:00Z", "reason": "503"}),
        _next(observedGeneration=4),
    ]
    spec = _next()
    spec["spec"]["interval"] = "30s"
    spec["metadata"]["generation"] = 4
    labels = _next()
    labels["metadata"]["labels"] = {"team": "payments"}
    deleting = _next()
    deleting["metadata"]["deletionTimestamp"] = "2026-11-30T00:02:00Z"
    for changed in [*changes, spec, labels, deleting]:
        rt, woken, incidents = _runtime()
        try:
            await _known(rt, woken, incidents)
            await _route(rt, "MODIFIED", changed)
            assert woken == {
                "Probe": ["orders-v1"],
                "ApiProduct": ["orders"],
                "AlertRule": ["pages"],
                "Backend": ["erp"],
            }, changed
            assert incidents.pokes == 1
        finally:
            await rt.stop()


async def test_a_new_or_deleted_probe_always_wakes_everyone_concerned():
    for event_type in ("ADDED", "DELETED"):
        rt, woken, incidents = _runtime()
        try:
            await _known(rt, woken, incidents)
            await _route(rt, event_type, copy.deepcopy(PROBE))
            assert set(woken) == {"Probe", "ApiProduct", "AlertRule", "Backend"}
            assert incidents.pokes == 1
        finally:
            await rt.stop()


def test_pitwall_registers_watch_event_handlers_only():
    # handlers.NoDiffBase skips kopf's per-event deep copy for change detection: that is only
    # right while no handler needs it (on.create/update/delete/field/resume, timers, daemons).
    registry = kopf.get_default_registry()
    assert handlers.NoDiffBase  # imported above: its module registered its handlers
    assert registry._watching.get_all_handlers()
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()
