"""The monitor's status writes: a new probe publishes its first run; a probe resumed after an
operator restart carries on from its status and does not write again on its first run."""

from __future__ import annotations

import asyncio

from pitwall.probes.monitor import Job, Monitor
from pitwall.probes.spec import parse_check
from pitwall.runtime import Runtime, Settings

from .conftest import wait_until


def job(monitor: Monitor, name: str, url: str, published: list) -> Job:
    async def publish(job: Job, result, transition: bool) -> None:
        published.append((name, job.health.state, transition))

    check = parse_check({"target": {"url": url + "/isUp"}, "interval": "10s", "timeout": "1s"})
    return Job(
        key=("Probe", "shop", name),
        generation=1,
        check=check,
        resolve=lambda: None,
        imposed=lambda: None,
        publish=publish,
    )


async def test_new_probe_writes_its_first_run_and_a_resumed_one_waits_its_turn(demo):
    monitor = Monitor(Runtime(kube=None, settings=Settings()))
    published: list = []
    resumed_status = {
        "state": "Up",
        "consecutiveSuccesses": 41,
        "consecutiveFailures": 0,
        "observedGeneration": 1,
        "lastRun": {"at": "2026-11-24T10:00:00Z", "result": "Success"},
    }
    monitor.upsert(job(monitor, "fresh", demo.url, published), {})
    monitor.upsert(job(monitor, "resumed", demo.url, published), resumed_status)
    try:
        await monitor.run(("Probe", "shop", "fresh"))
        await monitor.run(("Probe", "shop", "resumed"))
        await monitor.writes_done()  # writes run beside the checks
        assert published == [("fresh", "Up", True)]  # the resumed probe did not write yet
        assert monitor.jobs[("Probe", "shop", "resumed")].health.consecutive_successes == 42
    finally:
        await monitor.stop()
    assert published[1:] == [("resumed", "Up", False)]  # its numbers are flushed on a graceful stop


async def test_a_slow_status_write_does_not_hold_up_the_next_run_and_the_newest_numbers_win(demo):
    monitor = Monitor(Runtime(kube=None, settings=Settings()))
    release = asyncio.Event()
    written: list[int] = []

    async def slow_publish(job: Job, result, transition: bool) -> None:
        async with asyncio.timeout(5):  # an API server taking its time
            await release.wait()
        written.append(job.health.consecutive_successes)

    probe = job(monitor, "p", demo.url, [])
    probe.publish = slow_publish
    monitor.upsert(probe, {})
    key = ("Probe", "shop", "p")
    try:
        await asyncio.wait_for(monitor.run(key), 5)  # its write hangs, the run is done
        monitor.jobs[key].last_written = None  # make the next run want a write too
        await asyncio.wait_for(monitor.run(key), 5)
        await asyncio.wait_for(monitor.run(key), 5)
        assert written == []
        release.set()
        await monitor.writes_done()
        assert written == [3, 3]  # the one in flight, then one more with the newest counts
    finally:
        await monitor.stop()


async def test_a_resumed_probe_that_missed_its_slot_runs_at_once_the_others_keep_their_grid(demo):
    """A probe taken over from a dead replica (or resumed after an outage longer than its
    interval) is checked as soon as it is scheduled; one whose last run is recent waits for its
    slot. Neither writes its status at once: they resume from the status they found."""
    from datetime import timedelta

    from pitwall import durations

    monitor = Monitor(Runtime(kube=None, settings=Settings()))
    published: list = []

    def hourly(name: str) -> Job:
        made = job(monitor, name, demo.url, published)
        made.check = parse_check({"target": {"url": demo.url + "/isUp"}, "interval": "1h", "timeout": "1s"})
        return made

    def status(ago: timedelta) -> dict:
        at = durations.rfc3339(durations.now() - ago)
        return {"state": "Up", "observedGeneration": 1, "lastRun": {"at": at, "result": "Success"}}

    monitor.upsert(hourly("taken-over"), status(timedelta(hours=2)))
    monitor.upsert(hourly("on-its-grid"), status(timedelta(seconds=5)))
    await monitor.start()
    try:
        await wait_until(
            lambda: monitor.jobs[("Probe", "shop", "taken-over")].last_result is not None, limit=5
        )
        assert monitor.jobs[("Probe", "shop", "taken-over")].last_result.ok
        # its next slot is within the hour, at a time fixed by its key: not within these seconds
        assert monitor.jobs[("Probe", "shop", "on-its-grid")].last_result is None
        assert published == []
    finally:
        await monitor.scheduler.stop()
        await monitor.writes_done()


def test_steady_writes_stay_within_the_operators_budget():
    # Each probe writes its numbers once a minute, or less often when the probes together would
    # exceed --status-writes-per-second (default 10): at 5,000 probes every 500 s.
    def interval(probes: int, **settings) -> float:
        rt = Runtime(kube=None, settings=Settings(**settings))
        for i in range(probes):
            rt.stores["Probe"].update("ADDED", {"metadata": {"namespace": "shop", "name": f"p{i}"}})
        return Monitor(rt).steady_interval()

    assert interval(100) == 60.0
    assert interval(5000) == 500.0
    assert interval(5000, status_writes_per_second=20.0) == 250.0


async def test_a_run_that_ends_after_its_probe_was_reconciled_counts_on_the_new_job(serve):
    # Every watch event re-upserts the probe's job, handing the new one the old one's health and
    # numbers as they are then. A check in flight meanwhile must count on the job in place when
    # it ends: counted on the replaced one, the run was in the history but not in
    # consecutiveSuccesses (found by test_history_stays_whole_when_writes_send_only_what_changed).
    from aiohttp import web

    arrived, answer = asyncio.Event(), asyncio.Event()

    async def is_up(request):
        arrived.set()
        await answer.wait()
        return web.json_response({"status": "UP"})

    app = web.Application()
    app.router.add_get("/isUp", is_up)
    url = await serve(app)
    monitor = Monitor(Runtime(kube=None, settings=Settings()))
    published: list = []
    key = ("Probe", "shop", "p")
    monitor.upsert(job(monitor, "p", url, published), {})
    try:
        run = asyncio.create_task(monitor.run(key))
        await asyncio.wait_for(arrived.wait(), 5)
        monitor.upsert(job(monitor, "p", url, published), {})  # a reconcile, same generation
        answer.set()
        assert (await asyncio.wait_for(run, 5)).ok
        current = monitor.jobs[key]
        assert current.health.consecutive_successes == 1
        assert current.last_result is not None and current.last_result.ok
        assert sum(current.stats.to_status(current.last_result.at)["availability"].values()) > 0
    finally:
        await monitor.stop()
