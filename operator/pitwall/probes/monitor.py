"""The probe runtime: one scheduler, shared HTTP clients, thresholds, stats and status writes.

Probes and Backends' ``health`` checks both run here (the same engine, the same semantics);
each owner kind supplies how its target resolves and how a result becomes its status.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter, Histogram

from .. import durations
from ..api import check as model
from ..errors import InvalidSpec
from ..runtime import Runtime
from ..supervise import spawn
from ..vocabulary import Stalled
from .client import client_key, make_client
from .coalesce import should_write
from .engine import RunResult, StepLog, failed_result, run_check
from .scheduler import Scheduler, phase
from .spec import MIN_INTERVAL, Check, Spec, Step, compile_steps, parse_check
from .state import MAINTENANCE, Health, observe, settle
from .stats import Stats
from .telemetry import COLLECTOR, Numbers

log = logging.getLogger("pitwall.probes")

# Per-probe series (success, up, runs, step durations) live on each job: see ``telemetry``.
LAG = Histogram(
    "pitwall_probe_schedule_lag_seconds",
    "Start time minus due time",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
STATUS_WRITES = Counter("pitwall_probe_status_writes_total", "Status writes by probes", ["kind"])
JOB_ERRORS = Counter(
    "pitwall_job_errors_total",
    "Unforeseen exceptions caught inside one job so that no other job is affected "
    "(check: inside a check; run: a scheduled run; scheduler: the scheduler loop)",
    ["kind"],
)

Key = tuple[str, str, str]  # (kind, namespace, name)
_PARSE_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pitwall-spec")

# Runs in flight at once, and the connections each client may hold. They must match: requests
# beyond a client's pool queue inside httpcore, whose pool rescans the whole queue on every
# request start and finish (quadratic), and the operator collapses (bench/results/probes.md).
CONCURRENCY = 100
# Status writes run beside the checks, never inside a check's slot: an API server that takes a
# second to answer a PATCH must not hold up the probes due meanwhile (bench/results/probes.md).
WRITE_CONCURRENCY = 16
WRITE_TIMEOUT = 30.0


@dataclass(slots=True)
class Job:
    """What the monitor keeps per scheduled check between runs."""

    key: Key
    generation: int
    check: Check
    resolve: Callable[[], str | None]  # base URL now (None: no ready endpoint)
    imposed: Callable[[], str | None]  # Maintenance / Paused, or None
    publish: Callable[[Job, RunResult | None, bool], Awaitable[None]]
    health: Health = field(default_factory=Health)
    stats: Stats = field(default_factory=Stats)
    numbers: Numbers = field(default_factory=Numbers)  # its Prometheus series
    last_written: float | None = None
    last_result: RunResult | None = None
    stalled: Stalled | None = None
    unpublished: bool = False  # runs since the last status write (flushed on shutdown)
    unresolved: str | None = (
        None  # the failure when resolve() finds no target ("payments v2 has no ready endpoints")
    )
    # The first verdict under a new spec (or of a new probe) is news like a transition: it is
    # written at once, not in the steady-state slot (issue 19: observedGeneration lagged 60 s).
    first_verdict: bool = True


def missed_slot(status: dict, interval: float) -> bool:
    """Whether the last run in ``status`` (``lastRun.at``) is more than ``interval`` ago."""
    at = (status.get("lastRun") or {}).get("at")
    if not at:
        return False
    try:
        last = durations.parse_time(at)
    except ValueError:
        return False
    return (durations.now() - last).total_seconds() > interval


def unresolved(check: Check, reason: str) -> RunResult:
    """A failed run that sent nothing: its target has no address (an empty product version).

    Its first step fails with ``reason``, which says what a person needs to know, instead of a
    connection error to a placeholder host."""
    import os

    step = check.steps[0]
    return RunResult(
        at=durations.now(),
        trace_id=os.urandom(16).hex(),
        steps=(
            StepLog(
                step.name,
                step.request.method,
                step.request.path or step.request.url or "",
                correlation_id="-",
                reason=reason,
            ),
        ),
    )


class Monitor:
    def __init__(self, rt: Runtime):
        self.rt = rt
        self.policy = rt.egress
        # --probe-concurrency: runs in flight at once (and each client's pool, see CONCURRENCY)
        self.concurrency = rt.settings.probe_concurrency
        self.scheduler = Scheduler(
            concurrency=self.concurrency, on_lag=LAG.observe, on_error=self._scheduler_error
        )
        self.jobs: dict[Key, Job] = {}
        self._steady, self._steady_until = 60.0, 0.0  # steady_interval(), and until when it holds
        # Parsed specs by object, stamped with (uid, generation, base URL, floor): a spec is
        # parsed once per generation, not on every event (status echoes included).
        self._specs: dict[Key, tuple[tuple, Check | tuple[str, str]]] = {}
        self._clients: dict[Hashable, httpx.AsyncClient] = {}
        self._client_lock = asyncio.Lock()
        self._write_slots = asyncio.Semaphore(WRITE_CONCURRENCY)
        self._writing: dict[Key, asyncio.Task] = {}
        self._again: dict[Key, bool] = {}  # written meanwhile: write once more (transition?)
        COLLECTOR.watch(self)

    async def start(self) -> None:
        self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.writes_done()
        await self.flush()
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def writes_done(self) -> None:
        """Wait for the status writes in flight (the probes' clients stay open)."""
        while self._writing:
            await asyncio.gather(*list(self._writing.values()), return_exceptions=True)

    async def flush(self) -> None:
        """Write every probe's latest numbers (coalescing may have held them back), so a graceful
        restart resumes from exactly where it stopped."""
        for job in list(self.jobs.values()):
            if job.unpublished:
                try:
                    await job.publish(job, job.last_result, False)
                    job.unpublished = False
                except Exception as exc:  # shutting down: log, never hang
                    log.warning("could not flush probe status %s: %s", job.key, exc)

    def secrets(self, namespace: str):
        async def read(name: str, key: str) -> str | None:
            return await self.rt.kube.read_secret(namespace, name, key, use="probes")

        return read

    async def client(self, check: Check, namespace: str, base_url: str | None) -> httpx.AsyncClient:
        """A shared client per (TLS/proxy settings, origin): small pools keep httpcore's per-request
        scan of its connections short; the scheduler bounds the total in flight."""
        target = urlsplit(base_url or check.target or "")
        key = (
            client_key(check),
            namespace if (check.tls.ca or check.tls.client_cert) else None,
            target.scheme,
            target.netloc,
        )
        async with self._client_lock:
            if key not in self._clients:
                self._clients[key] = await make_client(
                    check,
                    secrets=self.secrets(namespace),
                    policy=self.policy,
                    max_connections=self.concurrency,
                )
            return self._clients[key]

    def steady_interval(self) -> float:
        """Seconds between one probe's steady-state status writes (no transition): a minute, or
        longer when there are so many probes that all of them together would exceed
        ``--status-writes-per-second``. Transitions are always written at once."""
        now = time.monotonic()
        if now >= self._steady_until:  # asked once per run: counted at most once a second
            population = max(
                len(self.jobs),
                sum(len(self.rt.stores[kind]) for kind in ("Probe", "Backend") if kind in self.rt.stores),
            )
            budget = self.rt.settings.status_writes_per_second
            self._steady, self._steady_until = max(60.0, population / budget), now + 1.0
        return self._steady

    @property
    def min_interval(self) -> float:
        """The operator-wide floor on probe intervals (``Settings.min_probe_interval`` when set)."""
        return max(MIN_INTERVAL, float(getattr(self.rt.settings, "min_probe_interval", None) or 0.0))

    async def check_for(self, key: Key, metadata: dict, spec: Spec, *, base_url: str | None = None) -> Check:
        """``parse_check`` once per generation of the object; raises ``InvalidSpec`` like it.

        The parse itself runs on a one-thread pool: the largest spec the schema admits takes
        ~0.2 s (820 RE2 patterns, 4 KB of JSONPath), which the event loop must not carry."""
        generation = metadata.get("generation")
        stamp = (metadata.get("uid"), generation, base_url, self.min_interval)
        cached = self._specs.get(key)
        if cached is not None and cached[0] == stamp and generation is not None:
            if isinstance(cached[1], Check):
                return cached[1]
            raise InvalidSpec(*cached[1])
        try:
            check = await asyncio.get_running_loop().run_in_executor(
                _PARSE_POOL, partial(parse_check, spec, base_url=base_url, min_interval=self.min_interval)
            )
        except InvalidSpec as exc:
            self._specs[key] = (stamp, (exc.reason, exc.message))
            raise
        self._specs[key] = (stamp, check)
        return check

    def forget(self, key: Key) -> None:
        """The object is gone: drop its job and its parsed spec."""
        self.remove(key)
        self._specs.pop(key, None)

    def _scheduler_error(self, key: Hashable, exc: BaseException) -> None:
        JOB_ERRORS.labels("scheduler" if key is None else "run").inc()

    # -- scheduling ------------------------------------------------------------------------------
    def upsert(self, job: Job, previous_status: dict) -> None:
        """Schedule (or reschedule at once, when the spec changed) and resume from status."""
        old = self.jobs.get(job.key)
        resumed = overdue = False
        if old is not None:
            job.health, job.stats, job.numbers, job.last_written = (
                old.health,
                old.stats,
                old.numbers,
                old.last_written,
            )
            job.last_result, job.unpublished = old.last_result, old.unpublished
        else:
            job.health = Health.from_status(previous_status)
            job.stats = Stats.from_status(previous_status)
            # Resumed after an operator restart, spec unchanged: the status is there already,
            # so the probe keeps to its own slot and its first steady write waits its turn,
            # spread over the interval. Otherwise 5,000 probes would all run at once and write
            # within seconds (a burst of memory, lag and API writes on every restart).
            resumed = (
                bool(previous_status.get("lastRun"))
                and previous_status.get("observedGeneration") == job.generation
            )
            if resumed:
                job.last_written = time.monotonic() - phase(job.key, self.steady_interval())
                job.first_verdict = False
                # A probe whose last run is older than its interval has missed a slot (the
                # operator was down, or the replica that ran it died and its shard Lease had to
                # expire first): it runs as soon as it is scheduled, not up to an interval later
                # on its grid, so the gap stays within the outage plus this reconcile (issue 18:
                # a taken-over shard's probes came back up to lease + reconcile + one interval
                # after the kill, 26.4 s against the 25 s bound). Resumed jobs are scheduled at
                # the pace their reconciles finish, so this is no burst; writes stay spread.
                overdue = missed_slot(previous_status, job.check.interval)
        if old is not None and old.generation == job.generation:
            # A run's Stalled (TargetDenied) stands until the next run decides: a resync's
            # reconcile must not write Stalled=False over it for an interval.
            job.first_verdict, job.stalled = old.first_verdict, old.stalled
        self.jobs[job.key] = job
        if old is None or old.generation != job.generation:
            key = job.key  # the closure holds the key, not the job: jobs are replaced on every event
            self.scheduler.upsert(
                key,
                job.check.interval,
                lambda: self.run(key),
                timeout=job.check.run_timeout + 10,
                run_now=not resumed or overdue,
                budget=job.check.timeout,  # a request slower than this fails its check
            )
        self.scheduler.set_paused(job.key, job.check.paused)

    def remove(self, key: Key) -> None:
        self.scheduler.remove(key)
        self.jobs.pop(key, None)  # and with it, its series

    # -- one run ----------------------------------------------------------------------------------
    async def run(self, key: Key, *, publish: bool = True) -> RunResult | None:
        job = self.jobs.get(key)
        if job is None:
            return None
        kind, namespace, name = key
        base_url = job.resolve()
        imposed = job.imposed()
        check = job.check
        if imposed == MAINTENANCE and check.check_maintenance_page:
            # During a window, check what users get instead: the page (503 + Retry-After). It
            # counts like any run, so a broken maintenance page goes Down and pages someone.
            check, imposed = maintenance_page_check(check, base_url), None
        try:
            if base_url is None and job.unresolved:
                result = unresolved(check, job.unresolved)  # nothing to connect to: say why
            else:
                client = await self.client(check, namespace, base_url)
                result = await run_check(
                    check, client=client, secrets=self.secrets(namespace), base_url=base_url
                )
        except InvalidSpec as exc:
            job = self.jobs.get(key, job)  # replaced while the check ran: see below
            job.stalled = exc.stalled
            if publish:
                # Through the one writer per probe: a write already under way (a new probe's
                # first status from its reconcile) would otherwise land after this one and
                # replace Stalled with AwaitingResults until the next run, an interval later.
                job.last_written = time.monotonic()
                self._write(key, True)
            return None
        except Exception as exc:  # a bug around the check: still a verdict, never silence
            log.error(
                "%s %s/%s: the check failed inside Pitwall (%s)",
                kind,
                namespace,
                name,
                type(exc).__name__,
                extra={"kind": kind, "object": f"{namespace}/{name}"},
            )
            result = failed_result(check, f"the check failed inside Pitwall ({type(exc).__name__})")
        # A reconcile may have replaced the job while the check ran (every event re-upserts it,
        # handing the new one the old one's health and numbers as they were then): the verdict
        # goes to the job in place now, or its count is lost while the history keeps the run.
        current = self.jobs.get(key)
        if current is None:
            return result  # the probe went away meanwhile
        job = current
        if result.internal:
            JOB_ERRORS.labels("check").inc()
            log.warning(
                "%s %s/%s: %s",
                kind,
                namespace,
                name,
                result.failure.reason if result.failure else "",
                extra={"kind": kind, "object": f"{namespace}/{name}"},
            )
        job.stalled = None
        previous = job.health
        outcome = observe(
            previous,
            result.ok,
            failure_threshold=job.check.failure_threshold,
            success_threshold=job.check.success_threshold,
            imposed=imposed,
        )
        job.health = outcome.health
        job.stats.record(result.at, result.ok, result.latency_ms if result.ok else None)
        job.last_result = result
        job.numbers.record(
            result.ok,
            outcome.state == "Up",
            ((step.name, step.latency_ms / 1000) for step in result.steps if step.latency_ms is not None),
            job.key[:2],
        )
        if not result.ok and (failure := result.failure) is not None:
            log.info(
                "%s %s/%s failed at step %s: %s",
                kind,
                namespace,
                name,
                failure.name,
                failure.reason,
                extra={
                    "kind": kind,
                    "object": f"{namespace}/{name}",
                    "step": failure.name,
                    "correlation_id": failure.correlation_id,
                    "reason": failure.reason,
                },
            )
        now = time.monotonic()
        job.unpublished = True
        first, job.first_verdict = job.first_verdict, False
        if publish and should_write(
            job.last_written, now, transition=outcome.transition or first, min_interval=self.steady_interval()
        ):
            job.last_written = now
            job.unpublished = False
            self._write(key, outcome.transition)
        return result

    # -- status writes ----------------------------------------------------------------------------
    def write_soon(self, key: Key) -> None:
        """Publish ``key``'s current state now (a new probe, a spec change): through the same
        one-write-at-a-time path as the runs, so an older state can never land after a newer."""
        if key in self.jobs:
            self.jobs[key].last_written = time.monotonic()
            self._write(key, False)

    def _write(self, key: Key, transition: bool) -> None:
        """Publish ``key``'s latest outcome in the background, one write per probe at a time; a
        write asked for meanwhile follows with the newest numbers (transitions are kept)."""
        if key in self._writing:
            self._again[key] = self._again.get(key, False) or transition
            return
        self._writing[key] = spawn(
            self._writer(key, transition), name=f"status {key}", task="probe-status-write", long_lived=False
        )

    async def _writer(self, key: Key, transition: bool) -> None:
        try:
            while True:
                job = self.jobs.get(key)
                if job is None:
                    return
                try:
                    async with self._write_slots, asyncio.timeout(WRITE_TIMEOUT):
                        await job.publish(job, job.last_result, transition)
                    STATUS_WRITES.labels(key[0]).inc()
                except Exception as exc:  # the API server is away: the next run tries again
                    log.warning("could not write status of %s %s/%s: %s", *key, exc)
                    job.last_written, job.unpublished = None, True
                if key not in self._again:
                    return
                transition = self._again.pop(key)
        finally:
            self._writing.pop(key, None)

    async def resettle(self, key: Key) -> None:
        """Maintenance started or ended, or the probe was paused: re-derive the state now."""
        job = self.jobs.get(key)
        if job is None:
            return
        imposed = job.imposed()
        if imposed == MAINTENANCE and job.check.check_maintenance_page:
            return  # its runs check the page and decide
        outcome = settle(
            job.health,
            failure_threshold=job.check.failure_threshold,
            success_threshold=job.check.success_threshold,
            imposed=imposed,
        )
        if outcome.transition:
            job.health = outcome.health
            job.last_written = time.monotonic()
            self._write(key, True)


def maintenance_page_check(check: Check, base_url: str | None) -> Check:
    """The check with one GET of the target expecting the maintenance page's answer (503 with
    Retry-After) as its only step; its target, deadlines, TLS and proxy stay the probe's."""
    return replace(check, target=base_url or check.target, steps=(_maintenance_page_step(),))


@functools.cache
def _maintenance_page_step() -> Step:
    (step,) = compile_steps(
        [
            model.Step(
                name="maintenance-page",
                request=model.Request(path="/"),
                expect=model.Expect(
                    status=[503], headers=[model.HeaderExpect(name="Retry-After", present=True)]
                ),
            )
        ]
    )
    return step
