"""The one Prometheus data source: read-only, through the operator's egress policy, rate-bounded.

Configured once for the operator (``--prometheus-url`` and friends, see ``runtime.Settings``),
asked only through the standard HTTP API's ``/api/v1/query`` and ``/api/v1/query_range`` (POST
forms: a batch's product regex may be long). Auth is a bearer token or basic credentials from a
Secret opted in with ``pitwall.dev/use: traffic`` (or ``all``); TLS takes a CA bundle file or,
for development only, no verification.

The query rate is bounded by aiolimiter's ``AsyncLimiter`` (a leaky bucket: ``qps`` queries per
second with a burst of the same size): a small, maintained asyncio library rather than a
hand-written token bucket, and it queues callers instead of failing them, which is what a
cycle of queries wants. At most ``concurrency`` queries are in flight at once.

Every failure is a :class:`pitwall.errors.TrafficError` (``QueryRefused`` when Prometheus
refuses the PromQL), with a message that never carries the credentials.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from dataclasses import dataclass
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from prometheus_client import Counter, Histogram

from .. import egress
from ..errors import QueryRefused, TrafficError

QUERIES = Counter("pitwall_traffic_queries_total", "Queries sent to Prometheus by result", ["result"])
QUERY_SECONDS = Histogram(
    "pitwall_traffic_query_seconds",
    "Prometheus query latency",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@dataclass(frozen=True)
class Config:
    """The operator's Prometheus settings (flags/env, see runtime.Settings)."""

    url: str
    timeout: float = 10.0
    qps: float = 5.0
    concurrency: int = 4
    ca_file: str | None = None
    insecure: bool = False
    secret: str | None = None  # namespace/name of the auth Secret (keys token, or username+password)


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The TLS context for ``https://`` Prometheus: the CA file, or no verification if asked."""
    if config.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if config.ca_file:
        return ssl.create_default_context(cafile=config.ca_file)
    return None


class Source:
    """Read-only Prometheus client. ``auth``: ``("bearer", token)`` or ``("basic", "user:pass")``."""

    def __init__(self, config: Config, policy: egress.Policy, auth: tuple[str, str] | None = None) -> None:
        self.config = config
        self.base = config.url.rstrip("/")
        self.limiter = AsyncLimiter(max(config.qps, 0.01), 1.0)
        self.slots = asyncio.Semaphore(max(1, config.concurrency))
        self.http = egress.client(
            policy,
            verify=tls_context(config),
            timeout=config.timeout,
            max_connections=max(1, config.concurrency),
        )
        self.auth = auth
        self.sent = 0

    def set_auth(self, auth: tuple[str, str] | None) -> None:
        self.auth = auth

    def _headers(self) -> dict[str, str]:
        if not self.auth:
            return {}
        kind, value = self.auth
        if kind == "bearer":
            return {"Authorization": f"Bearer {value}"}
        return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}

    async def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query: the vector result (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        form = {"query": promql}
        if at is not None:
            form["time"] = f"{at:.3f}"
        return await self._ask("/api/v1/query", form)

    async def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query: the matrix result (``[{"metric": {...}, "values": [[t, "v"], ...]}]``)."""
        return await self._ask(
            "/api/v1/query_range",
            {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
        )

    async def _ask(self, path: str, form: dict[str, str]) -> list[dict[str, Any]]:
        async with self.limiter, self.slots:
            self.sent += 1
            with QUERY_SECONDS.time():
                try:
                    response = await self.http.post(self.base + path, data=form, headers=self._headers())
                except egress.Denied as exc:
                    QUERIES.labels("denied").inc()
                    raise TrafficError(f"Prometheus {self.base}: {exc.message}") from None
                except httpx.TimeoutException:
                    QUERIES.labels("timeout").inc()
                    raise TrafficError(
                        f"Prometheus {self.base} did not answer within {self.config.timeout:g}s"
                    ) from None
                except httpx.HTTPError as exc:
                    QUERIES.labels("unreachable").inc()
                    raise TrafficError(
                        f"Prometheus {self.base} is unreachable: {type(exc).__name__}"
                    ) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code in (400, 422) and body.get("errorType") in ("bad_data", "execution"):
            QUERIES.labels("refused").inc()
            raise QueryRefused(
                f"Prometheus refused the query: {str(body.get('error'))[:300]} (query: {form['query'][:300]})"
            )
        if response.status_code != 200 or body.get("status") != "success":
            QUERIES.labels("error").inc()
            what = f"HTTP {response.status_code}" + (
                " (check the credentials Secret)" if response.status_code in (401, 403) else ""
            )
            raise TrafficError(
                f"Prometheus {self.base} answered {what}: {str(body.get('error') or '')[:300]}"
            )
        QUERIES.labels("ok").inc()
        data = body.get("data") or {}
        result = data.get("result")
        return result if isinstance(result, list) else []

    async def close(self) -> None:
        await self.http.aclose()
