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


def route(rt: Runtime, kind: str, event_type: str | None, obj: dict) -> None:
    meta = obj.get("metadata", {})
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    if not rt.watches(namespace):
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
        for backend in rt.stores["Backend"].list(namespace):
            if ((backend.get("spec") or {}).get("probeRef") or {}).get("name") == name:
                rt.enqueue("Backend", namespace, backend["metadata"]["name"])
    elif kind == "MaintenanceWindow":
        for each in _names_in(namespace, rt, "ApiProduct"):
            rt.enqueue("ApiProduct", namespace, each)
