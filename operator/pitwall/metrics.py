"""Prometheus metrics and the operator's health endpoints.

Label sets are bounded: kinds, namespaces, object names, step names, receiver types and
severities; never a raw URL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# No ``*_created`` series: Prometheus does not need them, and with thousands of probes they are a
# tenth of the exposition and of the memory the metrics take.
disable_created_metrics()

RECONCILES = Counter("pitwall_reconcile_total", "Reconciles by kind and result", ["kind", "result"])
RECONCILE_SECONDS = Histogram(
    "pitwall_reconcile_duration_seconds",
    "Reconcile duration",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter(
    "pitwall_reconcile_errors_total", "Reconcile errors by kind and reason", ["kind", "reason"]
)
QUEUE_DEPTH = Gauge("pitwall_workqueue_depth", "Keys waiting to be reconciled", ["kind"])
OBJECTS = Gauge("pitwall_objects", "Objects watched by kind", ["kind"])
READY = Gauge(
    "pitwall_object_ready", "1 when the object's Ready condition is True", ["kind", "namespace", "name"]
)
DRIFT_REVERTED = Counter(
    "pitwall_drift_reverted_total", "Hand edits to owned fields reverted", ["namespace", "product"]
)
ROLLBACKS = Counter("pitwall_rollbacks_total", "Automatic rollbacks", ["namespace", "product", "version"])
LEADER = Gauge("pitwall_leader", "1 when this replica is the active one")
GC_PAUSE = Histogram(
    "pitwall_gc_pause_seconds",
    "Pauses of Python's cyclic garbage collector by generation "
    "(they stop the event loop, and every probe due meanwhile)",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


_gc_started = [0.0]


def _time_collection(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        GC_PAUSE.labels(str(info["generation"])).observe(time.perf_counter() - _gc_started[0])


def watch_gc() -> None:
    """Time every collection (``gc.callbacks``): a full collection over a large heap is the
    kind of stall that delays probes, and this shows it without a profiler."""
    if _time_collection not in gc.callbacks:
        gc.callbacks.append(_time_collection)


# Expositions written by hand after the registry's (the per-probe series: probes.telemetry),
# for what has too many series for prometheus_client's generic, per-sample formatting.
EXPOSITIONS: list[Callable[[], bytes]] = []


def exposition() -> bytes:
    """The whole /metrics page: the registry's metrics, then the hand-written expositions."""
    return b"".join([generate_latest(), *(render() for render in list(EXPOSITIONS))])


TASK_CRASHES = Counter(
    "pitwall_task_crashes_total",
    "Supervised tasks that ended with an exception (or, for "
    "long-lived loops, at all); a long-lived one also fails /healthz",
    ["task"],
)


class HealthState:
    """What /healthz and /readyz report."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.ready = False
        self.heartbeat = time.monotonic()
        self.max_silence = 120.0
        self.failed: dict[str, str] = {}  # long-lived task -> how it ended (supervise.py)
        # Extra facts /healthz shows without changing its verdict (probes.overload: the engine's
        # overload; restarting an overloaded operator would only put it further behind).
        self.details: dict[str, Callable[[], dict]] = {}

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    def fail(self, task: str, why: str) -> None:
        self.failed[task] = why

    @property
    def alive(self) -> bool:
        return not self.failed and time.monotonic() - self.heartbeat < self.max_silence


HEALTH = HealthState()


def app() -> web.Application:
    """/healthz, /readyz and /metrics. Served by :class:`Server` on a thread of its own: nothing
    here may touch the operator's event loop (HEALTH and the collectors only read numbers)."""

    async def healthz(_request: web.Request) -> web.Response:
        details = {name: read() for name, read in HEALTH.details.copy().items()}
        if HEALTH.alive:
            return web.json_response({"status": "ok", **details})
        if HEALTH.failed:
            return web.json_response({"status": "failed", "tasks": HEALTH.failed, **details}, status=503)
        return web.json_response({"status": "stuck", **details}, status=503)

    async def readyz(_request: web.Request) -> web.Response:
        return web.json_response({"ready": HEALTH.ready}, status=200 if HEALTH.ready else 503)

    async def metrics(_request: web.Request) -> web.Response:
        # Rendered on this server's own loop (a few tens of ms of CPU at 5,000 probes), never
        # waiting for the operator's.
        response = web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})
        # gzip when the scraper accepts it (Prometheus does): a twentieth of the bytes, compressed
        # by aiohttp in its executor (zlib lets go of the GIL).
        response.enable_compression()
        return response

    application = web.Application()
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/readyz", readyz)
    application.router.add_get("/metrics", metrics)
    return application


class Server:
    """:func:`app` on a thread of its own with its own event loop.

    On the operator's loop a scrape waited for that loop several times (accept, read, the
    rendered page back, write): with 5,000 probes on a loaded 2-core machine the loop runs
    late and a scrape took 0.6-2.4 s, longest exactly when the metrics matter. Here it waits only
    for its share of the GIL, and /healthz answers "stuck" (503) instead of timing out when the
    operator's loop is stuck."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen, or raise what stopped it (a port in use); blocks until then."""
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="pitwall-metrics", daemon=True
        )
        self._thread.start()
        started.result(timeout=60)

    def _run(self, started: concurrent.futures.Future) -> None:
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app(), access_log=None)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, self.host, self.port).start())
        except BaseException as exc:
            started.set_exception(exc)
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        self._loop = loop
        started.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def cleanup(self) -> None:
        """Stop listening (the name of aiohttp's ``AppRunner.cleanup``, which this replaced)."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 30)


async def serve(host: str, port: int) -> Server:
    server = Server(host, port)
    await asyncio.to_thread(server.start)
    return server


LOOP_LAG = Histogram(
    "pitwall_event_loop_lag_seconds",
    "How late a 100 ms timer fires on the event loop (time when nothing else could run)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


LOOP_BUSY_LAG = Histogram(
    "pitwall_event_loop_busy_lag_seconds",
    "The part of the event loop's lag spent running "
    "code on the loop's own thread (a long callback, a garbage collection); not the time the "
    "machine gave the process no CPU",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


async def loop_lag(interval: float = 0.1) -> None:
    """Sample the event loop's responsiveness: every stall (a long callback, a full garbage
    collection, the GIL held by another thread, no CPU from a loaded machine) shows up in
    ``pitwall_event_loop_lag_seconds``, whatever caused it.

    ``pitwall_event_loop_busy_lag_seconds`` keeps only what Pitwall's own code is to blame for:
    the lag, but at most the CPU time the loop's thread used meanwhile. A callback that runs
    300 ms shows as 300 ms in both; 300 ms without CPU on a busy node shows only in the first.
    """
    loop = asyncio.get_running_loop()
    while True:
        planned = loop.time() + interval
        cpu = time.thread_time()
        await asyncio.sleep(interval)
        lag = max(0.0, loop.time() - planned)
        LOOP_LAG.observe(lag)
        LOOP_BUSY_LAG.observe(min(lag, time.thread_time() - cpu))


async def heartbeat(interval: float = 10.0) -> None:
    """Proves the event loop is not stuck (``/healthz`` fails when this stops)."""
    while True:
        HEALTH.beat()
        await asyncio.sleep(interval)
