"""Pitwall's own finalizer, for the kinds whose deletion still has work to do.

kopf adds its finalizer only when a deletion handler is registered, and Pitwall registers
watch-event handlers alone (``handlers``), so the reconcilers manage this one themselves: added
on the first reconcile, removed once the work the deletion owes is durably done (a window's
cancellation notice delivered and its page switched back; every alert an object owns resolved
and recorded in an AlertRule's outbox). A receiver that stays down must never hold a namespace
deletion for ever: after ``grace`` seconds the finalizer goes anyway and the loss is recorded in
a Warning Event (:func:`overdue`).
"""

from __future__ import annotations

import os
from datetime import datetime

from . import durations
from .errors import NotFound

FINALIZER = "pitwall.dev/cleanup"
DEFAULT_GRACE = 120.0


def grace() -> float:
    """Seconds a deletion waits for its notifications (``PITWALL_FINALIZER_GRACE``, default 120)."""
    try:
        return max(0.0, float(os.environ.get("PITWALL_FINALIZER_GRACE", DEFAULT_GRACE)))
    except ValueError:
        return DEFAULT_GRACE


def deleting(obj: dict) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def held(obj: dict) -> bool:
    return FINALIZER in (obj["metadata"].get("finalizers") or [])


def waited(obj: dict, now: datetime | None = None) -> float:
    """Seconds since the deletion was asked for (0 when it was not)."""
    stamp = obj["metadata"].get("deletionTimestamp")
    if not stamp:
        return 0.0
    return ((now or durations.now()) - durations.parse_time(stamp)).total_seconds()


def overdue(obj: dict, now: datetime | None = None) -> bool:
    return deleting(obj) and waited(obj, now) >= grace()


async def ensure(rt, obj: dict) -> None:
    """Add the finalizer to a live object (a no-op when present or already being deleted)."""
    if deleting(obj) or held(obj):
        return
    meta = obj["metadata"]
    current = list(meta.get("finalizers") or [])
    # test-and-set: a concurrent change to the list (another controller's finalizer) fails the
    # patch instead of being overwritten; the work queue retries with the fresh list.
    patch = (
        [
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "replace", "path": "/metadata/finalizers", "value": [*current, FINALIZER]},
        ]
        if "finalizers" in meta
        else [{"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}]
    )
    result = await rt.kube.patch(obj["kind"], meta["namespace"], meta["name"], patch, patch_type="json")
    meta["finalizers"] = (result.get("metadata") or {}).get("finalizers") or [*current, FINALIZER]


async def release(rt, obj: dict) -> None:
    """Remove the finalizer (the object then goes, if nothing else holds it)."""
    meta = obj["metadata"]
    current = list(meta.get("finalizers") or [])
    if FINALIZER not in current:
        return
    patch = [
        {"op": "test", "path": "/metadata/finalizers", "value": current},
        {"op": "replace", "path": "/metadata/finalizers", "value": [f for f in current if f != FINALIZER]},
    ]
    try:
        await rt.kube.patch(obj["kind"], meta["namespace"], meta["name"], patch, patch_type="json")
    except NotFound:
        return


def open_alerts(rt, namespace: str, kind: str, name: str) -> list[str]:
    """Keys of the alerts on ``kind/name`` that some AlertRule has not resolved yet.

    Read from the rules' status as Pitwall last wrote it: once a resolve is recorded there, it
    is owed durably (the rule's outbox delivers it, also after a restart and after this object
    is gone), so the object's own deletion need not wait for the receivers.
    """
    keys = []
    for rule in rt.stores["AlertRule"].list(namespace):
        for record in rt.status_of(rule).get("alerts") or []:
            obj = record.get("object") or {}
            if obj.get("kind") == kind and obj.get("name") == name and record.get("state") != "resolved":
                keys.append(record.get("key", ""))
    return keys


async def finish_owned(rt, obj: dict) -> float | None:
    """A deleted Probe, Backend or ApiProduct: release it once every alert on it is resolved.

    Returns the requeue delay while waiting (the AlertRules are enqueued by the same watch event
    that brought the deletion, see ``wiring``)."""
    if not held(obj):
        return None
    meta = obj["metadata"]
    waiting = open_alerts(rt, meta["namespace"], obj["kind"], meta["name"])
    if waiting and not overdue(obj):
        for rule in rt.stores["AlertRule"].list(meta["namespace"]):
            rt.enqueue("AlertRule", meta["namespace"], rule["metadata"]["name"])
        return 1.0
    if waiting:
        await rt.event(
            obj,
            "CleanupAbandoned",
            f"deleted after {grace():.0f}s with alerts not yet resolved: " + ", ".join(waiting)[:900],
            warning=True,
        )
    await release(rt, obj)
    return None
