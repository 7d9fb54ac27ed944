"""kopf wiring, in one module: watch events in, keys onto work queues. Nothing else.

Every handler here is thin: it updates a watch cache and enqueues the owners that care. The
decisions live in the domain packages, the API writes in ``kube``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from functools import partial
from typing import Any

import kopf

from . import GROUP, VERSION, floors, metrics
from .kube import Kube, kind_of
from .runtime import Runtime, Settings
from .supervise import spawn
from .vocabulary import FINALIZER, LABEL_PRODUCT, MANAGED_BY, PITWALL_KINDS

log = logging.getLogger("pitwall.handlers")

_state: dict[str, Any] = {}


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's change detection, without the copy nobody reads.

    On every watch event kopf builds the object's "essence" (a deep copy of the whole object,
    status included, most of it then deleted) to diff it for ``on.create``/``on.update``/
    ``on.field`` handlers and to store it after they ran. Pitwall registers watch-event
    handlers only (``tests/unit/test_wiring.py`` holds it to that), so the essence is never
    compared or stored: at 5,000 probes the copies were ~2.5% of the operator's CPU (issue 18).
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()


def configure(settings: Settings) -> None:
    """Called by ``pitwall run`` before kopf starts."""
    _state["settings"] = settings


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_) -> None:
    # kopf lists every watched object before it watches: a page at a time, not 5,000 Probes in
    # one answer (a memory peak the allocator keeps). An object's event worker exits after 1 s
    # without events instead of 5 s: fewer idle workers during a burst of status echoes.
    settings.watching.chunk_size = 500
    settings.queueing.idle_timeout = 1.0
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.posting.level = logging.WARNING
    # kopf's own finalizer name; kopf adds it only for deletion handlers, and Pitwall registers
    # watch-event handlers alone. Deletions that have work to do hold Pitwall's own finalizer
    # (pitwall.dev/cleanup), added and removed by the reconcilers (finalizers.py).
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="pitwall.dev")
    settings.persistence.diffbase_storage = NoDiffBase(prefix="pitwall.dev")
    config: Settings = _state.get("settings") or Settings.from_env()
    rt = Runtime(kube=Kube.from_env(), settings=config)
    floors.configure(config.floors)
    from . import wiring

    wiring.register(rt)
    _state["runtime"] = rt
    _state["metrics"] = (
        await metrics.serve(config.metrics_host, config.metrics_port) if config.metrics_port else None
    )
    _state["heartbeat"] = spawn(metrics.heartbeat(), name="heartbeat")
    _state["loop_lag"] = spawn(metrics.loop_lag(), name="loop-lag")
    metrics.watch_gc()
    from .probes import overload

    # Overloads of the probe engine as Events and a Pod condition (and in /healthz).
    target = overload.involved_object(os.environ, config.lease_namespace, config.leader_election)
    reporter = overload.Reporter(rt.kube, rt.monitor.scheduler, target)
    _state["overload"] = spawn(reporter.run(), name="probe-overload")
    if config.webhook_port and config.webhook_cert and config.webhook_key:
        from . import admission

        _state["webhook"] = await admission.serve(
            "0.0.0.0", config.webhook_port, config.webhook_cert, config.webhook_key
        )

    async def lead() -> None:
        await rt.sync_caches()
        rt.start()
        await wiring.start(rt)
        for kind, queue in rt.queues.items():  # everything the standby cached, at once
            for key in rt.stores[kind].keys():
                queue.add(key)
        if config.gc_freeze_seconds > 0 and "heap" not in _state:
            from . import heap

            _state["heap"] = spawn(heap.keep_collections_short(config.gc_freeze_seconds), name="heap")

    await wiring.start(rt, leader=False)  # the status page: every replica serves it
    if config.leader_election:
        from .leader import Elector

        elector = Elector(
            rt.kube,
            config.lease_namespace,
            duration=config.lease_duration,
            renew=max(0.5, config.lease_duration / 3),
            retry=max(0.5, config.lease_duration / 7),
        )
        if config.probe_shards:
            # Every replica runs the probes of the shards it holds; the leader everything else.
            from .probes import reconcile as probes
            from .shards import Shards

            rt.shards = Shards(
                rt.kube,
                config.lease_namespace,
                config.probe_shards,
                elector.identity,
                on_gain=partial(probes.shards_gained, rt),
                on_loss=partial(probes.shards_lost, rt),
                duration=config.lease_duration,
                renew=max(0.5, config.lease_duration / 3),
            )
            await rt.sync_caches()
            rt.start(kinds=("Probe",))
            await rt.monitor.start()
            _state["shards"] = spawn(rt.shards.run(), name="probe-shards")
        _state["elector"] = spawn(elector.run(lead), name="leader-election")
    else:
        metrics.LEADER.set(1)
        await lead()
    metrics.HEALTH.ready = True
    log.info(
        "pitwall started (target mode %s, leader election %s, probe shards %s)",
        config.resolved_target_mode,
        "on" if config.leader_election else "off",
        config.probe_shards if rt.shards is not None else "off",
    )


@kopf.on.cleanup()
async def cleanup(**_) -> None:
    metrics.HEALTH.ready = False
    elector = _state.pop("elector", None)
    if elector is not None:
        elector.cancel()
    rt = _state.get("runtime")
    shards = _state.pop("shards", None)
    if shards is not None:
        shards.cancel()
        await asyncio.gather(shards, return_exceptions=True)
        if rt is not None and rt.shards is not None:
            await rt.shards.release()  # the other replicas take its probes at once
    if rt is not None:
        from . import wiring

        await wiring.stop(rt)
        await rt.stop()
        await rt.kube.close()
    for name in ("heartbeat", "loop_lag", "heap", "overload"):
        task = _state.pop(name, None)
        if task:
            task.cancel()
    for name in ("metrics", "webhook"):
        runner = _state.pop(name, None)
        if runner is not None:
            await runner.cleanup()


def _observe(kind: str):
    # async on purpose: kopf runs plain functions in a thread pool, and the caches and work
    # queues belong to the event loop (asyncio is not thread-safe).
    async def handler(event: dict, **_) -> None:
        rt = _state.get("runtime")
        obj = event.get("object")
        if rt is None or not obj:
            return
        obj.setdefault("kind", kind)
        obj.setdefault("apiVersion", kind_of(kind).api_version)
        meta = obj.get("metadata") or {}
        store = rt.stores[kind]
        previous = store.get(meta.get("namespace", ""), meta.get("name", ""))
        store.update(event.get("type"), obj)
        from . import wiring

        wiring.route(rt, kind, event.get("type"), obj, previous)

    handler.__name__ = f"observe_{kind.lower()}"
    return handler


for _kind in PITWALL_KINDS:
    kopf.on.event(GROUP, VERSION, kind_of(_kind).plural)(_observe(_kind))

kopf.on.event("apps", "v1", "deployments", labels=MANAGED_BY)(_observe("Deployment"))
kopf.on.event("", "v1", "services", labels={LABEL_PRODUCT: kopf.PRESENT})(_observe("Service"))
kopf.on.event("discovery.k8s.io", "v1", "endpointslices", labels={LABEL_PRODUCT: kopf.PRESENT})(
    _observe("EndpointSlice")
)
