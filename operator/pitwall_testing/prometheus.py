"""A real Prometheus (Debian's ``prometheus``) and real API servers with known traffic, for
tests, benchmarks and ``make dev``-like demos.

:class:`Prometheus` starts ``prometheus`` on a free port scraping the given targets every
``scrape_interval``; ``backfill`` lays OpenMetrics samples into its TSDB first with ``promtool
tsdb create-blocks-from openmetrics`` (last week's traffic). :class:`TrafficServer` is an aiohttp
API (instrumented by :mod:`pitwall.traffic.exporter`, or as Istio's sidecars report it:
:class:`IstioMetrics`) with a load generator calling it at a fixed rate with a known share of
failures, run on a thread of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pitwall.traffic.exporter import instrument

from .cluster import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


class Prometheus:
    """``scrape_configs`` (Prometheus' own shape) replace the one static job of ``targets``;
    ``port`` 0 takes a free one."""

    def __init__(
        self,
        workdir: Path,
        targets: list[str],
        scrape_interval: str = "1s",
        *,
        port: int = 0,
        scrape_configs: list[dict] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = workdir / "tsdb"
        self.data.mkdir(parents=True, exist_ok=True)
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.scrape_configs = scrape_configs or [
            {"job_name": "api", "static_configs": [{"targets": self.targets}]}
        ]
        self.proc: subprocess.Popen | None = None

    def backfill(self, openmetrics: str) -> None:
        """Write ``openmetrics`` (ending in ``# EOF``) into the TSDB as blocks (before start)."""
        source = self.workdir / "backfill.om"
        source.write_text(openmetrics)
        subprocess.run(
            [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(source), str(self.data)],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> Prometheus:
        config = self.workdir / "prometheus.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {
                        "scrape_interval": self.scrape_interval,
                        "evaluation_interval": self.scrape_interval,
                    },
                    "scrape_configs": self.scrape_configs,
                }
            )
        )
        log = open(self.workdir / "prometheus.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=30d",
                "--query.lookback-delta=30s",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "prometheus exited: " + (self.workdir / "prometheus.log").read_text()[-2000:]
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("prometheus not ready within 60s")

    def query(self, promql: str) -> list[dict]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as answer:
            return json.loads(answer.read())["data"]["result"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class IstioMetrics:
    """A request counted as Istio reports it: ``istio_requests_total`` and the histogram
    ``istio_request_duration_milliseconds`` (milliseconds), by ``destination_canonical_service``
    and ``_revision``, ``source_workload`` (the caller) and ``response_code``, once by the
    serving sidecar (``reporter="destination"``) and once by the caller's (``"source"``)."""

    BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

    def __init__(self, app: web.Application, product: str, version: str) -> None:
        self.product, self.version = product, version
        self.registry = CollectorRegistry()
        names = ["reporter", "destination_canonical_service", "destination_canonical_revision"]
        self.requests = Counter(
            "istio_requests", "Requests", [*names, "source_workload", "response_code"], registry=self.registry
        )
        self.duration = Histogram(
            "istio_request_duration_milliseconds",
            "Request duration",
            [*names, "response_code"],
            buckets=self.BUCKETS_MS,
            registry=self.registry,
        )
        app.middlewares.append(self.middleware)
        app.router.add_get("/metrics", self.serve)

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if request.path == "/metrics":
            return await handler(request)
        started = time.perf_counter()
        response = await handler(request)
        millis = (time.perf_counter() - started) * 1000
        caller = request.headers.get("X-Consumer", "unknown")
        for reporter in ("destination", "source"):
            key = (reporter, self.product, self.version)
            self.requests.labels(*key, caller, str(response.status)).inc()
            self.duration.labels(*key, str(response.status)).observe(millis)
        return response

    async def serve(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


@dataclass
class TrafficServer:
    """An API version serving ``rps`` calls a second, ``error_ratio`` of them answered 500.

    Calls go to ``/orders/{id}`` with ids that change on every call (the route template keeps
    them out of the labels) and ``/orders`` (POST), from the ``consumers`` in turn (X-Consumer).
    ``set(error_ratio=...)`` changes the failures while it runs. ``exporter``: ``pitwall``
    (:mod:`pitwall.traffic.exporter`) or ``istio`` (:class:`IstioMetrics`).
    """

    product: str
    version: str
    rps: float = 20.0
    error_ratio: float = 0.0
    consumers: tuple[str, ...] = ("acme", "globex")
    port: int = field(default_factory=free_port)
    exporter: str = "pitwall"
    served: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name=f"traffic-{self.port}"
        )
        self._counter = itertools.count()
        self._stop: asyncio.Event | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, *, error_ratio: float | None = None, rps: float | None = None) -> None:
        if error_ratio is not None:
            self.error_ratio = error_ratio
        if rps is not None:
            self.rps = rps

    async def _order(self, request: web.Request) -> web.Response:
        n = next(self._counter)
        self.served += 1
        # Deterministic and evenly spread: call n fails when n * ratio crosses a whole number.
        if int((n + 1) * self.error_ratio + 1e-9) > int(n * self.error_ratio + 1e-9):
            self.failed += 1
            return web.json_response({"error": "boom"}, status=500)
        await asyncio.sleep(0.002)
        return web.json_response({"id": request.match_info.get("id", "new")})

    async def _run(self, ready: threading.Event) -> None:
        app = web.Application()
        app.router.add_get("/orders/{id}", self._order)
        app.router.add_post("/orders", self._order)
        if self.exporter == "istio":
            IstioMetrics(app, self.product, self.version)
        else:
            instrument(app, self.product, self.version)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._stop = asyncio.Event()
        ready.set()
        async with ClientSession(timeout=ClientTimeout(total=5)) as http:
            i = 0
            next_at = time.monotonic()
            while not self._stop.is_set():
                if self.rps > 0:
                    consumer = self.consumers[i % len(self.consumers)]
                    url = f"http://{self.target}/orders/{i}" if i % 4 else f"http://{self.target}/orders"
                    method = "GET" if i % 4 else "POST"
                    i += 1
                    try:
                        async with http.request(method, url, headers={"X-Consumer": consumer}) as answer:
                            await answer.read()
                    except Exception:  # noqa: BLE001 - a lost call is only a lost call
                        pass
                    next_at += 1.0 / self.rps
                else:
                    next_at = time.monotonic() + 0.1
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await runner.cleanup()

    def start(self) -> TrafficServer:
        self._thread.start()
        ready = threading.Event()
        self._future = asyncio.run_coroutine_threadsafe(self._run(ready), self._loop)
        if not ready.wait(10):
            raise RuntimeError("traffic server did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            try:
                self._future.result(10)
            except Exception:  # noqa: BLE001
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
