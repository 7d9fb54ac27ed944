"""Which reconciler handles which kind, and which keys an event makes stale.

``handlers`` (kopf) calls :func:`route` for every watch event; this module knows the
relationships between kinds (a Deployment belongs to an ApiProduct, a Probe targets one,
a Backend is used by several ...) and enqueues accordingly.
"""

from __future__ import annotations

from functools import partial

from . import logsearch
from .alerts import reconcile as alerts
from .backends import reconcile as backends
from .incidents.reconcile import IncidentService
from .maintenance import reconcile as maintenance
from .probes import reconcile as probes
from .probes.monitor import Monitor
from .products import reconcile as products
from .products.contributions import ProductHooks
from .products.notices import SunsetService
from .runtime import Runtime
from .statuspage import setup as setup_statuspage
from .traffic.service import TrafficService
from .vocabulary import LABEL_PRODUCT


def register(rt: Runtime) -> None:
    """Each kind's reconciler and worker count, and the services they share (one probe engine
    for Probes and Backends)."""
    rt.products = ProductHooks(rt.stores)
    rt.monitor = Monitor(rt)
    rt.alerts = alerts.AlertService(rt.egress, rt)
    rt.maintenance = maintenance.MaintenanceService(rt)
    rt.traffic = TrafficService(rt)
    logsearch.configure(rt.settings.log_search_url)  # correlation ids as links
    rt.incidents = IncidentService(rt)
    rt.sunset = SunsetService(rt)
    rt.register("ApiProduct", partial(products.reconcile, rt), workers=8)
    rt.register("Probe", partial(probes.reconcile, rt), workers=4)
    rt.register("Backend", partial(backends.reconcile, rt), workers=2)
    rt.register("AlertRule", partial(alerts.reconcile, rt), workers=4)
    rt.register("MaintenanceWindow", partial(maintenance.reconcile, rt), workers=2)
    setup_statuspage(rt)


async def start(rt: Runtime, *, leader: bool = True) -> None:
    """Start the services: the leader's work (``leader=True``) or what every replica serves
    (the status page, from its warm caches, leader or not)."""
    for service in rt.services(leader=leader):
        await service.start()


async def stop(rt: Runtime) -> None:
    for service in [*rt.services(leader=False), *rt.services(leader=True)]:
        await service.stop()


_INCIDENT_EVIDENCE = ("ApiProduct", "Probe", "Backend", "MaintenanceWindow", "Incident")


def _names_in(namespace: str, rt: Runtime, kind: str) -> list[str]:
    return [o["metadata"]["name"] for o in rt.stores[kind].list(namespace)]


# What a Probe's steady status write changes (``probes.monitor``: each probe about once a
# minute, its counts, numbers and last run) and nobody reacts to: its own reconcile reads the
# spec, rules and the incident pass read its state and conditions, a product its state. The
# status page, the CLI and the digest read these from the cache when they need them; a Backend
# with ``probeRef`` mirrors the counts and the last run, so it is still told.
STEADY_PROBE_STATUS = frozenset(
    {"consecutiveFailures", "consecutiveSuccesses", "lastRun", "latency", "availability", "history"}
)
_UNTRACKED_METADATA = frozenset({"resourceVersion", "managedFields"})


def steady(previous: dict | None, obj: dict) -> bool:
    """Whether a Probe's watch event ``obj`` differs from the cached ``previous`` only in
    :data:`STEADY_PROBE_STATUS` (or not at all: a re-listing): then it wakes no reconcile.

    At 5,000 probes the monitor writes 20 steady statuses a second, and each echo woke the
    probe's reconcile, every AlertRule of its namespace and an incident pass: a fifth of the
    operator's CPU for nothing (issue 18, bench/results/probes.md).
    """
    if previous is None or previous.get("spec") != obj.get("spec"):
        return False
    before, after = previous.get("metadata") or {}, obj.get("metadata") or {}
    for field in before.keys() | after.keys():
        if field not in _UNTRACKED_METADATA and before.get(field) != after.get(field):
            return False
    before, after = previous.get("status") or {}, obj.get("status") or {}
    for field in before.keys() | after.keys():
        if field not in STEADY_PROBE_STATUS and before.get(field) != after.get(field):
            return False
    return True


def _mirroring(rt: Runtime, namespace: str, probe: str) -> None:
    """The Backends whose ``probeRef`` is ``probe``: they mirror its counts and last run."""
    for backend in rt.stores["Backend"].list(namespace):
        if ((backend.get("spec") or {}).get("probeRef") or {}).get("name") == probe:
            rt.enqueue("Backend", namespace, backend["metadata"]["name"])


def route(rt: Runtime, kind: str, event_type: str | None, obj: dict, previous: dict | None = None) -> None:
    """Enqueue whoever ``obj``'s event may concern; ``previous`` is the cached copy the event
    replaced (None when it is new)."""
    meta = obj.get("metadata", {})
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    if not rt.watches(namespace):
        return
    if kind == "Probe" and event_type in ("MODIFIED", None) and steady(previous, obj):
        _mirroring(rt, namespace, name)
        return
    if kind in ("Deployment", "Service"):
        product = (meta.get("labels") or {}).get(LABEL_PRODUCT)
        if product:
            rt.enqueue("ApiProduct", namespace, product)
        return
    if kind == "EndpointSlice":
        product = (meta.get("labels") or {}).get(LABEL_PRODUCT)
        for probe in rt.stores["Probe"].list(namespace):
            target = (probe.get("spec") or {}).get("target") or {}
            if (target.get("apiProduct") or {}).get("name") == product:
                rt.enqueue("Probe", namespace, probe["metadata"]["name"])
        return
    rt.enqueue(kind, namespace, name)
    if rt.incidents is not None and kind in _INCIDENT_EVIDENCE:
        rt.incidents.poke()  # a verdict (or a person's edit) may have changed
    if kind == "ApiProduct":
        # Probes on it, Backends it uses (their impact), windows and rules that select it.
        for probe in rt.stores["Probe"].list(namespace):
            target = (probe.get("spec") or {}).get("target") or {}
            if (target.get("apiProduct") or {}).get("name") == name:
                rt.enqueue("Probe", namespace, probe["metadata"]["name"])
        for other in ("Backend", "MaintenanceWindow", "AlertRule"):
            for each in _names_in(namespace, rt, other):
                rt.enqueue(other, namespace, each)
    elif kind == "Backend":
        for each in _names_in(namespace, rt, "ApiProduct"):
            rt.enqueue("ApiProduct", namespace, each)
        for each in _names_in(namespace, rt, "AlertRule"):
            rt.enqueue("AlertRule", namespace, each)
    elif kind == "Probe":
        target = ((obj.get("spec") or {}).get("target") or {}).get("apiProduct") or {}
        if target.get("name"):
            rt.enqueue("ApiProduct", namespace, target["name"])  # probe-driven rollback
        for each in _names_in(namespace, rt, "AlertRule"):
            rt.enqueue("AlertRule", namespace, each)
        _mirroring(rt, namespace, name)
    elif kind == "MaintenanceWindow":
        for each in _names_in(namespace, rt, "ApiProduct"):
            rt.enqueue("ApiProduct", namespace, each)
