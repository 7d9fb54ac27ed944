"""The probe engine's overload, reported where people look: Events, a Pod condition, /healthz.

The scheduler (``scheduler.py``) turns more due runs than the CPU can run into lateness, spread
over every probe, never into failures. This module says so outside the process:

- an Event when an overload starts (``ProbeEngineOverloaded``, Warning) and when it ends
  (``ProbeEngineRecovered``), on the operator's Pod when it runs in one (``POD_NAME``,
  ``POD_NAMESPACE``, ``POD_UID`` from the downward API, as ``manifests/base`` sets them), else on
  its leader Lease (``--leader-elect``), else nowhere (the log, /metrics and /healthz still say it);
- in a Pod, the condition ``pitwall.dev/ProbeEngine`` on the Pod itself (``kubectl describe pod``,
  ``kubectl get pod -o jsonpath``): ``True``/``OnTime``, or ``False``/``Overloaded`` with how
  late runs start. Kubernetes keeps condition types it does not own; the kubelet leaves them.
  It needs ``patch`` on ``pods/status`` in the operator's namespace (``manifests/base/
  pod-status.yaml``); without it the condition is skipped, logged once, and the Events remain;
- ``/healthz`` carries the same details under ``probeEngine`` and stays 200: an overloaded
  operator restarted by its liveness probe would be further behind, not less.

Nothing here touches a probe: lateness never becomes a failure, a transition or a status write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from .. import metrics
from ..durations import rfc3339
from ..errors import Forbidden
from ..kube import Kube
from .scheduler import Overload, Scheduler

log = logging.getLogger("pitwall.probes.overload")

CONDITION = "pitwall.dev/ProbeEngine"
OVERLOADED = "ProbeEngineOverloaded"
RECOVERED = "ProbeEngineRecovered"
REFRESH = 60.0  # seconds between refreshes of the condition's message while overloaded


def involved_object(env: Mapping[str, str], lease_namespace: str, leader_election: bool) -> dict | None:
    """What the Events are about: the operator's Pod when it runs in one (the downward API's
    ``POD_NAME``), else its leader Lease, else nothing."""
    if env.get("POD_NAME"):
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": env["POD_NAME"],
                "namespace": env.get("POD_NAMESPACE") or lease_namespace,
                "uid": env.get("POD_UID") or None,  # kubectl describe pod matches Events by uid
            },
        }
    if leader_election:
        from ..leader import LEASE_NAME

        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": lease_namespace},
        }
    return None


def describe(state: Overload) -> str:
    if state.active:
        return (
            f"probe runs start up to {state.worst_lag:.1f}s late ({state.waiting} waiting for a slot, "
            f"overloaded for {state.for_seconds:.0f}s, {state.limit} runs in flight at most): more "
            "probes are due than this replica can "
            "run. Lateness is spread over every probe and never fails a check; give the operator "
            "more CPU or run more replicas with --probe-shards"
        )
    if state.for_seconds or state.worst_lag:
        return (
            f"probe runs start on time again after {state.for_seconds:.0f}s overloaded "
            f"(runs up to {state.worst_lag:.1f}s late)"
        )
    return "probe runs start on time"


def event(state: Overload) -> tuple[str, str, bool]:
    """(reason, message, warning) of the Event for an overload starting or ending."""
    return (OVERLOADED if state.active else RECOVERED), describe(state), state.active


def pod_condition(state: Overload, at: str) -> dict:
    """The Pod condition for ``state``: positive polarity, like Ready (True: on time)."""
    return {
        "type": CONDITION,
        "status": "False" if state.active else "True",
        "reason": "Overloaded" if state.active else "OnTime",
        "message": describe(state),
        "lastTransitionTime": at,
        "lastProbeTime": at,
    }


def health(state: Overload) -> dict:
    """The ``probeEngine`` part of /healthz."""
    out: dict = {
        "overloaded": state.active,
        "overloadedSecondsTotal": round(state.total_seconds, 1),
        "runsInFlightLimit": state.limit,
    }
    if state.active:
        out.update(
            {
                "overloadedForSeconds": round(state.for_seconds, 1),
                "worstLagSeconds": round(state.worst_lag, 3),
                "waiting": state.waiting,
                "since": rfc3339(datetime.now(UTC) - timedelta(seconds=state.for_seconds)),
            }
        )
    return out


class Reporter:
    """Reports each overload change of ``scheduler`` on ``target`` (see :func:`involved_object`)."""

    def __init__(self, kube: Kube, scheduler: Scheduler, target: dict | None):
        self.kube, self.scheduler, self.target = kube, scheduler, target
        self.pod = target if target is not None and target["kind"] == "Pod" else None
        self._changes: asyncio.Queue[Overload] = asyncio.Queue()
        self._transition_at = rfc3339()
        # The scheduler settles an overload when it is read, and /healthz and /metrics read it
        # from the metrics server's thread (metrics.Server): hand changes to this loop safely.
        loop = asyncio.get_running_loop()

        def changed(change: Overload) -> None:
            loop.call_soon_threadsafe(self._changes.put_nowait, change)

        scheduler.on_overload = changed
        metrics.HEALTH.details["probeEngine"] = lambda: health(scheduler.overload())

    async def run(self) -> None:
        """Write the condition at start (on time), then on every change and, while overloaded,
        every ``REFRESH`` seconds (the lateness it states moves)."""
        await self._condition(self.scheduler.overload(), transition=True)
        while True:
            refresh = REFRESH if self.scheduler.overloaded() else None
            try:
                async with asyncio.timeout(refresh):
                    change = await self._changes.get()
            except TimeoutError:
                await self._condition(self.scheduler.overload(), transition=False)
                continue
            if self.target is not None:
                reason, message, warning = event(change)
                await self.kube.event(self.target, reason, message, type_="Warning" if warning else "Normal")
            await self._condition(change, transition=True)

    async def _condition(self, state: Overload, *, transition: bool) -> None:
        if self.pod is None:
            return
        if transition:
            self._transition_at = rfc3339()
        condition = pod_condition(state, self._transition_at)
        condition["lastProbeTime"] = rfc3339()
        meta = self.pod["metadata"]
        try:
            await self.kube.patch(
                "Pod",
                meta["namespace"],
                meta["name"],
                {"status": {"conditions": [condition]}},
                subresource="status",
                patch_type="strategic",  # merges by type: the kubelet's conditions stay
            )
        except Forbidden:
            log.warning(
                "may not patch pods/status of %s/%s: the %s condition is skipped (Events, /metrics and "
                "/healthz still report overloads; manifests/base/pod-status.yaml grants it)",
                meta["namespace"],
                meta["name"],
                CONDITION,
            )
            self.pod = None
        except Exception as exc:  # the API server may be away; the next change writes it again
            log.warning("could not write the %s condition: %s", CONDITION, exc)
