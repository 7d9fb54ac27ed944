"""Supervised tasks: a crash is logged, counted and fails /healthz; one object's failure is its own."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from pitwall import metrics
from pitwall.controller import WorkQueue
from pitwall.supervise import spawn


def crashes(task: str) -> float:
    return REGISTRY.get_sample_value("pitwall_task_crashes_total", {"task": task}) or 0.0


@pytest.fixture(autouse=True)
def healthy():
    metrics.HEALTH.failed.clear()
    metrics.HEALTH.beat()
    yield
    metrics.HEALTH.failed.clear()


async def healthz() -> tuple[int, dict]:
    async with TestClient(TestServer(metrics.app())) as client:
        response = await client.get("/healthz")
        return response.status, await response.json()


async def test_a_long_lived_task_that_crashes_fails_healthz_and_is_counted(caplog):
    before = crashes("scheduler-test")
    assert (await healthz())[0] == 200

    async def loop():
        await asyncio.sleep(0)
        raise ZeroDivisionError("float division by zero")

    task = spawn(loop(), name="probe scheduler", task="scheduler-test")
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)

    assert crashes("scheduler-test") == before + 1
    status, body = await healthz()
    assert status == 503
    assert body == {"status": "failed", "tasks": {"scheduler-test": "crashed: ZeroDivisionError"}}
    assert "ZeroDivisionError" in caplog.text and "probe scheduler" in caplog.text


async def test_a_long_lived_task_that_returns_is_a_crash_too():
    async def loop():
        return None

    await spawn(loop(), name="heartbeat-test")
    await asyncio.sleep(0)
    assert metrics.HEALTH.failed == {"heartbeat-test": "ended"}


async def test_cancelling_is_not_a_crash():
    task = spawn(asyncio.sleep(10), name="cancelled-test")
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert crashes("cancelled-test") == 0 and not metrics.HEALTH.failed


async def test_a_short_lived_task_failing_is_counted_but_health_stays_ok():
    async def run():
        raise RuntimeError("one probe's bad luck")

    before = crashes("probe-run-test")
    await asyncio.gather(
        spawn(run(), name="probe ns/x", task="probe-run-test", long_lived=False), return_exceptions=True
    )
    await asyncio.sleep(0)
    assert crashes("probe-run-test") == before + 1
    assert (await healthz())[0] == 200


class Unprintable(Exception):
    def __str__(self) -> str:
        raise ValueError("cannot even say what went wrong")


async def test_a_worker_survives_any_reconcile_failure_and_keeps_serving_other_keys():
    done: list[str] = []

    async def reconcile(namespace: str, name: str) -> None:
        if name == "recursion":
            raise RecursionError("maximum recursion depth exceeded")
        if name == "unprintable":
            raise Unprintable()
        done.append(name)

    queue = WorkQueue("Test", reconcile, workers=1, max_backoff=60)
    queue.start()
    for name in ("recursion", "unprintable", "healthy"):
        queue.add(("team-a" if name != "healthy" else "team-b", name))
    for _ in range(50):
        if done:
            break
        await asyncio.sleep(0.01)
    await queue.stop()
    assert done == ["healthy"]
    assert not metrics.HEALTH.failed
