"""The operator's process-wide state: settings, the API client, watch caches and queues."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from typing import TYPE_CHECKING, Protocol

from . import conditions as cond
from . import egress, logsearch
from .controller import Store, WorkQueue
from .durations import rfc3339
from .floors import Floors
from .floors import build as build_floors
from .kube import Kube
from .supervise import spawn
from .vocabulary import LABEL_MANAGED_BY, LABEL_PRODUCT, PITWALL_KINDS

if TYPE_CHECKING:  # the services' types; the services themselves are created by ``wiring``
    from .alerts.reconcile import AlertService
    from .incidents.reconcile import IncidentService
    from .maintenance.reconcile import MaintenanceService
    from .probes.monitor import Monitor
    from .products.contributions import ProductHooks
    from .products.notices import SunsetService
    from .shards import Shards
    from .statuspage.server import StatusPage
    from .traffic.service import TrafficService

log = logging.getLogger("pitwall.runtime")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LIST_PAGE = 500  # objects per page of the start-up listing
WATCHED_KINDS = (*PITWALL_KINDS, "Deployment", "Service", "EndpointSlice")
# What the watches select (kopf's handlers use the same selectors, see handlers.py).
WATCH_SELECTORS = {
    "Deployment": f"{LABEL_MANAGED_BY}=pitwall",
    "Service": LABEL_PRODUCT,
    "EndpointSlice": LABEL_PRODUCT,
}


def parse_rewrite(text: str | None) -> list[tuple[IPNetwork, IPNetwork]]:
    """``10.244.0.0/16=127.244.0.0/16,...`` -> [(from, to)]; prefixes must have equal sizes."""
    rules = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        src, _, dst = part.partition("=")
        src_net, dst_net = ipaddress.ip_network(src.strip()), ipaddress.ip_network(dst.strip())
        if src_net.prefixlen != dst_net.prefixlen:
            raise ValueError(f"endpoint rewrite {part!r}: both sides need the same prefix length")
        rules.append((src_net, dst_net))
    return rules


def rewrite_address(address: str, rules) -> str:
    ip = ipaddress.ip_address(address)
    for src, dst in rules:
        if ip in src:
            return str(dst.network_address + (int(ip) - int(src.network_address)))
    return address


@dataclass
class Settings:
    namespaces: list[str] | None = None  # None: every namespace
    target_mode: str = "auto"  # auto | service | endpoints
    endpoint_rewrite: str | None = None  # e.g. 10.244.0.0/16=127.244.0.0/16
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8080
    statuspage_host: str = "0.0.0.0"
    statuspage_port: int = 8081  # 0 disables
    internal_port: int = 8082  # internal view; 0 disables
    internal_token: str | None = None
    resync_seconds: float = 300.0
    image: str = "ghcr.io/pitwall-dev/pitwall:0.1.0"
    allow_networks: str | None = None  # probe address policy allowlist
    deny_networks: str | None = None
    webhook_port: int = 0  # admission webhook (0 disables)
    webhook_cert: str | None = None
    webhook_key: str | None = None
    leader_election: bool = False
    lease_namespace: str = "default"
    lease_duration: float = 15.0
    probe_shards: int = 0  # shards.py: probes split over replicas (0: off)
    probe_concurrency: int = 100  # probe runs in flight at once (probes.monitor.CONCURRENCY)
    # Steady probe status writes a second, all probes together (probes.monitor.steady_interval):
    # each steady write costs the operator about what 15 checks cost, so 10 (bench/results/probes.md).
    status_writes_per_second: float = 10.0
    gc_freeze_seconds: float = 10.0  # heap.py: collect + freeze this often; 0 disables
    floors: Floors = field(default_factory=Floors)  # floors.py: operator-wide minimum durations
    # traffic/: the one Prometheus data source (read-only; None: no traffic figures)
    prometheus_url: str | None = None
    prometheus_secret: str | None = None  # namespace/name: keys token, or username + password
    prometheus_ca_file: str | None = None
    prometheus_insecure: bool = False
    prometheus_timeout: float = 10.0
    prometheus_qps: float = 5.0  # bounded query rate (queries per second)
    traffic_interval: float = 30.0  # seconds between traffic cycles
    traffic_write_every: float = 60.0  # status.traffic at most this often (unless its state changes)
    log_search_url: str | None = None  # e.g. https://kibana/...?q={correlationId}

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        env = os.environ
        settings = cls(
            target_mode=env.get("PITWALL_TARGET_MODE", "auto"),
            endpoint_rewrite=env.get("PITWALL_ENDPOINT_REWRITE") or None,
            image=env.get("PITWALL_IMAGE", cls.image),
            internal_token=env.get("PITWALL_INTERNAL_TOKEN") or None,
            allow_networks=env.get("PITWALL_PROBE_ALLOW") or None,
            deny_networks=env.get("PITWALL_PROBE_DENY") or None,
            lease_namespace=env.get("POD_NAMESPACE") or "default",
            webhook_cert=env.get("PITWALL_WEBHOOK_CERT") or None,
            webhook_key=env.get("PITWALL_WEBHOOK_KEY") or None,
            lease_duration=float(env.get("PITWALL_LEASE_DURATION", "15")),
            probe_shards=int(env.get("PITWALL_PROBE_SHARDS", "0") or 0),
            probe_concurrency=int(env.get("PITWALL_PROBE_CONCURRENCY", "100") or 100),
            status_writes_per_second=float(
                env.get("PITWALL_STATUS_WRITES_PER_SECOND") or cls.status_writes_per_second
            ),
            resync_seconds=float(env.get("PITWALL_RESYNC_SECONDS", "300")),
            gc_freeze_seconds=float(env.get("PITWALL_GC_FREEZE_SECONDS", "10")),
            floors=build_floors(overrides.pop("floor_flags", None) or {}, env),
            prometheus_url=env.get("PITWALL_PROMETHEUS_URL") or None,
            prometheus_secret=env.get("PITWALL_PROMETHEUS_SECRET") or None,
            prometheus_ca_file=env.get("PITWALL_PROMETHEUS_CA_FILE") or None,
            prometheus_insecure=env.get("PITWALL_PROMETHEUS_INSECURE", "") in ("1", "true"),
            prometheus_timeout=float(env.get("PITWALL_PROMETHEUS_TIMEOUT", "10")),
            prometheus_qps=float(env.get("PITWALL_PROMETHEUS_QPS", "5")),
            traffic_interval=float(env.get("PITWALL_TRAFFIC_INTERVAL", "30")),
            traffic_write_every=float(env.get("PITWALL_TRAFFIC_WRITE_EVERY", "60")),
            log_search_url=env.get("PITWALL_LOG_SEARCH_URL") or None,
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(settings, key, value)
        logsearch.check(settings.log_search_url)  # ValueError: pitwall run refuses to start
        return settings

    @property
    def min_probe_interval(self) -> float:
        """The operator-wide floor on probe intervals (probes.monitor reads it)."""
        return self.floors.probe_interval

    @min_probe_interval.setter
    def min_probe_interval(self, seconds: float) -> None:
        self.floors = replace(self.floors, probe_interval=seconds)

    @property
    def in_cluster(self) -> bool:
        return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))

    @property
    def resolved_target_mode(self) -> str:
        if self.target_mode != "auto":
            return self.target_mode
        return "service" if self.in_cluster else "endpoints"


class Service(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass
class Runtime:
    kube: Kube
    settings: Settings
    stores: dict[str, Store] = field(default_factory=dict)
    queues: dict[str, WorkQueue] = field(default_factory=dict)
    # The long-lived services, set by ``wiring.register``.
    products: ProductHooks = field(init=False)
    monitor: Monitor = field(init=False)  # the probe engine, for Probes and Backends
    alerts: AlertService = field(init=False)
    maintenance: MaintenanceService = field(init=False)
    incidents: IncidentService | None = None  # opens/resolves Incidents, sends their notices
    sunset: SunsetService | None = None  # delivers the products' sunset notices (the outbox)
    statuspage: StatusPage | None = None  # None when both its ports are 0
    traffic: TrafficService | None = None  # traffic/: None without --prometheus-url
    shards: Shards | None = None  # this replica's probe shards (--probe-shards)
    _written: dict = field(default_factory=dict)
    _tasks: list = field(default_factory=list)
    _started: set = field(default_factory=set)
    _synced: bool = False

    def __post_init__(self) -> None:
        for kind in WATCHED_KINDS:
            self.stores.setdefault(kind, Store(kind)).subscribe(partial(self._echoed, kind))
        self.rewrite_rules = parse_rewrite(self.settings.endpoint_rewrite)

    @cached_property
    def egress(self) -> egress.Policy:
        """The one egress policy for every outbound request: probes, receivers, notices."""
        credentials = getattr(self.kube, "credentials", None)
        return egress.Policy.for_operator(self.settings, getattr(credentials, "host", None))

    def services(self, *, leader: bool) -> list[Service]:
        """What runs while this replica leads (``leader``), or on every replica (the status page)."""
        if not leader:
            return [self.statuspage] if self.statuspage is not None else []
        names = ("monitor", "alerts", "maintenance", "traffic", "incidents", "sunset")
        return [s for s in (getattr(self, name, None) for name in names) if s is not None]

    def register(
        self, kind: str, reconcile: Callable[[str, str], Awaitable[float | None]], workers: int = 4
    ) -> None:
        self.queues[kind] = WorkQueue(kind, reconcile, workers=workers)

    def enqueue(self, kind: str, namespace: str, name: str, after: float = 0.0) -> None:
        queue = self.queues.get(kind)
        if queue is not None:
            queue.add((namespace, name), after)

    def owns_probe(self, uid: str | None) -> bool:
        """Whether this replica runs the Probe with ``uid``: always, unless probes are sharded
        (then only those of the shards whose Lease it holds)."""
        return self.shards is None or self.shards.owns(uid)

    def watches(self, namespace: str) -> bool:
        return self.settings.namespaces is None or namespace in self.settings.namespaces

    async def sync_caches(self) -> None:
        """List every watched kind once before any reconcile (client-go's WaitForCacheSync).

        Deciding from half-filled caches does damage: an AlertRule that sees none of its
        Probes resolves their alerts, a window that sees no products takes its page down.
        """
        if self._synced:  # once per process: the watches keep the caches current afterwards
            return
        self._synced = True
        namespaces: list[str | None] = [*self.settings.namespaces] if self.settings.namespaces else [None]
        for kind in WATCHED_KINDS:
            for namespace in namespaces:
                # A page at a time: 5,000 full Probes at once would be a peak of memory the
                # process keeps (the allocator rarely gives it back), for a cache of slim copies.
                async for page in self.kube.pages(
                    kind, namespace, label_selector=WATCH_SELECTORS.get(kind), limit=LIST_PAGE
                ):
                    for obj in page:
                        self.stores[kind].prime(obj)

    def start(self, kinds: tuple[str, ...] | None = None) -> None:
        """Start the work queues of ``kinds`` (all by default) that are not running yet: a
        sharded replica starts the Probe queue first and the rest when it becomes the leader."""
        for kind, queue in self.queues.items():
            if (kinds is None or kind in kinds) and kind not in self._started:
                self._started.add(kind)
                queue.start()
        if not self._tasks:
            self._tasks.append(spawn(self._resync(), name="resync"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for queue in self.queues.values():
            await queue.stop()

    async def _resync(self) -> None:
        """Reconcile everything now and then: heals anything a lost event left behind."""
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            for kind, queue in self.queues.items():
                if kind not in self._started:
                    continue
                for key in self.stores[kind].keys():
                    queue.add(key)

    # -- status writes -------------------------------------------------------------------------
    async def write_status(self, obj: dict, status: dict, wanted: list[cond.Condition]) -> bool:
        """Merge conditions and write ``status`` to ``/status`` only when it changed.

        Pitwall is the only writer of its kinds' status, so its own last write (for the same
        uid) is the freshest base even before the watch echoes it back. ``observedGeneration``
        is set here, for every kind. Returns True when a write happened.
        """
        meta = obj["metadata"]
        key = (obj["kind"], meta.get("namespace"), meta["name"])
        last = self._written.get(key)
        base = last[1] if last and last[0] == meta.get("uid") else (obj.get("status") or {})
        generation = meta.get("generation")
        status = {
            **status,
            "observedGeneration": generation,
            "conditions": cond.merge(base.get("conditions"), wanted, generation),
        }
        if _subset_equal(status, base):
            return False
        # Only what changed since that base: a probe's status is ~4 KB, of which a steady write
        # changes its counts, numbers and last run (issue 18: the TLS send of whole statuses was
        # a third of a write's cost). Merge-patch semantics make the result the same.
        result = await self.kube.patch_status(
            obj["kind"], meta.get("namespace"), meta["name"], changed(status, base), metadata_only=True
        )
        if result is None:
            return False
        version = (result.get("metadata") or {}).get("resourceVersion")
        store = self.stores.get(obj["kind"])
        cached = store.get(meta.get("namespace"), meta["name"]) if store is not None else None
        if cached is not None and version and cached["metadata"].get("resourceVersion") == version:
            self._written.pop(key, None)  # the watch was quicker than this answer
        else:
            self._written[key] = (meta.get("uid"), status, version)
        return True

    def _echoed(self, kind: str, event_type: str, obj: dict) -> None:
        """The watch brought back what Pitwall wrote: the cache has it now, so the written copy
        goes (5,000 probes would otherwise keep a second, larger copy of every status)."""
        meta = obj.get("metadata") or {}
        key = (kind, meta.get("namespace"), meta.get("name"))
        last = self._written.get(key)
        if last is not None and (
            event_type == "DELETED" or (last[2] and last[2] == meta.get("resourceVersion"))
        ):
            del self._written[key]

    def status_of(self, obj: dict) -> dict:
        """The object's status as Pitwall last wrote it, even before the watch echoes it back.

        Reconcilers that carry state in status (alerts, notices, probe counts) must read it
        here: deciding from a stale watch copy would repeat what was already done.
        """
        meta = obj["metadata"]
        last = self._written.get((obj["kind"], meta.get("namespace"), meta["name"]))
        if last and last[0] == meta.get("uid"):
            return {**(obj.get("status") or {}), **last[1]}
        return obj.get("status") or {}

    def forget(self, kind: str, namespace: str, name: str) -> None:
        self._written.pop((kind, namespace, name), None)

    async def event(self, obj: dict, reason: str, message: str, warning: bool = False) -> None:
        await self.kube.event(obj, reason, message, type_="Warning" if warning else "Normal")


def changed(want: dict, have: dict) -> dict:
    """The merge patch (RFC 7386) that takes ``have`` to what patching it with ``want`` gives:
    ``want``'s keys whose values differ, objects present on both sides compared key by key,
    anything else (lists: conditions) sent whole when it differs. A ``None`` (remove) is sent
    only for a key ``have`` holds a value for.

    ``have`` is what Pitwall last wrote (or the watch's copy): Pitwall is its kinds' only status
    writer, so a key equal there is equal on the server and need not travel again.
    """
    out: dict = {}
    for key, value in want.items():
        other = have.get(key)
        if key == "conditions" and cond.same(value, other):
            continue
        if isinstance(value, dict) and isinstance(other, dict):
            inner = changed(value, other)
            if inner:
                out[key] = inner
        elif value != other:
            out[key] = value
    return out


def _subset_equal(want: dict, have: dict) -> bool:
    """Every key of ``want`` equals ``have``'s (conditions compared by content)."""
    for key, value in want.items():
        other = have.get(key)
        if key == "conditions":
            if not cond.same(value, other):
                return False
        elif value != other:
            return False
    return True


__all__ = ["Runtime", "Settings", "rfc3339", "parse_rewrite", "rewrite_address"]
