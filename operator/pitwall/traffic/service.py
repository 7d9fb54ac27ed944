"""The traffic cycle: every ``--traffic-interval``, ask Prometheus about every ApiProduct that
declares ``spec.traffic``, keep the figures for the alert rules and rollout analysis, and hand
the products' reconciler a coalesced ``status.traffic``.

Query load: products of the same shape (promql.Shape) are asked together, 100 to a batch, with
the seven queries of :func:`promql.queries` per batch: 500 products of one shape cost 35
queries a cycle, whatever their versions, consumers or routes. Prometheus failing makes every
product's traffic ``unknown`` (with the reason) rather than zero: no alert resolves and no
rollout passes on missing data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge

from .. import durations
from ..api.apiproduct import Traffic
from ..errors import InvalidSpec, TrafficError
from ..supervise import spawn
from . import figures as fig
from . import promql
from .source import Config, Source

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("pitwall.traffic")
CYCLE_SECONDS = Gauge("pitwall_traffic_cycle_seconds", "Duration of the last traffic cycle")
CYCLE_QUERIES = Gauge("pitwall_traffic_cycle_queries", "Prometheus queries in the last traffic cycle")

Key = tuple[str, str]  # (namespace, name) of an ApiProduct


@dataclass(frozen=True)
class Reading:
    """A product's latest figures (``error``: why there are none), read at ``at``."""

    figures: fig.Figures | None
    error: str | None
    at: datetime
    shape: promql.Shape
    degraded_ratio: float


class TrafficService:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        s = rt.settings
        self.config = Config(
            url=s.prometheus_url or "",
            timeout=s.prometheus_timeout,
            qps=s.prometheus_qps,
            ca_file=s.prometheus_ca_file,
            insecure=s.prometheus_insecure,
            secret=s.prometheus_secret,
        )
        self.interval = s.traffic_interval
        self.write_every = s.traffic_write_every
        self.source: Source | None = None
        self.readings: dict[Key, Reading] = {}
        self.published: dict[Key, tuple[dict, datetime]] = {}  # the coalesced status.traffic
        self._task: asyncio.Task | None = None
        self._cache: dict[Any, tuple[float, dict[str, float]]] = {}
        self._refused: dict[Key, str] = {}  # products whose spec.traffic the model refuses: why
        self.cycles = 0

    @property
    def enabled(self) -> bool:
        return bool(self.config.url)

    async def start(self) -> None:
        if not self.enabled:
            return
        self.source = Source(self.config, self.rt.egress)
        self._task = spawn(self._loop(), name="traffic")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.source is not None:
            await self.source.close()
            self.source = None

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.cycle()
            except Exception:  # a cycle must never end the loop: the next one retries
                log.exception("traffic cycle failed")
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def _auth(self) -> tuple[str, str] | None:
        """Credentials from the Secret (``token``, or ``username`` and ``password``)."""
        if not self.config.secret:
            return None
        namespace, _, name = self.config.secret.partition("/")
        if not name:
            raise TrafficError(f"--prometheus-secret {self.config.secret!r}: write namespace/name")
        try:
            token = await self.rt.kube.read_secret(namespace, name, "token", use="traffic")
            if token:
                return ("bearer", token.strip())
            user = await self.rt.kube.read_secret(namespace, name, "username", use="traffic")
            password = await self.rt.kube.read_secret(namespace, name, "password", use="traffic")
        except InvalidSpec as exc:
            raise TrafficError(f"Prometheus credentials: {exc.message}") from None
        if user is None or password is None:
            raise TrafficError(
                f"Prometheus credentials: Secret {self.config.secret} needs the key token, "
                "or username and password"
            )
        return ("basic", f"{user.strip()}:{password.strip()}")

    def products(self) -> dict[Key, tuple[dict, Traffic]]:
        """ApiProducts that declare spec.traffic, in the namespaces this operator watches, with
        their ``spec.traffic`` parsed (one the model refuses is left out, and logged once)."""
        out = {}
        for product in self.rt.stores["ApiProduct"].list():
            meta = product["metadata"]
            if self.rt.watches(meta["namespace"]):
                key = (meta["namespace"], meta["name"])
                traffic = self._traffic(key, product)
                if traffic is not None:
                    out[key] = (product, traffic)
        return out

    def _traffic(self, key: Key, product: dict | None) -> Traffic | None:
        """``spec.traffic`` of a stored product through the model (None: none, or refused)."""
        try:
            traffic = promql.traffic_of((product or {}).get("spec"))
        except InvalidSpec as exc:
            if self._refused.get(key) != exc.message:  # once per problem, not every cycle
                log.warning("traffic of ApiProduct %s/%s not read: %s", *key, exc.message)
            self._refused[key] = exc.message
            return None
        self._refused.pop(key, None)
        return traffic

    async def cycle(self) -> None:
        """One round: ask, keep, publish what is due, wake the products and rules concerned."""
        assert self.source is not None
        started = time.monotonic()
        sent_before = self.source.sent
        now = durations.now()
        products = self.products()
        groups: dict[promql.Shape, dict[str, list[Key]]] = {}
        for key, (_, traffic) in products.items():
            shape = promql.shape_of(traffic)
            groups.setdefault(shape, {}).setdefault(promql.product_value(key[1], traffic), []).append(key)
        error: str | None = None
        try:
            self.source.set_auth(await self._auth())
        except TrafficError as exc:
            error = str(exc)
        jobs = [(shape, batch) for shape, values in groups.items() for batch in promql.batches(values)]
        answers = (
            await asyncio.gather(*(self._ask(shape, batch) for shape, batch in jobs))
            if error is None
            else [error] * len(jobs)
        )
        for (shape, batch), answer in zip(jobs, answers, strict=True):
            for value in batch:
                for key in groups[shape][value]:
                    ratio = products[key][1].degraded_error_ratio
                    if isinstance(answer, str):
                        reading = Reading(None, answer, now, shape, ratio)
                    else:
                        reading = Reading(answer.get(value, fig.Figures()), None, now, shape, ratio)
                    self.readings[key] = reading
                    self._publish(key, reading, now)
        for key in list(self.readings):
            if key not in products:
                self.readings.pop(key, None)
                self.published.pop(key, None)
        for key, (product, _) in products.items():  # rollouts judged by traffic: judge with these figures
            if ((product["spec"].get("rollout") or {}).get("analysis") or {}).get("traffic"):
                self.rt.enqueue("ApiProduct", *key)
        for namespace in {ns for ns, _ in products}:
            for rule in self.rt.stores["AlertRule"].list(namespace):
                if (rule.get("spec") or {}).get("traffic") is not None:
                    self.rt.enqueue("AlertRule", namespace, rule["metadata"]["name"])
        self.cycles += 1
        CYCLE_SECONDS.set(time.monotonic() - started)
        CYCLE_QUERIES.set(self.source.sent - sent_before)

    async def _ask(self, shape: promql.Shape, batch: list[str]) -> dict[str, fig.Figures] | str:
        assert self.source is not None
        names = list(promql.queries(shape, batch).items())
        try:
            results = await asyncio.gather(*(self.source.query(q) for _, q in names))
        except TrafficError as exc:
            log.warning("traffic: %s", exc)
            return str(exc)
        return fig.assemble(shape, dict(zip((n for n, _ in names), results, strict=True)))

    def _publish(self, key: Key, reading: Reading, now: datetime) -> None:
        new = fig.status(
            reading.figures,
            at=now,
            window=reading.shape.window,
            top=reading.shape.top,
            degraded_ratio=reading.degraded_ratio,
            error=reading.error,
        )
        written = self.published.get(key)
        if fig.due(
            written[0] if written else None,
            written[1] if written else None,
            new,
            now,
            reading.degraded_ratio,
            self.write_every,
        ):
            self.published[key] = (new, now)
            self.rt.enqueue("ApiProduct", *key)

    # -- what the reconcilers read ----------------------------------------------------------------
    def status_for(self, namespace: str, name: str) -> dict | None:
        """The coalesced ``status.traffic`` for the product (None before the first cycle)."""
        published = self.published.get((namespace, name))
        return published[0] if published else None

    def reading(self, namespace: str, name: str) -> Reading | None:
        """The freshest figures (not coalesced): for alert rules and rollout analysis."""
        return self.readings.get((namespace, name))

    async def failed_requests(self, keys: Iterable[Key], period: str) -> dict[Key, float]:
        """Failed requests (server errors and timeouts) of each product over ``period``; raises
        TrafficError. Answers are reused for one cycle interval."""
        if self.source is None:
            raise TrafficError("no Prometheus configured (--prometheus-url)")
        return await self._per_product(
            keys, lambda shape, batch: promql.failed_requests(shape, batch, period), ("failed", period)
        )

    async def calls(self, keys: Iterable[Key], period: str, offset: str = "") -> dict[Key, float]:
        """Requests of each product over ``period`` (``offset``: e.g. 1w, a week earlier)."""
        if self.source is None:
            raise TrafficError("no Prometheus configured (--prometheus-url)")
        return await self._per_product(
            keys, lambda shape, batch: promql.calls(shape, batch, period, offset), ("calls", period, offset)
        )

    async def _per_product(self, keys: Iterable[Key], build: Any, tag: tuple) -> dict[Key, float]:
        assert self.source is not None
        stores = self.rt.stores["ApiProduct"]
        groups: dict[promql.Shape, dict[str, list[Key]]] = {}
        for key in keys:
            traffic = self._traffic(key, stores.get(*key))
            if traffic is None:
                continue
            shape = promql.shape_of(traffic)
            groups.setdefault(shape, {}).setdefault(promql.product_value(key[1], traffic), []).append(key)
        out: dict[Key, float] = {}
        for shape, values in groups.items():
            for batch in promql.batches(values):
                cache_key = (*tag, shape, tuple(batch))
                cached = self._cache.get(cache_key)
                if cached is not None and time.monotonic() - cached[0] < self.interval:
                    totals = cached[1]
                else:
                    totals = {}
                    for sample in await self.source.query(build(shape, batch)):
                        name = str((sample.get("metric") or {}).get(shape.product, ""))
                        totals[name] = totals.get(name, 0.0) + fig.value(sample)
                    self._cache[cache_key] = (time.monotonic(), totals)
                for value in batch:
                    for key in values[value]:
                        out[key] = totals.get(value, 0.0)
        return out
