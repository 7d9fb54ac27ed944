"""Request metrics in the shape ``spec.traffic`` defaults to, for aiohttp apps Pitwall ships
(the demo API) and the tests' traffic servers: what a real API's exporter would publish.

``http_requests_total{product, version, consumer, route, code}`` and the histogram
``http_request_duration_seconds{product, version, route}``. ``route`` is the aiohttp route's
template (``/accounts/{id}/balance``), never the raw path, so ids in paths do not explode the
label space; the consumer comes from the ``X-Consumer`` header (what an API gateway adds),
``anonymous`` without it. Each app gets its own registry: several apps in one process
(tests) do not share counters.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CONSUMER = re.compile(r"^[-A-Za-z0-9_.]{1,63}$")
REGISTRY = web.AppKey("traffic_registry", CollectorRegistry)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RequestMetrics:
    def __init__(self, product: str, version: str) -> None:
        self.product, self.version = product, version
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "HTTP requests served",
            ["product", "version", "consumer", "route", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration",
            ["product", "version", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    def observe(self, route: str, code: int, seconds: float, consumer: str = "anonymous") -> None:
        self.requests.labels(self.product, self.version, consumer, route, str(code)).inc()
        self.duration.labels(self.product, self.version, route).observe(seconds)

    def middleware(self) -> Any:
        @web.middleware
        async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path == "/metrics" or request.path.startswith("/_admin"):
                return await handler(request)
            started = time.perf_counter()
            code = 500
            try:
                response = await handler(request)
                code = response.status
                return response
            except web.HTTPException as exc:
                code = exc.status
                raise
            finally:
                info = request.match_info.route.resource
                route = info.canonical if info is not None else "unmatched"
                consumer = request.headers.get("X-Consumer", "anonymous")
                self.observe(
                    route,
                    code,
                    time.perf_counter() - started,
                    consumer if _CONSUMER.match(consumer) else "invalid",
                )

        return measure

    async def serve(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


def instrument(app: web.Application, product: str, version: str) -> RequestMetrics:
    """Count ``app``'s requests and serve them at ``GET /metrics``."""
    metrics = RequestMetrics(product, version)
    app.middlewares.append(metrics.middleware())
    app.router.add_get("/metrics", metrics.serve)
    return metrics
