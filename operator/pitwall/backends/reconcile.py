"""Reconcile one Backend: its health (the Probe engine, or a referenced Probe) and its impact."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from prometheus_client import Gauge

from .. import durations, finalizers, logsearch
from ..api.backend import BackendSpec, BackendStatus, Impact, ProbeCounters
from ..api.base import parse
from ..conditions import Condition, summary
from ..errors import InvalidSpec
from ..probes.monitor import Job, Monitor
from ..probes.state import DOWN, MAINTENANCE, UP
from ..runtime import Runtime
from ..vocabulary import Stalled
from .declared import declared_down
from .impact import impact

log = logging.getLogger("pitwall.backends")
KIND = "Backend"

BACKEND_UP = Gauge("pitwall_backend_up", "1 when the backend is Available", ["namespace", "backend"])
AFFECTED = Gauge(
    "pitwall_backend_affected_products",
    "API products that depend on the backend, by effect",
    ["namespace", "backend", "effect"],
)

STATE_OF = {UP: "Available", DOWN: "Unavailable", MAINTENANCE: "Maintenance"}
HEALTH_OF = {v: k for k, v in STATE_OF.items()}


def _monitor(rt: Runtime) -> Monitor:
    return rt.monitor


def in_maintenance(rt: Runtime, namespace: str, name: str) -> bool:
    for window in rt.stores["MaintenanceWindow"].list(namespace):
        status = window.get("status") or {}
        if status.get("phase") == "Active" and name in ((status.get("affected") or {}).get("backends") or []):
            return True
    return False


def _imposed(rt: Runtime, namespace: str, name: str) -> str | None:
    return MAINTENANCE if in_maintenance(rt, namespace, name) else None


async def reconcile(rt: Runtime, namespace: str, name: str) -> float | None:
    key = (KIND, namespace, name)
    backend = rt.stores[KIND].copy(namespace, name)
    if backend is None or backend["metadata"].get("deletionTimestamp"):
        _monitor(rt).forget(key)
        rt.forget(KIND, namespace, name)
        for effect in ("Unavailable", "Degraded", "None"):
            try:
                AFFECTED.remove(namespace, name, effect)
            except KeyError:
                pass
        return await finalizers.finish_owned(rt, backend) if backend is not None else None
    await finalizers.ensure(rt, backend)
    raw = backend.get("spec") or {}
    status = rt.status_of(backend)
    matrix = impact(name, rt.stores["ApiProduct"].list(namespace))
    for effect in ("Unavailable", "Degraded", "None"):
        AFFECTED.labels(namespace, name, effect).set(
            sum(1 for p in matrix["apiProducts"] if p["effect"] == effect)
        )

    try:
        spec = parse(BackendSpec, raw)
    except InvalidSpec as exc:
        _monitor(rt).remove(key)
        await _write(rt, backend, "Unknown", matrix, stalled=exc.stalled)
        return None
    if spec.health is not None:
        try:
            check = await _monitor(rt).check_for(key, backend["metadata"], spec.health)
        except InvalidSpec as exc:
            _monitor(rt).remove(key)
            await _write(rt, backend, "Unknown", matrix, stalled=exc.stalled)
            return None
        job = Job(
            key=key,
            generation=backend["metadata"].get("generation", 0),
            check=check,
            resolve=lambda: None,
            imposed=partial(_imposed, rt, namespace, name),
            publish=partial(_publish, rt),
        )
        previous = {
            "state": HEALTH_OF.get(status.get("state") or "", "Unknown"),
            **(status.get("probe") or {}),
        }
        _monitor(rt).upsert(job, previous)
        await _monitor(rt).resettle(key)
        job = _monitor(rt).jobs[key]
        # A run's Stalled (TargetDenied) stands until the next run decides: the monitor keeps it
        # across a resync's reconcile of the same generation, and so does this write.
        await _write(
            rt,
            backend,
            STATE_OF.get(job.health.state, "Unknown"),
            matrix,
            probe=_probe_fields(job),
            stalled=job.stalled,
        )
        return None

    _monitor(rt).remove(key)
    if spec.probe_ref is not None:
        ref = spec.probe_ref.name
        probe = rt.stores["Probe"].get(namespace, ref)
        if probe is None:
            await _write(
                rt,
                backend,
                "Unknown",
                matrix,
                stalled=Stalled("ProbeNotFound", f"Probe {ref} not found in namespace {namespace}"),
            )
            return 60.0
        probe_status = probe.get("status") or {}
        state = STATE_OF.get(probe_status.get("state") or "", "Unknown")
        if in_maintenance(rt, namespace, name):
            state = "Maintenance"
        fields = {
            k: probe_status[k]
            for k in ("consecutiveFailures", "consecutiveSuccesses", "lastRun", "lastFailure")
            if k in probe_status
        }
        await _write(rt, backend, state, matrix, probe=fields)
        return None
    await _write(rt, backend, "Maintenance" if in_maintenance(rt, namespace, name) else "Unknown", matrix)
    return None


def _probe_fields(job: Job) -> dict:
    out: dict[str, Any] = {
        "consecutiveFailures": job.health.consecutive_failures,
        "consecutiveSuccesses": job.health.consecutive_successes,
    }
    if job.last_result is not None:
        out["lastRun"] = job.last_result.last_run()
        failure = job.last_result.last_failure()
        if failure:
            out["lastFailure"] = failure
    return out


async def _publish(rt: Runtime, job: Job, result, transition: bool) -> None:
    _, namespace, name = job.key
    backend = rt.stores[KIND].get(namespace, name)
    if backend is None:
        return
    matrix = impact(name, rt.stores["ApiProduct"].list(namespace))
    stalled = job.stalled
    await _write(
        rt,
        backend,
        STATE_OF.get(job.health.state, "Unknown"),
        matrix,
        probe=_probe_fields(job),
        stalled=stalled,
    )


async def _write(
    rt: Runtime,
    backend: dict,
    state: str,
    matrix: dict,
    *,
    probe: dict | None = None,
    stalled: Stalled | None = None,
) -> None:
    meta = backend["metadata"]
    previous = (backend.get("status") or {}).get("state")
    declaration = declared_down(backend)
    if declaration is not None:
        state = "Unavailable"  # whatever the check says: a person said so (backends/declared.py)
    BACKEND_UP.labels(meta["namespace"], meta["name"]).set(1 if state == "Available" else 0)
    hurt = [p["name"] for p in matrix["apiProducts"] if p["effect"] != "None"]
    if state == "Available":
        available = Condition.true("Available", "HealthCheckPassing", "")
    elif declaration is not None:
        available = Condition.false(
            "Available",
            "DeclaredDown",
            f"{declaration.describe()}; affects: " + (", ".join(hurt) or "no products"),
        )
    elif state == "Unavailable":
        failure = (probe or {}).get("lastFailure") or {}
        available = Condition.false(
            "Available",
            "HealthCheckFailing",
            (
                f"{failure.get('reason', 'health check failing')} "
                f"(correlation id {logsearch.mention(failure.get('correlationId', '-'))}); affects: "
                + (", ".join(hurt) or "no products")
            ),
        )
    elif state == "Maintenance":
        available = Condition.false("Available", "Maintenance", "in a maintenance window")
    else:
        available = Condition.unknown(
            "Available", "NoHealthData", "no health check configured" if not probe else "not enough runs yet"
        )
    conds = [
        available,
        *summary(
            state == "Available",
            stalled=stalled,
            ready_reason="Available",
            not_ready=(available.reason, available.message),
        ),
    ]
    # Written through the model: a field it does not declare cannot reach the API server (which
    # would prune it silently).
    status = BackendStatus(
        state=state,
        impact=Impact.model_validate(matrix),
        probe=None if probe is None else ProbeCounters.model_validate(probe),
        last_transition_at=durations.rfc3339() if previous != state else None,
    )
    await rt.write_status(backend, status.model_dump(by_alias=True, exclude_none=True), conds)
    if previous != state and previous is not None:
        why = f" ({declaration.describe()})" if declaration is not None else ""
        await rt.event(
            backend,
            f"Backend{state}",
            f"{previous} -> {state}{why}; affected products: " + (", ".join(hurt) or "none"),
            warning=state == "Unavailable",
        )
        log.info(
            "backend %s -> %s%s",
            previous,
            state,
            why,
            extra={"kind": KIND, "object": f"{meta['namespace']}/{meta['name']}"},
        )
