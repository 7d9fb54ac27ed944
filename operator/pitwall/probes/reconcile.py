"""Reconcile one Probe: validate it, (re)schedule it, and publish each run's outcome.

The reconcile itself never runs a check: it parses the spec, resolves what it can, and hands a
:class:`~pitwall.probes.monitor.Job` to the single scheduler, which runs it at once on a spec
change and then on its interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from .. import durations, finalizers, logsearch
from ..api.probe import ProbeStatus
from ..conditions import Condition, summary
from ..errors import InvalidSpec
from ..runtime import Runtime, rewrite_address
from ..shards import shard_of
from ..vocabulary import (
    LABEL_PRODUCT,
    Stalled,
    active_windows,
    condition,
    endpoint_url,
    opt_in_problem,
    target_product,
    workload_name,
)
from .engine import RunResult
from .monitor import Job, Monitor
from .state import DOWN, MAINTENANCE, PAUSED, UNKNOWN, UP

log = logging.getLogger("pitwall.probes")
KIND = "Probe"


def monitor(rt: Runtime) -> Monitor:
    return rt.monitor


# -- target resolution -------------------------------------------------------------------------
def version_url(rt: Runtime, namespace: str, product: str, version: str) -> str | None:
    """Where an ApiProduct version answers: its Service in the cluster, else a ready endpoint."""
    service = workload_name(product, version)
    if rt.settings.resolved_target_mode == "service":
        return f"http://{service}.{namespace}.svc"
    return endpoint_url(
        rt.stores["EndpointSlice"].list(namespace),
        service,
        lambda address: rewrite_address(address, rt.rewrite_rules),
    )


def in_maintenance(rt: Runtime, namespace: str, product: str, version: str | None) -> bool:
    if rt.stores["ApiProduct"].get(namespace, product) is None:
        return False
    for _, entry in active_windows(product, rt.stores["MaintenanceWindow"].list(namespace)):
        if version is None or version in (entry.get("versions") or []):
            return True
    return False


def _imposed(rt: Runtime, namespace: str, name: str, paused: bool) -> str | None:
    """Paused (``spec.paused``, as parsed for this job) or Maintenance, else None."""
    if paused:
        return PAUSED
    probe = rt.stores[KIND].get(namespace, name)
    if probe is None:
        return None
    target = target_product(probe)
    labelled = (probe["metadata"].get("labels") or {}).get(LABEL_PRODUCT)
    if target and in_maintenance(rt, namespace, target[0], target[1]):
        return MAINTENANCE
    if labelled and in_maintenance(rt, namespace, labelled, None):
        return MAINTENANCE
    return None


# -- reconcile ---------------------------------------------------------------------------------
async def reconcile(rt: Runtime, namespace: str, name: str) -> float | None:
    mon = monitor(rt)
    key = (KIND, namespace, name)
    probe = rt.stores[KIND].get(namespace, name)  # read only: no deep copy per reconcile
    if probe is not None and not rt.owns_probe(probe["metadata"].get("uid")):
        mon.remove(key)  # another replica's shard (shards.py): it runs, writes and finalizes this probe
        return None
    if probe is None or probe["metadata"].get("deletionTimestamp"):
        mon.forget(key)
        if probe is None:
            rt.forget(KIND, namespace, name)
            return None
        return await finalizers.finish_owned(rt, probe)
    await finalizers.ensure(rt, probe)
    spec = probe.get("spec") or {}
    status = rt.status_of(probe)

    stalled: Stalled | None = None
    target = target_product(probe)
    if target:
        product = rt.stores["ApiProduct"].get(namespace, target[0])
        versions = {v["name"]: v for v in ((product or {}).get("spec") or {}).get("versions") or []}
        if product is None:
            stalled = Stalled("ProductNotFound", f"ApiProduct {target[0]} not found in namespace {namespace}")
        elif target[1] not in versions or versions[target[1]].get("lifecycle") == "retired":
            stalled = Stalled(
                "VersionNotFound", f"ApiProduct {target[0]} has no running version {target[1]!r}"
            )
    try:
        check = await mon.check_for(
            key, probe["metadata"], spec, base_url="http://resolved.invalid" if target else None
        )
    except InvalidSpec as exc:
        stalled = exc.stalled
    if stalled is None:
        for secret in sorted(check.secret_names):
            found = await rt.kube.get("Secret", namespace, secret)
            problem = opt_in_problem(found, "probes") if found is not None else None
            if found is None:
                stalled = Stalled("SecretNotFound", f"Secret {secret} not found in namespace {namespace}")
            elif problem:
                stalled = Stalled("SecretNotOptedIn", problem)
            if stalled:
                break
    if stalled:
        mon.remove(key)
        await _publish_stalled(rt, probe, stalled)
        return 60.0  # the missing object may appear without an event on this probe

    resolve: Callable[[], str | None]
    if target:
        resolve = partial(version_url, rt, namespace, *target)
    else:
        resolve = lambda: None  # noqa: E731 - the check carries its own URL
    job = Job(
        key=key,
        generation=probe["metadata"].get("generation", 0),
        check=check,
        resolve=resolve,
        imposed=partial(_imposed, rt, namespace, name, check.paused),
        publish=partial(_publish, rt),
        unresolved=f"{target[0]} {target[1]} has no ready endpoints" if target else None,
    )
    if not rt.owns_probe(probe["metadata"].get("uid")):
        return None  # its shard went to another replica while this reconcile awaited
    mon.upsert(job, status)
    await mon.resettle(key)
    cleared = (condition(status.get("conditions"), "Stalled") or {}).get("status") == "True"
    if not status.get("conditions") or status.get("observedGeneration") != job.generation or cleared:
        # A new probe gets its status at once (kstatus reads an object without status as
        # Current), a changed spec its observedGeneration, a probe whose missing product or
        # Secret appeared its Stalled=False; all through the monitor's one writer per probe,
        # so the first verdict, racing this, can never be overwritten by it.
        mon.write_soon(key)
    return None


# -- shards (shards.py) ---------------------------------------------------------------------
def _in(rt: Runtime, indexes: frozenset[int]) -> list[tuple[str, str]]:
    shards = rt.shards
    assert shards is not None
    return [
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in rt.stores[KIND].list()
        if o["metadata"].get("uid") and shard_of(o["metadata"]["uid"], shards.count) in indexes
    ]


async def shards_gained(rt: Runtime, indexes: frozenset[int]) -> None:
    """This replica took these shards: schedule their probes (each resumes from its status)."""
    for namespace, name in _in(rt, indexes):
        rt.enqueue(KIND, namespace, name)


async def shards_lost(rt: Runtime, indexes: frozenset[int]) -> None:
    """These shards go to another replica: stop their probes first, then write their latest
    numbers, so the next owner resumes where this one stopped."""
    mon = monitor(rt)
    keys = [(KIND, namespace, name) for namespace, name in _in(rt, indexes)]
    jobs = [mon.jobs[key] for key in keys if key in mon.jobs]
    for key in keys:
        mon.scheduler.remove(key)
    await mon.writes_done()
    for job in jobs:
        if job.unpublished:
            try:
                await job.publish(job, job.last_result, False)
            except Exception as exc:  # handing over: the next owner resumes from the last write
                log.warning(
                    "could not write probe %s/%s before handing it over: %s", job.key[1], job.key[2], exc
                )
    for key in keys:
        mon.remove(key)


def probe_conditions(state: str, result: RunResult | None) -> list[Condition]:
    """The conditions of a probe in ``state``: Healthy (with the failing step when Down), and the
    Ready/Reconciling/Stalled summary every kind carries."""
    failure = result.failure if result else None
    if state == UP:
        healthy = Condition.true("Healthy", "Up", "the last runs passed")
    elif state == DOWN:
        detail = (
            f"step {failure.name}: {failure.reason} (correlation id {logsearch.mention(failure.correlation_id)})"
            if failure
            else "consecutive failures reached the threshold"
        )
        healthy = Condition.false("Healthy", "Down", detail)
    elif state == MAINTENANCE:
        healthy = Condition.unknown("Healthy", "Maintenance", "the target is in a maintenance window")
    elif state == PAUSED:
        healthy = Condition.unknown("Healthy", "Paused", "the probe is paused")
    else:
        healthy = Condition.unknown("Healthy", "AwaitingResults", "not enough runs yet")
    ready = state == UP
    conds = [
        healthy,
        *summary(
            ready,
            ready_reason="Up",
            ready_message=healthy.message,
            not_ready=(healthy.reason, healthy.message),
        ),
    ]
    if state in (UNKNOWN, PAUSED):
        # No verdict yet (or none wanted): Ready=Unknown, so a rule on Ready=False never pages
        # for a probe that was merely created or paused.
        conds = [
            Condition.unknown("Ready", healthy.reason, healthy.message) if c.type == "Ready" else c
            for c in conds
        ]
    return conds


async def _publish(rt: Runtime, job: Job, result: RunResult | None, transition: bool) -> None:
    _, namespace, name = job.key
    probe = rt.stores[KIND].get(namespace, name)
    if probe is None:
        return
    if job.stalled:
        await _publish_stalled(rt, probe, job.stalled)
        return
    base = job.resolve()
    status = probe_status(
        job,
        result,
        # An unresolved product version shows why, never the placeholder host it was parsed with.
        target=base or (f"(none: {job.unresolved})" if job.unresolved else job.check.target),
        transition_at=durations.rfc3339() if transition else None,
    )
    previous_state = (probe.get("status") or {}).get("state")
    await _write(rt, probe, status, probe_conditions(job.health.state, result))
    if transition and previous_state != job.health.state:
        await _announce(rt, probe, job, result, previous_state)


async def _announce(
    rt: Runtime, probe: dict, job: Job, result: RunResult | None, previous: str | None
) -> None:
    state = job.health.state
    failure = result.failure if result else None
    if state == DOWN and failure:
        message = (
            f"{previous or 'Unknown'} -> Down after {job.health.consecutive_failures} consecutive failures: "
            f"step {failure.name}: {failure.reason}; correlation id {logsearch.mention(failure.correlation_id)}"
        )
    else:
        message = f"{previous or 'Unknown'} -> {state}"
    await rt.event(probe, f"Probe{state}", message, warning=state == DOWN)
    (log.warning if state == DOWN else log.info)(
        "probe is %s",
        state,
        extra={
            "kind": KIND,
            "object": f"{probe['metadata']['namespace']}/{probe['metadata']['name']}",
            "correlation_id": failure.correlation_id if failure else None,
        },
    )


async def _publish_stalled(rt: Runtime, probe: dict, stalled: Stalled) -> None:
    previous = (probe.get("status") or {}).get("conditions") or []
    already = (condition(previous, "Stalled") or {}).get("reason") == stalled.reason
    await _write(
        rt,
        probe,
        ProbeStatus(state="Unknown"),
        [Condition.unknown("Healthy", *stalled), *summary(False, stalled=stalled)],
    )
    if not already:
        await rt.event(probe, stalled.reason, stalled.message, warning=True)


# -- status ------------------------------------------------------------------------------------
def probe_status(
    job: Job, result: RunResult | None, *, target: str | None, transition_at: str | None = None
) -> ProbeStatus:
    """A Probe's status after ``result``: its health, numbers, last run and failure.

    Through the model, so a field it does not declare cannot reach the API server (which would
    prune it silently). Validating costs ~20 µs, once per write (at most one a minute per probe
    and one per transition), never per run.
    """
    fields: dict[str, Any] = {**job.health.to_status(), **job.stats.to_status(durations.now())}
    fields["target"] = target
    if transition_at is not None:
        fields["lastTransitionAt"] = transition_at
    if result is not None:
        fields["lastRun"] = result.last_run()
        failure = result.last_failure()
        if failure:
            url = logsearch.link(failure.get("correlationId"))  # --log-search-url
            fields["lastFailure"] = {**failure, "logsUrl": url} if url else failure
    return ProbeStatus.model_validate(fields)


async def _write(rt: Runtime, probe: dict, status: ProbeStatus, conditions: list[Condition]) -> None:
    """Every write of a Probe's status: the fields set on the model, as a merge patch (a field
    set to None is removed; one left unset keeps its value). ``observedGeneration`` and the
    conditions are added by ``Runtime.write_status``, for every kind."""
    await rt.write_status(probe, status.model_dump(by_alias=True, exclude_unset=True), conditions)
