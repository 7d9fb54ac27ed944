"""The work queue: deduplication, re-runs of keys queued while active, and fairness to the loop."""

from __future__ import annotations

import asyncio
import json

from pitwall.controller import Store, WorkQueue


async def test_a_burst_of_keys_does_not_hold_the_event_loop():
    # A resync queues every key at once, and most reconciles finish without any I/O. The probes
    # share the loop with the queue's workers, so they must get turns during the burst.
    done: list[tuple[str, str]] = []
    ticks_at: list[int] = []

    async def reconcile(namespace: str, name: str) -> None:
        done.append((namespace, name))  # no await: like a reconcile that changes nothing

    queue = WorkQueue("Probe", reconcile, workers=2)
    for index in range(2000):
        queue.add(("ns", f"p{index}"))

    async def ticker() -> None:
        while len(done) < 2000:
            ticks_at.append(len(done))
            await asyncio.sleep(0)

    queue.start()
    try:
        await asyncio.wait_for(ticker(), 10)
    finally:
        await queue.stop()
    assert len(done) == 2000
    assert len(ticks_at) > 100  # the other task ran all through the burst
    assert max(b - a for a, b in zip(ticks_at, ticks_at[1:], strict=False)) <= 8


async def test_keys_are_deduplicated_and_a_key_queued_while_active_runs_again():
    runs: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def reconcile(_namespace: str, name: str) -> None:
        runs.append(name)
        if name == "slow" and runs.count("slow") == 1:
            started.set()
            await release.wait()

    queue = WorkQueue("Probe", reconcile, workers=1)
    queue.add(("ns", "slow"))
    queue.add(("ns", "slow"))  # duplicate while queued: one run
    queue.start()
    try:
        await asyncio.wait_for(started.wait(), 5)
        queue.add(("ns", "slow"))  # changed while being reconciled: runs once more after
        queue.add(("ns", "slow"))
        release.set()
        for _ in range(200):
            if runs.count("slow") == 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
    finally:
        await queue.stop()
    assert runs == ["slow", "slow"]


def test_store_keeps_the_latest_object_and_forgets_deleted_ones():
    store = Store("Probe")
    store.update("ADDED", {"metadata": {"namespace": "ns", "name": "a", "resourceVersion": "1"}})
    store.update("MODIFIED", {"metadata": {"namespace": "ns", "name": "a", "resourceVersion": "2"}})
    store.prime({"metadata": {"namespace": "ns", "name": "a", "resourceVersion": "1"}})  # older listing

    assert store.get("ns", "a")["metadata"]["resourceVersion"] == "2"
    store.update("DELETED", {"metadata": {"namespace": "ns", "name": "a"}})
    assert store.get("ns", "a") is None and len(store) == 0


def test_store_does_not_keep_managed_fields():
    store = Store("Probe")
    event = {
        "metadata": {
            "namespace": "ns",
            "name": "a",
            "labels": {"x": "y"},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        }
    }
    store.update("ADDED", event)

    assert store.get("ns", "a")["metadata"] == {"namespace": "ns", "name": "a", "labels": {"x": "y"}}
    assert "managedFields" in event["metadata"]  # the caller's object is left as it was


def test_store_shares_keys_and_short_strings_between_objects():
    """Objects decoded from separate watch events come with their own copies of every key and
    value; the cache keeps one of each (the same content, a fraction of the memory)."""
    store = Store("Probe")
    text = (
        '{"metadata": {"namespace": "ns", "name": "%s"}, "status": {"state": "Up", '
        '"conditions": [{"type": "Ready", "status": "True", "message": "%s"}]}}'
    )
    long_message = "x" * 200
    first, second = (json.loads(text % (name, long_message)) for name in ("a", "b"))
    store.update("ADDED", first)
    store.update("ADDED", second)

    a, b = store.get("ns", "a"), store.get("ns", "b")
    assert a["status"]["conditions"] == first["status"]["conditions"]  # same content
    key_a = next(k for k in a["status"]["conditions"][0] if k == "status")
    key_b = next(k for k in b["status"]["conditions"][0] if k == "status")
    assert key_a is key_b  # one key object
    assert a["status"]["state"] is b["status"]["state"]  # one "Up"
    assert a["status"]["conditions"][0]["type"] is b["status"]["conditions"][0]["type"]
    assert a["status"]["conditions"][0]["message"] == long_message  # long strings kept as they are
