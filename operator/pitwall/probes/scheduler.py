"""One asyncio scheduler for every probe in the process.

A heap of due times on the monotonic clock drives all probes; runs are tasks, so the loop never
waits for a target, and a hung run costs no other probe its slot.

- No drift: due times sit on a fixed grid, ``offset + k * interval``, computed rather than
  accumulated, so hours of runs never creep. A run that starts late does not move the grid.
- Missed slots are skipped, not bunched: after a stall (a suspended laptop, an overloaded
  loop) a probe runs once and continues on its grid.
- Load is spread: each probe's ``offset`` comes from a hash of its key, spread over the whole
  interval (not a small jitter window), so 5,000 probes at 10 s start about 500 a second
  instead of all at once after a restart, and always in the same phase.
- A probe whose previous run is still going skips its slot instead of stacking runs.
- Scheduling lag (start - due, including any wait for the concurrency limit) is reported
  through ``on_lag`` for metrics and benchmarks.
- Overload degrades into lateness, never into failures: when more is due than the CPU (or the
  concurrency limit) can run, due runs wait for a slot in due order (first due, first started),
  so the lateness is spread evenly over every probe; a probe still waiting when its next slot
  comes skips that slot. A run's timeout starts when it really starts, so waiting never makes
  a check time out or fail. A run starting more than ``LATE`` seconds late marks the scheduler
  overloaded until none has for ``CALM`` seconds (``overloaded``, ``overloaded_seconds``,
  ``waiting``, :meth:`Scheduler.overload`; logged when it starts and ends, and passed to
  ``on_overload`` then, so ``probes.overload`` reports it on the operator's Pod).
- Fewer runs in flight when the CPU cannot keep up: a check's timeout counts wall time, and
  with 100 checks in flight on an event loop the CPU cannot serve (an overload, or a
  neighbour taking the core) each of them waits for the loop at every step, until checks of a
  healthy target time out (bench/results/probes.md, 2026-11-29: thousands of "timed out after
  2s" on a starved replica). A governor looks back over each second: when the loop was over
  ``BUSY`` late and a run took more than ``AT_RISK`` of its ``budget`` (the time after which
  its check fails), it lowers the limit on runs in flight by a quarter (down to :func:`floor`,
  a quarter of ``concurrency``); when runs wait and the loop kept up (or every run stayed under
  ``SAFE`` of its budget), it raises it by an eighth, back to ``concurrency`` (additive
  increase, multiplicative decrease, as TCP does). Only the two together lower it: a loop late
  for want of CPU with checks still quick keeps every slot (fewer would only cut throughput,
  as a first version did: 14 % of due checks run at 24 % of a core), and a slow target on a
  loop that keeps up is not the CPU's fault. Runs beyond the limit wait, in due order:
  lateness, not failures. ``limit`` shows the current one.
- One job cannot stop the others: an interval that is not a positive finite number is refused
  when it is scheduled (the spec parser refuses it earlier still, with a reason), and anything
  a run or the loop itself raises is logged with its key and reported through ``on_error``; the
  loop carries on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from ..supervise import spawn

log = logging.getLogger("pitwall.probes.scheduler")

LATE = 0.5  # seconds: a run starting this late means more is due than can be run
QUANTUM = 0.01  # seconds: the scheduler's loop wakes at most this often (runs due meanwhile start together)
CALM = 10.0  # seconds without a late start before the overload is over
TICK = 0.1  # seconds between the governor's samples of the event loop's lateness
BUSY = 0.1  # seconds late: the loop cannot serve the runs in flight; fewer of them
IDLE = 0.02  # seconds late at most: room for more runs in flight (when some wait)
MIN_CONCURRENCY = 4
# The governor never goes below a quarter of --probe-concurrency (nor below MIN_CONCURRENCY):
# on a machine starved by others, runs are slow whatever is in flight, and a quick overload run
# at load 19 on 2 cores, cut to 4 in flight, ran 35 checks a second at 15 % of a core.
FLOOR_SHARE = 0.25


def floor(concurrency: int) -> int:
    """The fewest runs in flight the governor allows."""
    return min(concurrency, max(MIN_CONCURRENCY, int(concurrency * FLOOR_SHARE)))


GOVERN_EVERY = 1.0  # seconds of samples behind each change of the limit
AT_RISK = 0.5  # of its budget: a run this slow is near failing for want of the loop's time
SAFE = 0.25  # of its budget: every run this quick leaves room for more in flight


class _Gate:
    """A first-come first-served semaphore whose ``limit`` may change while it is held."""

    def __init__(self, limit: int):
        self.limit = limit
        self.held = 0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    async def acquire(self) -> None:
        if self.held < self.limit and not self._waiters:
            self.held += 1
            return
        granted = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():  # granted, then cancelled: give it back
                self.release()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(granted)
            raise

    def release(self) -> None:
        self.held -= 1
        self.admit()

    def admit(self) -> None:
        """Hand free slots to the longest waiting (after a release or a higher limit)."""
        while self._waiters and self.held < self.limit:
            granted = self._waiters.popleft()
            if not granted.done():
                self.held += 1
                granted.set_result(None)


def phase(key: Hashable, interval: float) -> float:
    """A stable offset in [0, interval) for ``key`` (stable across processes, unlike hash())."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * interval


@dataclass(slots=True)
class _Slot:
    interval: float
    offset: float
    generation: int
    paused: bool = False

    def after(self, moment: float) -> float:
        """The first grid time strictly after ``moment``."""
        due = self.offset + (math.floor((moment - self.offset) / self.interval) + 1) * self.interval
        return due if due > moment else due + self.interval


class Timetable:
    """When each key is due. Pure bookkeeping over caller-supplied times, so it is tested exactly."""

    def __init__(self) -> None:
        self._slots: dict[Hashable, _Slot] = {}
        self._heap: list[tuple[float, int, Hashable, int]] = []  # due, tie-breaker, key, generation
        self._order = itertools.count()
        self._generations = itertools.count()

    def upsert(self, key: Hashable, interval: float, now: float, *, run_now: bool = False) -> None:
        """Schedule ``key``; an unchanged interval keeps its slot unless ``run_now``.

        A new key starts at its next grid time; ``run_now`` (a spec change, a new probe someone
        is watching) runs it at once and then continues on the grid.
        """
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError(f"{key}: interval must be a positive number of seconds, got {interval!r}")
        old = self._slots.get(key)
        if old is not None and old.interval == interval and not run_now:
            return
        slot = _Slot(
            interval, phase(key, interval), next(self._generations), paused=old.paused if old else False
        )
        self._slots[key] = slot
        if not slot.paused:
            self._push(key, slot, now if run_now else slot.after(now))

    def remove(self, key: Hashable) -> None:
        self._slots.pop(key, None)  # its heap entries go stale and are dropped when reached

    def set_paused(self, key: Hashable, paused: bool, now: float) -> None:
        slot = self._slots[key]
        if slot.paused == paused:
            return
        slot.paused = paused
        slot.generation = next(self._generations)
        if not paused:
            self._push(key, slot, slot.after(now))

    def pop_due(self, now: float) -> list[tuple[Hashable, float]]:
        """Keys due at ``now`` with their due times, earliest first; each is rescheduled."""
        out = []
        while self._heap and self._heap[0][0] <= now:
            due, _, key, generation = heapq.heappop(self._heap)
            slot = self._slots.get(key)
            if slot is None or slot.generation != generation:
                continue
            out.append((key, due))
            self._push(key, slot, slot.after(max(due, now)))
        return out

    def next_due(self) -> float | None:
        while self._heap:
            _, _, key, generation = self._heap[0]
            slot = self._slots.get(key)
            if slot is not None and slot.generation == generation:
                return self._heap[0][0]
            heapq.heappop(self._heap)
        return None

    def _push(self, key: Hashable, slot: _Slot, due: float) -> None:
        heapq.heappush(self._heap, (due, next(self._order), key, slot.generation))


@dataclass(frozen=True, slots=True)
class Overload:
    """The scheduler's overload at one moment. Passed to ``on_overload`` when one ends, it
    describes the overload that ended (``active`` False, its length and its latest start)."""

    active: bool
    for_seconds: float  # how long the current (or the ended) overload lasted; 0 when none
    worst_lag: float  # seconds: the latest start of that overload
    waiting: int  # runs due and waiting for a slot now
    total_seconds: float  # every overload since the scheduler was made, this one included
    limit: int = 0  # runs allowed in flight (the governor lowers it while the loop is late)


@dataclass(slots=True)
class _Job:
    run: Callable[[], Awaitable[object]]
    timeout: float
    budget: float | None = None  # seconds a run may take before its check fails (None: unknown)


class Scheduler:
    """Runs ``run()`` for every key on its interval, at most ``concurrency`` at a time.

    ``timeout`` cuts a run (the caller's whole run: the check plus its status write), so give it
    some room above ``Check.run_timeout``. Exceptions from a run are logged and passed to
    ``on_error(key, exc)``, never fatal; so are exceptions inside the loop (the loop goes on).
    """

    def __init__(
        self,
        *,
        concurrency: int = 256,
        on_lag: Callable[[float], None] | None = None,
        on_error: Callable[[Hashable, BaseException], None] | None = None,
        on_overload: Callable[[Overload], None] | None = None,
    ):
        self._table = Timetable()
        self._jobs: dict[Hashable, _Job] = {}
        self._running: dict[Hashable, asyncio.Task] = {}
        self._deadlines: dict[Hashable, tuple[asyncio.Task | None, float]] = {}  # runs started: when to cut
        self._cut: set[asyncio.Task | None] = set()  # runs cancelled for their deadline
        self.concurrency = concurrency  # the most runs in flight; the governor may allow fewer
        self._gate = _Gate(concurrency)
        self._governor: asyncio.Task | None = None
        self._slowest = 0.0  # the slowest run of the governor's current second, per its budget
        self._on_lag = on_lag
        self._on_error = on_error
        self.on_overload = on_overload  # called when an overload starts and when it ends
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self.overruns = 0  # slots skipped because the previous run was still going
        self.waiting = 0  # runs due and waiting for a slot
        self._late_until = 0.0  # overloaded until then (monotonic)
        self._overloaded_since: float | None = None
        self._overloaded_closed = 0.0  # seconds of overloads that have ended
        self._worst_lag = 0.0  # largest lag of the current overload
        # /metrics and /healthz read (and so settle) the overload from the metrics server's thread
        self._overload_lock = threading.RLock()

    def upsert(
        self,
        key: Hashable,
        interval: float,
        run: Callable[[], Awaitable[object]],
        *,
        timeout: float,
        run_now: bool = False,
        budget: float | None = None,
    ) -> None:
        """``budget``: how long a run may take before its check fails (the governor keeps runs
        well under it when the CPU cannot keep up)."""
        self._jobs[key] = _Job(run, timeout, budget)
        self._table.upsert(key, interval, time.monotonic(), run_now=run_now)
        self._wake.set()

    def remove(self, key: Hashable) -> None:
        """Forget ``key`` and cancel its run in progress (its object is gone)."""
        self._jobs.pop(key, None)
        self._table.remove(key)
        task = self._running.pop(key, None)
        if task is not None:
            task.cancel()

    def set_paused(self, key: Hashable, paused: bool) -> None:
        self._table.set_paused(key, paused, time.monotonic())
        self._wake.set()

    def start(self) -> None:
        if self.alive:  # a sharded replica starts the probes before it may become the leader
            return
        self._loop_task = spawn(self._loop(), name="pitwall probe scheduler", task="probe-scheduler")
        self._governor = spawn(self._govern(), name="pitwall probe governor", task="probe-governor")

    @property
    def limit(self) -> int:
        """Runs allowed in flight now (``concurrency``, or fewer while the loop is late)."""
        return self._gate.limit

    async def _govern(self) -> None:
        loop = asyncio.get_running_loop()
        lowest = floor(self.concurrency)
        worst, ticks = 0.0, 0
        while True:
            planned = loop.time() + TICK
            await asyncio.sleep(TICK)
            worst, ticks = max(worst, loop.time() - planned), ticks + 1
            self._cut_overdue(loop.time())
            if ticks * TICK < GOVERN_EVERY:
                continue
            gate, slowest = self._gate, self._slowest
            self._slowest = 0.0
            if worst > BUSY and slowest > AT_RISK and gate.limit > lowest:
                if gate.limit == self.concurrency:
                    log.info("event loop %.2fs late: fewer probe runs in flight until it keeps up", worst)
                gate.limit = max(lowest, int(gate.limit * 0.75))
                log.debug(
                    "probe runs in flight limited to %d: the event loop is %.2fs late", gate.limit, worst
                )
            elif (worst < IDLE or slowest < SAFE) and self.waiting and gate.limit < self.concurrency:
                gate.limit = min(self.concurrency, gate.limit + max(1, gate.limit // 8))
                gate.admit()
                if gate.limit == self.concurrency:
                    log.info("event loop on time: up to %d probe runs in flight again", gate.limit)
            worst, ticks = 0.0, 0

    def _cut_overdue(self, now: float) -> None:
        """Cancel every run past its deadline (``timeout`` after it started)."""
        for task, deadline in list(self._deadlines.values()):
            if now >= deadline and task is not None and not task.done() and task not in self._cut:
                self._cut.add(task)
                task.cancel()

    async def stop(self) -> None:
        tasks = [t for t in [self._loop_task, self._governor, *self._running.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = self._governor = None

    @property
    def alive(self) -> bool:
        """The loop task runs (for /healthz): False once started and then ended for any reason."""
        return self._loop_task is not None and not self._loop_task.done()

    # -- overload ---------------------------------------------------------------------------------
    def overloaded(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self._settle(now)
        return self._overloaded_since is not None

    def overloaded_seconds(self, now: float | None = None) -> float:
        """Seconds spent overloaded since the scheduler was made (the current overload included)."""
        now = time.monotonic() if now is None else now
        self._settle(now)
        # The current overload counts up to its latest late start, as it will once it has
        # ended: counting up to ``now`` would make the counter fall by up to CALM seconds at
        # the end (a Prometheus counter must never go down; the scale benchmark read -1 s).
        current = (
            self._latest_late_start() - self._overloaded_since if self._overloaded_since is not None else 0.0
        )
        return self._overloaded_closed + max(0.0, current)

    def overload(self, now: float | None = None) -> Overload:
        """The overload as a person wants to read it (/healthz, the Pod condition, Events)."""
        now = time.monotonic() if now is None else now
        self._settle(now)
        since = self._overloaded_since
        return Overload(
            since is not None,
            now - since if since is not None else 0.0,
            self._worst_lag,
            self.waiting,
            self.overloaded_seconds(now),
            self.limit,
        )

    def _changed(self, change: Overload) -> None:
        if self.on_overload is not None:
            try:
                self.on_overload(change)
            except Exception:
                log.exception("probe scheduler: on_overload failed")

    def _note_start(self, lag: float, now: float) -> None:
        with self._overload_lock:
            self._note_start_locked(lag, now)

    def _note_start_locked(self, lag: float, now: float) -> None:
        self._settle(now)
        if lag < LATE:
            return
        self._late_until = now + CALM
        self._worst_lag = max(self._worst_lag, lag)
        if self._overloaded_since is None:
            self._overloaded_since = now - lag
            log.warning(
                "probe scheduler overloaded: runs start %.1fs late (%d waiting for a slot); lateness is "
                "spread over every probe and never fails a check. Give the operator more CPU or run "
                "more replicas with --probe-shards",
                lag,
                self.waiting,
            )
            self._changed(Overload(True, lag, lag, self.waiting, self._overloaded_closed + lag, self.limit))

    def _latest_late_start(self) -> float:
        """When the latest run of the current overload started late (``_late_until`` is it plus CALM)."""
        return self._late_until - CALM

    def _settle(self, now: float) -> None:
        with self._overload_lock:
            self._settle_locked(now)

    def _settle_locked(self, now: float) -> None:
        if self._overloaded_since is not None and now >= self._late_until:
            ended = self._latest_late_start()
            self._overloaded_closed += max(0.0, ended - self._overloaded_since)
            log.warning(
                "probe scheduler caught up after %.0fs overloaded (runs up to %.1fs late)",
                ended - self._overloaded_since,
                self._worst_lag,
            )
            change = Overload(
                False,
                ended - self._overloaded_since,
                self._worst_lag,
                self.waiting,
                self._overloaded_closed,
                self.limit,
            )
            self._overloaded_since, self._worst_lag = None, 0.0
            self._changed(change)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None
        while True:
            wake_at: float | None = time.monotonic() + 0.1
            try:
                self._wake.clear()
                now = time.monotonic()
                self._settle(now)
                for key, due in self._table.pop_due(now):
                    self._launch(key, due)
                next_due = self._table.next_due()
                # At most one pass a QUANTUM: 5,000 probes at 10 s are 500 runs a second, each on
                # its own instant of the grid; one pass (and one timer) per run was ~5% of the
                # operator's CPU (issue 18). Runs start up to QUANTUM late instead of ~1 ms.
                wake_at = None if next_due is None else max(next_due, now + QUANTUM)
            except Exception as exc:  # a bug, not a job: log it, keep every other probe running
                log.exception("probe scheduler: iteration failed; continuing")
                self._report(None, exc)
            if timer is not None:
                timer.cancel()
            # loop.time() is time.monotonic(): the grid's clock. A new or changed probe sets the
            # event itself (upsert), so it never waits for the timer.
            timer = None if wake_at is None else loop.call_at(wake_at, self._wake.set)
            await self._wake.wait()

    def _report(self, key: Hashable, exc: BaseException) -> None:
        if self._on_error is not None:
            try:
                self._on_error(key, exc)
            except Exception:
                log.exception("probe scheduler: on_error failed")

    def _launch(self, key: Hashable, due: float) -> None:
        if key in self._running:
            self.overruns += 1
            log.debug("probe %s: previous run still going, slot skipped", key)
            return
        job = self._jobs.get(key)
        if job is None:
            return
        task = spawn(self._execute(key, job, due), name=f"probe {key}", task="probe-run", long_lived=False)
        self._running[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))

    def _forget(self, key: Hashable, task: asyncio.Task) -> None:
        if self._running.get(key) is task:  # not a newer run after remove() and upsert()
            del self._running[key]

    async def _execute(self, key: Hashable, job: _Job, due: float) -> None:
        self.waiting += 1
        try:
            await self._gate.acquire()
        finally:
            self.waiting -= 1
        try:
            now = time.monotonic()
            self._note_start(now - due, now)
            if self._on_lag is not None:
                self._on_lag(now - due)
            # The run's deadline is kept here and enforced by the governor's sweep (every TICK),
            # not by a timer of its own: one asyncio.timeout per run was ~2% of the operator's
            # CPU at 500 runs a second (issue 18); a cut comes at most TICK after the deadline.
            me = asyncio.current_task()
            self._deadlines[key] = (me, now + job.timeout)
            try:
                await job.run()
                if job.budget:
                    self._slowest = max(self._slowest, (time.monotonic() - now) / job.budget)
            except asyncio.CancelledError:
                if me not in self._cut or (me is not None and me.uncancel() > 0):
                    raise  # stopped or removed, not (only) cut
                log.warning("probe %s: run cut at its timeout (%.1fs)", key, job.timeout)
                self._report(key, TimeoutError(f"run cut at its timeout ({job.timeout:.1f}s)"))
            except Exception as exc:
                log.exception("probe %s: run failed", key)
                self._report(key, exc)
            finally:
                self._cut.discard(me)
                if self._deadlines.get(key, (None, 0.0))[0] is me:
                    del self._deadlines[key]
        finally:
            self._gate.release()
