"""The scheduler: exact timetable arithmetic on made-up times, then the asyncio loop on real time.

The loop tests use 50 ms intervals and assert counts and order, never how long something took.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest

from pitwall.probes.scheduler import CALM, Scheduler, Timetable, phase

from .conftest import wait_until


def test_phase_is_stable_and_spreads_keys_over_the_interval():
    offsets = [phase(("ns", f"probe-{i}"), 10.0) for i in range(2000)]

    assert offsets == [phase(("ns", f"probe-{i}"), 10.0) for i in range(2000)]
    assert all(0 <= o < 10 for o in offsets)
    per_second = Counter(int(o) for o in offsets)
    assert len(per_second) == 10 and min(per_second.values()) > 150  # about 200 each


def test_first_runs_come_in_phase_order():
    table = Timetable()
    keys = [f"p{i}" for i in range(20)]
    for key in keys:
        table.upsert(key, 10.0, now=1000.0)

    due = table.pop_due(1010.0)

    assert sorted(k for k, _ in due) == sorted(keys)  # each once within one interval
    assert [d for _, d in due] == sorted(d for _, d in due)
    assert all(1000.0 < d <= 1010.0 for _, d in due)


def test_no_drift_over_many_late_runs():
    table = Timetable()
    table.upsert("p", 10.0, now=0.0)
    first = table.next_due()

    dues = []
    for _ in range(10_000):  # about 28 hours of 10 s runs, each popped 0.3 s late
        [(key, due)] = table.pop_due(table.next_due() + 0.3)
        dues.append(due)

    assert dues[-1] == pytest.approx(first + 9_999 * 10.0, abs=1e-6)
    assert all(d == pytest.approx(first + i * 10.0, abs=1e-6) for i, d in enumerate(dues))


def test_missed_slots_are_skipped_not_bunched():
    table = Timetable()
    table.upsert("p", 10.0, now=0.0)
    first = table.next_due()

    late = first + 55.0  # five and a half intervals late
    assert [k for k, _ in table.pop_due(late)] == ["p"]
    assert table.pop_due(late) == []
    assert table.next_due() == pytest.approx(first + 60.0)


def test_upsert_reschedules_only_on_change():
    table = Timetable()
    table.upsert("p", 10.0, now=0.0)
    before = table.next_due()

    table.upsert("p", 10.0, now=3.0)  # same interval: keep the slot
    assert table.next_due() == before

    table.upsert("p", 10.0, now=3.0, run_now=True)  # a spec change: run at once
    assert table.pop_due(3.0) == [("p", 3.0)]

    table.upsert("p", 60.0, now=4.0)  # a new interval takes effect at once, on its own grid
    assert 4.0 < table.next_due() <= 64.0
    assert table.next_due() == pytest.approx(phase("p", 60.0) + 60.0 * (table.next_due() // 60.0))


def test_remove_and_pause():
    table = Timetable()
    table.upsert("gone", 1.0, now=0.0)
    table.upsert("paused", 1.0, now=0.0)
    table.remove("gone")
    table.set_paused("paused", True, now=0.0)

    assert table.pop_due(100.0) == [] and table.next_due() is None

    table.set_paused("paused", False, now=100.0)
    assert [k for k, _ in table.pop_due(101.0)] == ["paused"]


class Recorder:
    def __init__(self):
        self.runs = Counter()
        self.running = 0
        self.peak = 0

    def job(self, key, *, block: asyncio.Event | None = None):
        async def run():
            self.runs[key] += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                if block is not None:
                    await block.wait()
            finally:
                self.running -= 1

        return run


@pytest.fixture
async def scheduler():
    lags = []
    s = Scheduler(on_lag=lags.append)
    s.lags = lags
    s.start()
    yield s
    await s.stop()


async def test_runs_every_probe_repeatedly(scheduler):
    rec = Recorder()
    for key in ("a", "b", "c"):
        scheduler.upsert(key, 0.05, rec.job(key), timeout=1.0)

    await wait_until(lambda: all(rec.runs[k] >= 3 for k in "abc"))

    assert len(scheduler.lags) >= 9 and all(lag >= 0 for lag in scheduler.lags)


async def test_hung_run_is_cut_and_blocks_no_one(scheduler):
    rec = Recorder()
    cut = []

    async def hang():
        rec.runs["hung"] += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cut.append(True)
            raise

    scheduler.upsert("hung", 0.05, hang, timeout=0.15, run_now=True)
    scheduler.upsert("fast", 0.05, rec.job("fast"), timeout=1.0)

    await wait_until(lambda: cut and rec.runs["hung"] >= 2 and rec.runs["fast"] >= 5)

    assert scheduler.overruns >= 1  # slots that came while it hung were skipped, not stacked


async def test_spec_change_reschedules_at_once(scheduler):
    rec = Recorder()
    scheduler.upsert("p", 3600.0, rec.job("p"), timeout=1.0)
    await asyncio.sleep(0.05)
    assert rec.runs["p"] == 0  # an hourly probe waits for its slot

    scheduler.upsert("p", 0.05, rec.job("p"), timeout=1.0, run_now=True)

    await wait_until(lambda: rec.runs["p"] >= 3)


async def test_removed_and_paused_probes_stop(scheduler):
    rec = Recorder()
    for key in ("keep", "remove", "pause"):
        scheduler.upsert(key, 0.05, rec.job(key), timeout=1.0, run_now=True)
    await wait_until(lambda: all(rec.runs[k] >= 1 for k in ("keep", "remove", "pause")))

    scheduler.remove("remove")
    scheduler.set_paused("pause", True)
    frozen = dict(rec.runs)
    await wait_until(lambda: rec.runs["keep"] >= frozen["keep"] + 4)

    assert rec.runs["remove"] == frozen["remove"]
    assert rec.runs["pause"] == frozen["pause"]

    scheduler.set_paused("pause", False)
    await wait_until(lambda: rec.runs["pause"] > frozen["pause"])


async def test_concurrency_is_limited():
    rec = Recorder()
    release = asyncio.Event()
    s = Scheduler(concurrency=2)
    s.start()
    try:
        for i in range(5):
            s.upsert(i, 3600.0, rec.job(i, block=release), timeout=5.0, run_now=True)
        await wait_until(lambda: rec.running == 2)
        await asyncio.sleep(0.05)  # the others are queued, not running
        assert rec.running == 2 and sum(rec.runs.values()) == 2

        release.set()
        await wait_until(lambda: sum(rec.runs.values()) == 5)
        assert rec.peak == 2
    finally:
        await s.stop()


async def test_a_failing_run_does_not_stop_the_loop(scheduler):
    rec = Recorder()

    async def boom():
        rec.runs["boom"] += 1
        raise RuntimeError("target exploded")

    scheduler.upsert("boom", 0.05, boom, timeout=1.0, run_now=True)

    await wait_until(lambda: rec.runs["boom"] >= 3)


@pytest.mark.parametrize("interval", [0.0, -1.0, float("nan"), float("inf")])
def test_an_interval_that_is_not_a_positive_number_is_refused(interval):
    table = Timetable()

    with pytest.raises(ValueError, match="interval must be a positive number"):
        table.upsert("zero", interval, now=0.0)

    assert table.next_due() is None


async def test_a_zero_interval_costs_the_other_probes_nothing():
    """Issue 14: ``interval: 0s`` ended the loop with ZeroDivisionError and every probe stopped."""
    errors = []
    s = Scheduler(on_error=lambda key, exc: errors.append((key, type(exc).__name__)))
    s.start()
    try:
        rec = Recorder()
        s.upsert("healthy", 0.05, rec.job("healthy"), timeout=1.0, run_now=True)
        with pytest.raises(ValueError):
            s.upsert("zero", 0.0, rec.job("zero"), timeout=1.0, run_now=True)

        await wait_until(lambda: rec.runs["healthy"] >= 3)
        assert s.alive
        assert rec.runs["zero"] == 0
    finally:
        await s.stop()


async def test_errors_of_runs_and_of_the_loop_are_reported_and_the_loop_goes_on(monkeypatch):
    errors = []
    s = Scheduler(on_error=lambda key, exc: errors.append((key, type(exc).__name__)))
    rec = Recorder()

    async def boom():
        raise RuntimeError("target exploded")

    real_pop_due, broken = s._table.pop_due, [True]

    def pop_due_once_broken(now):
        if broken.pop() if broken else False:
            raise ZeroDivisionError("a bug in the timetable")
        return real_pop_due(now)

    monkeypatch.setattr(s._table, "pop_due", pop_due_once_broken)
    s.start()
    try:
        s.upsert("boom", 0.05, boom, timeout=1.0, run_now=True)
        s.upsert("healthy", 0.05, rec.job("healthy"), timeout=1.0, run_now=True)

        await wait_until(lambda: rec.runs["healthy"] >= 3)
        assert s.alive
        assert (None, "ZeroDivisionError") in errors
        assert ("boom", "RuntimeError") in errors
    finally:
        await s.stop()


async def test_overload_becomes_even_lateness_never_a_cut_run(monkeypatch):
    """Five times more due than the slots can run: runs wait (in due order) instead of failing;
    each run still gets its whole timeout from the moment it starts; every probe gets about the
    same share; the scheduler says it is overloaded and for how long, and recovers."""
    import pitwall.probes.scheduler as scheduler_module

    monkeypatch.setattr(scheduler_module, "LATE", 0.05)
    monkeypatch.setattr(scheduler_module, "CALM", 0.3)
    errors, lags = [], []
    changes = []
    s = Scheduler(
        concurrency=1,
        on_lag=lags.append,
        on_error=lambda key, exc: errors.append((key, exc)),
        on_overload=changes.append,
    )
    runs: Counter = Counter()

    def job(key):
        async def run():
            runs[key] += 1
            await asyncio.sleep(0.01)  # 1 slot x 100 runs/s; 50 keys every 0.1 s = 500/s due

        return run

    s.start()
    try:
        keys = [f"k{i:02d}" for i in range(50)]
        for key in keys:
            s.upsert(key, 0.1, job(key), timeout=0.2)  # the work (10 ms) fits its timeout, not the wait
        await wait_until(lambda: s.overloaded() and s.waiting > 0)
        await wait_until(lambda: all(runs[k] >= 3 for k in keys), limit=30)
        assert max(lags) > 0.2  # runs waited longer than their timeout...
        assert errors == []  # ...and none was cut: the timeout starts at the start
        counts = [runs[k] for k in keys]
        assert max(counts) - min(counts) <= 2  # spread evenly: nobody starved, nobody favoured
        for key in keys:
            s.remove(key)
        await wait_until(lambda: not s.overloaded(), limit=5)
        assert s.overloaded_seconds() > 0
        # Told once when it started and once when it ended, with what the ended one was like.
        assert [c.active for c in changes] == [True, False]
        assert changes[1].for_seconds > 0 and changes[1].worst_lag > 0.2
        assert not s.overload().active and s.overload().total_seconds == s.overloaded_seconds()
    finally:
        await s.stop()


async def test_no_overload_when_everything_runs_on_time(scheduler):
    rec = Recorder()
    for key in ("a", "b"):
        scheduler.upsert(key, 0.05, rec.job(key), timeout=1.0)
    await wait_until(lambda: all(rec.runs[k] >= 3 for k in "ab"))
    assert not scheduler.overloaded() and scheduler.overloaded_seconds() == 0.0


async def test_fewer_runs_in_flight_while_the_event_loop_is_late_and_back_after(monkeypatch):
    """Runs that hog the loop (as 100 checks do on a CPU that cannot serve them) make it late
    and take most of their budget: the limit on runs in flight falls to a few, so each run in
    flight gets the loop's time and none times out; once the loop keeps up, with runs
    waiting, the limit climbs back. Late alone, with quick runs, it stays."""
    import time

    import pitwall.probes.scheduler as scheduler_module

    monkeypatch.setattr(scheduler_module, "GOVERN_EVERY", 0.2)
    errors = []
    s = Scheduler(concurrency=40, on_error=lambda key, exc: errors.append(exc))

    def hog(key):
        async def run():
            time.sleep(0.03)  # noqa: ASYNC251 - CPU work on the loop's thread, on purpose
            await asyncio.sleep(0)

        return run

    def light(key):
        async def run():
            await asyncio.sleep(0.05)

        return run

    s.start()
    try:
        keys = range(40)
        for key in keys:
            s.upsert(key, 0.05, hog(key), timeout=5.0, run_now=True, budget=0.04)
        await wait_until(lambda: s.limit <= scheduler_module.floor(40), limit=30)
        assert s.limit == scheduler_module.floor(40) == 10  # never below a quarter
        for key in keys:
            s.upsert(key, 0.05, light(key), timeout=5.0)
        await wait_until(lambda: s.limit >= 20, limit=30)
        assert errors == []

        # Hogs with a roomy budget (late loop, quick runs against their budget): no cut.
        for key in keys:
            s.upsert(key, 0.05, hog(key), timeout=5.0, budget=10.0)
        limit = s.limit
        await asyncio.sleep(1.5)
        assert s.limit >= limit
    finally:
        await s.stop()


def test_the_overloaded_seconds_counter_never_falls_when_an_overload_ends():
    """``pitwall_probe_overloaded_seconds_total`` is a counter: read during an overload and
    again after it ended, it must not go down (it counted up to ``now`` and then fell back to
    the latest late start, by up to CALM seconds: the scale benchmark read -1 s)."""
    s = Scheduler(concurrency=1)
    start = 1000.0
    s._note_start(1.0, start)  # a run started 1 s late: overloaded since start - 1
    s._note_start(2.0, start + 3)  # another, 2 s late, 3 s later
    readings = [s.overloaded_seconds(start + t) for t in (3.5, 6.0, 9.0, 12.0, 12.9)]
    assert s.overloaded(start + 12.9)  # still within CALM of the latest late start
    readings += [s.overloaded_seconds(start + 3 + CALM + t) for t in (0.0, 1.0, 60.0)]
    assert not s.overloaded(start + 3 + CALM + 60)
    assert all(b >= a for a, b in itertools.pairwise(readings)), readings
    assert readings[-1] == 4.0  # from the first late run's due time to the latest late start
