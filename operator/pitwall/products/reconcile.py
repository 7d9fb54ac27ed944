"""Reconcile one ApiProduct: its versions' Deployments and Services, rollbacks and status.

Reads only from the watch caches, writes with server-side apply, and writes a Deployment
only when one of the fields Pitwall owns differs, so a ``kubectl patch`` of replicas reaches
the Deployment in one API round trip.
"""

from __future__ import annotations

import logging

from .. import durations, finalizers, metrics
from ..api.apiproduct import ApiProductSpec, ApiProductStatus, Version
from ..api.base import parse, status_patch
from ..conditions import Condition, summary
from ..durations import rfc3339
from ..errors import Forbidden, Invalid, InvalidSpec, KubeError
from ..logs import ref
from ..runtime import Runtime
from ..vocabulary import Stalled
from . import desired as d
from . import notices
from .analysis import (
    TrafficVerdict,
    decide_probe_rollback,
    decide_rollback,
    drift,
    pinned_image,
    product_conditions,
    traffic_verdict,
    version_state,
)

log = logging.getLogger("pitwall.products")

HISTORY_LIMIT = 20
KIND = "ApiProduct"


def _owned_by(obj: dict, product: dict) -> bool:
    uid = product["metadata"]["uid"]
    return any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences") or [])


def _history_add(history: list[dict], entry: dict) -> None:
    history.append(entry)
    del history[:-HISTORY_LIMIT]


def _history_settle(history: list[dict], version: str, image: str, result: str, revision: str) -> None:
    """Mark the newest open rollout of ``version`` to ``image`` with its outcome (once)."""
    for entry in reversed(history):
        if entry.get("version") == version and entry.get("image") == image:
            if entry.get("result") == "progressing":
                entry["result"] = result
                entry["revision"] = revision or entry.get("revision", "")
            return


async def reconcile(rt: Runtime, namespace: str, name: str) -> float | None:
    product = rt.stores[KIND].copy(namespace, name)
    if not product or product["metadata"].get("deletionTimestamp"):
        rt.forget(KIND, namespace, name)
        notices.forget(rt, namespace, name)
        return await finalizers.finish_owned(rt, product) if product else None
    await finalizers.ensure(rt, product)
    status = rt.status_of(product)
    try:
        spec = parse(ApiProductSpec, product.get("spec"))
    except InvalidSpec as exc:
        await _stall_unparsed(rt, product, exc)
        return None
    deployments = rt.stores["Deployment"]
    services = rt.stores["Service"]

    stalled: Stalled | None = None
    history: list[dict] = list(status.get("history") or [])
    pins = {p["version"]: p for p in status.get("rolledBack") or []}
    previous = {v["name"]: v for v in status.get("versions") or []}
    version_status: list[dict] = []
    states = []
    requeue: float | None = None

    for secret in spec.image_pull_secrets or []:
        if await rt.kube.get("Secret", namespace, secret.name) is None:
            stalled = Stalled(
                "ImagePullSecretNotFound",
                f"imagePullSecret {secret.name!r} does not exist in namespace {namespace}; "
                "running versions are left as they are",
            )

    wanted_names = set()
    for version in spec.versions:
        vname = version.name
        wname = d.workload_name(name, vname)
        lifecycle = version.lifecycle
        prev = previous.get(vname, {})
        if lifecycle == "retired":
            await _retire(rt, product, vname, prev, history)
            continue
        wanted_names.add(wname)
        pin = pins.get(vname)
        if pin and pin.get("failedImage") != version.image:
            pins.pop(vname)  # the spec moved on: a new rollout, the pin is cleared
            pin = None
        image = pinned_image(version.image, pin) or version.image
        live = deployments.get(namespace, wname)
        if live is not None and not _owned_by(live, product):
            stalled = Stalled(
                "NameCollision",
                f"Deployment {wname} already exists and is not owned by this "
                f"ApiProduct; version {vname} is left untouched",
            )
            continue
        if stalled is None:
            failure = await _ensure_deployment(rt, product, spec, version, image, live, history)
            if failure:
                stalled = failure
            else:
                failure = await _ensure_service(rt, product, vname, services.get(namespace, wname))
                stalled = stalled or failure
        live = deployments.get(namespace, wname)
        state = version_state(vname, version.replicas, live)
        last_good = prev.get("lastGoodImage")
        previous_good = prev.get("previousGoodImage")
        if state.is_available and state.image:
            if state.image != last_good:
                _history_settle(history, vname, state.image, "succeeded", state.revision)
                previous_good = last_good or previous_good
            last_good = state.image
        auto = spec.rollout.auto_rollback
        window = durations.parse(spec.rollout.analysis_window)
        decision = decide_rollback(
            auto=auto, spec_image=version.image, state=state, last_good=last_good, pinned=pin
        )
        reason = "did not become available within the progress deadline"
        if decision is None:
            down = _down_probes(rt, namespace, name, vname)
            decision = decide_probe_rollback(
                auto=auto,
                spec_image=version.image,
                state=state,
                previous_good=previous_good,
                pinned=pin,
                started=_rollout_started(history, vname, version.image),
                now=durations.now(),
                window=window,
                down_probes=down,
            )
            reason = f"probes went Down within the analysis window: {', '.join(down)}"
        judged = _traffic_analysis(rt, product, spec, version, history) if decision is None else None
        if judged is not None and judged.verdict == "fail":  # rollout.analysis.traffic
            decision = decide_probe_rollback(
                auto=auto,
                spec_image=version.image,
                state=state,
                previous_good=previous_good,
                pinned=pin,
                started=_rollout_started(history, vname, version.image),
                now=durations.now(),
                window=window,
                down_probes=[judged.message],
            )
            reason = f"failed the traffic analysis: {judged.message}"
        if decision:
            pins[vname] = {
                "version": vname,
                "failedImage": decision.failed_image,
                "restoredImage": decision.restored_image,
                "at": rfc3339(),
            }
            _history_settle(history, vname, decision.failed_image, "failed", state.revision)
            _history_add(
                history,
                {
                    "revision": state.revision,
                    "version": vname,
                    "image": decision.restored_image,
                    "at": rfc3339(),
                    "result": "rolled-back",
                    "message": f"{decision.failed_image} {reason}",
                },
            )
            metrics.ROLLBACKS.labels(namespace, name, vname).inc()
            await rt.event(
                product,
                "RolledBack",
                f"version {vname}: {decision.failed_image} {reason}; rolled back to "
                f"{decision.restored_image}",
                warning=True,
            )
            log.warning(
                "rolled back %s to %s", vname, decision.restored_image, extra=ref(KIND, namespace, name)
            )
            requeue = 0.01  # apply the restored image now
        elif state.rollout == "Failed" and not pin:
            _history_settle(history, vname, state.image, "failed", state.revision)
        if state.rollout == "Progressing":
            requeue = min(requeue or 5.0, 5.0)
        if lifecycle == "deprecated" and prev.get("lifecycle") != "deprecated":
            await rt.event(
                product,
                "VersionDeprecated",
                f"version {vname} is deprecated"
                + (f"; sunset at {version.sunset_at}" if version.sunset_at else ""),
            )
        states.append(state)
        entry = {
            "name": vname,
            "lifecycle": lifecycle,
            "image": state.image or image,
            "replicas": version.replicas,
            "readyReplicas": state.ready,
            "url": d.service_url(name, vname, namespace),
            "revision": state.revision,
            "state": state.rollout,
        }
        if last_good:
            entry["lastGoodImage"] = last_good
        if previous_good:
            entry["previousGoodImage"] = previous_good
        if version.sunset_at:
            entry["sunsetAt"] = version.sunset_at
        if judged is not None:
            entry["analysis"] = f"{judged.verdict}: {judged.message}"[:1024]
        version_status.append(entry)

    await _remove_orphans(rt, product, wanted_names, history)

    contributions = rt.products.product_contributions(product, spec)  # backends, maintenance windows
    conds, state_word = product_conditions(
        states,
        stalled=stalled,
        rolled_back=list(pins.values()),
        backend_effect=contributions.get("backend_effect"),
        maintenance=contributions.get("maintenance"),
        refs=contributions.get("refs", (True, "")),
    )
    ready_count = sum(1 for s in states if s.is_available)
    new_status = {
        "state": state_word,
        "readyVersions": f"{ready_count}/{len(states)}",
        "versions": version_status,
        "history": history,
        "rolledBack": list(pins.values()),
        "backends": contributions.get("backends", []),
    }
    # Sunset notices: what the outbox delivered is recorded, what is due now recorded as owed,
    # in this write; the outbox sends after it (products.notices).
    notices_sent, delivered = await notices.record(rt, product, spec, status.get("sunsetNotices") or [])
    if notices_sent:
        new_status["sunsetNotices"] = notices_sent
    traffic = rt.traffic.status_for(namespace, name) if rt.traffic is not None else None
    if traffic is not None and spec.traffic is not None:
        new_status["traffic"] = traffic  # coalesced by the traffic service
    await _write(rt, product, new_status, conds)
    notices.written(rt, product, notices_sent, delivered)
    metrics.READY.labels(KIND, namespace, name).set(1 if state_word == "Available" and not stalled else 0)
    return requeue


async def _write(rt: Runtime, product: dict, fields: dict, conditions: list[Condition]) -> None:
    """The one place status is written: through the model, so a field it does not declare
    cannot reach the API server (which would prune it silently)."""
    await rt.write_status(product, status_patch(ApiProductStatus.model_validate(fields)), conditions)


async def _stall_unparsed(rt: Runtime, product: dict, exc: InvalidSpec) -> None:
    """A spec the model refuses (stored before a bound was added, or around the schema):
    Stalled with the field named. The running versions are left exactly as they are, and so
    are the conditions that describe them (Available, Degraded ...)."""
    meta = product["metadata"]
    stalled = Stalled(exc.reason, f"{exc.message}; the running versions are left untouched")
    await _write(rt, product, {"state": "Stalled"}, summary(False, stalled=stalled))
    metrics.READY.labels(KIND, meta["namespace"], meta["name"]).set(0)


def _traffic_analysis(
    rt: Runtime, product: dict, spec: ApiProductSpec, version: Version, history: list[dict]
) -> TrafficVerdict | None:
    """The traffic verdict on ``version``'s rollout while it is within rollout.analysisWindow
    (None without rollout.analysis.traffic, spec.traffic or a Prometheus)."""
    criteria = spec.rollout.analysis.traffic if spec.rollout.analysis else None
    if criteria is None or spec.traffic is None or rt.traffic is None:
        return None
    started = _rollout_started(history, version.name, version.image)
    now = durations.now()
    window = durations.parse(spec.rollout.analysis_window)
    if started is None or (now - started).total_seconds() > window:
        return None
    meta = product["metadata"]
    reading = rt.traffic.reading(meta["namespace"], meta["name"])
    error = "not read yet" if reading is None else reading.error
    figures = reading.figures.versions.get(version.name) if reading is not None and reading.figures else None
    return traffic_verdict(
        criteria,
        figures,
        error,
        since_rollout=(now - started).total_seconds(),
        rate_window=durations.parse(spec.traffic.window),
    )


def _down_probes(rt: Runtime, namespace: str, product: str, version: str) -> list[str]:
    down = []
    for probe in rt.stores["Probe"].list(namespace):
        target = ((probe.get("spec") or {}).get("target") or {}).get("apiProduct") or {}
        if (
            target.get("name") == product
            and target.get("version") == version
            and (probe.get("status") or {}).get("state") == "Down"
        ):
            down.append(probe["metadata"]["name"])
    return down


def _rollout_started(history: list[dict], version: str, image: str):
    for entry in reversed(history):
        if entry.get("version") == version and entry.get("image") == image and entry.get("at"):
            return (
                durations.parse_time(entry["at"])
                if entry.get("result") in ("progressing", "succeeded")
                else None
            )
    return None


async def _ensure_deployment(
    rt: Runtime,
    product: dict,
    spec: ApiProductSpec,
    version: Version,
    image: str,
    live: dict | None,
    history: list[dict],
) -> Stalled | None:
    problem = d.env_problem(version)
    if problem:
        return Stalled(
            "InvalidSpec", f"version {version.name}: {problem}; the running version is left untouched"
        )
    body = d.deployment(product, spec, version, image=image)
    diffs = drift(body, live)
    if not diffs:
        return None
    meta = product["metadata"]
    live_hash = ((live or {}).get("metadata", {}).get("annotations") or {}).get(d.ANNOTATION_SPEC_HASH)
    hand_edit = live is not None and live_hash == body["metadata"]["annotations"][d.ANNOTATION_SPEC_HASH]
    try:
        result = await rt.kube.apply(body)
    except Invalid as exc:
        return Stalled(
            "InvalidSpec",
            f"version {version.name}: the API server refused the Deployment: "
            f"{exc.message}; the running version is left untouched",
        )
    except Forbidden as exc:
        reason = "QuotaExceeded" if "quota" in exc.message.lower() else "Forbidden"
        return Stalled(
            reason, f"version {version.name}: {exc.message}; the running version is left untouched"
        )
    except KubeError as exc:  # after its subclasses: Forbidden (403) is a KubeError too
        if exc.status != 400:  # 400: a decoding error of something the spec passed through
            raise
        return Stalled(
            "InvalidSpec",
            f"version {version.name}: the API server refused the Deployment: "
            f"{exc.message}; the running version is left untouched",
        )
    rt.stores["Deployment"].update("MODIFIED", result)
    live_image = ((live or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}])[
        0
    ].get("image")
    if hand_edit:
        metrics.DRIFT_REVERTED.labels(meta["namespace"], meta["name"]).inc()
        await rt.event(
            product,
            "DriftReverted",
            f"Deployment {body['metadata']['name']}: hand edits to {', '.join(diffs[:5])} reverted",
            warning=True,
        )
        log.info(
            "drift reverted on %s: %s",
            body["metadata"]["name"],
            diffs,
            extra=ref(KIND, meta["namespace"], meta["name"]),
        )
    elif live_image != image:
        _history_add(
            history,
            {
                "revision": "",
                "version": version.name,
                "image": image,
                "at": rfc3339(),
                "result": "progressing",
            },
        )
    return None


async def _ensure_service(rt: Runtime, product: dict, vname: str, live: dict | None) -> Stalled | None:
    role = rt.products.service_role(product, vname)
    body = d.service(product, vname, role=role)
    if not drift(body, live):
        return None
    try:
        result = await rt.kube.apply(body)
    except Invalid as exc:
        return Stalled("InvalidSpec", f"version {vname}: the API server refused the Service: {exc.message}")
    rt.stores["Service"].update("MODIFIED", result)
    if live is not None and live["spec"].get("selector") != body["spec"]["selector"]:
        await rt.event(
            product, "ServiceSwitched", f"Service {body['metadata']['name']} now selects role={role}"
        )
    return None


async def _retire(rt: Runtime, product: dict, vname: str, prev: dict, history: list[dict]) -> None:
    meta = product["metadata"]
    wname = d.workload_name(meta["name"], vname)
    removed = False
    for kind in ("Deployment", "Service"):
        if rt.stores[kind].get(meta["namespace"], wname) is not None:
            removed |= await rt.kube.delete(kind, meta["namespace"], wname)
    if removed or (prev and prev.get("lifecycle") != "retired"):
        if not any(h.get("version") == vname and h.get("result") == "retired" for h in history):
            _history_add(
                history,
                {
                    "revision": prev.get("revision", ""),
                    "version": vname,
                    "image": prev.get("image", ""),
                    "at": rfc3339(),
                    "result": "retired",
                },
            )
            await rt.event(product, "VersionRetired", f"version {vname} retired: its workloads were removed")


async def _remove_orphans(rt: Runtime, product: dict, wanted: set[str], history: list[dict]) -> None:
    """Versions removed from the spec lose their workloads."""
    meta = product["metadata"]
    for kind in ("Deployment", "Service"):
        for obj in rt.stores[kind].select(meta["namespace"], {d.LABEL_PRODUCT: meta["name"]}):
            labels = obj["metadata"].get("labels") or {}
            if labels.get(d.LABEL_ROLE, d.ROLE_API) != d.ROLE_API and kind == "Deployment":
                continue  # maintenance page Deployments belong to the maintenance controller
            if obj["metadata"]["name"] in wanted or not _owned_by(obj, product):
                continue
            if (
                await rt.kube.delete(kind, meta["namespace"], obj["metadata"]["name"])
                and kind == "Deployment"
            ):
                await rt.event(
                    product,
                    "VersionRemoved",
                    f"version {labels.get(d.LABEL_VERSION)} is no longer in the spec: "
                    f"{obj['metadata']['name']} removed",
                )
