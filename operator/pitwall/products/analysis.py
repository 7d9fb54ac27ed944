"""Pure judgements about an ApiProduct's running state: drift, rollouts, rollbacks, status.

Nothing here does I/O; ``reconcile`` feeds it live objects from the watch caches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kubernetes.utils.quantity import parse_quantity as _parse_quantity

from ..api.apiproduct import TrafficAnalysis
from ..conditions import Condition, summary
from ..traffic.figures import VersionFigures
from ..vocabulary import Stalled, condition

parse_quantity: Callable[[str], object] = _parse_quantity  # kubernetes' canonical parser (untyped)


# -- drift ------------------------------------------------------------------------------------
def _same_scalar(path: str, want: object, have: object) -> bool:
    if want == have:
        return True
    if "resources" in path:
        try:
            return bool(parse_quantity(str(want)) == parse_quantity(str(have)))
        except (ValueError, TypeError):
            return False
    if isinstance(want, (int, float)) and isinstance(have, str):
        return str(want) == have
    return False


def differences(desired: object, live: object, path: str = "") -> list[str]:
    """Paths where ``live`` does not carry what ``desired`` says (extra live fields are fine:
    defaults and fields other managers own are not drift)."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [path or "/"]
        out: list[str] = []
        for key, value in desired.items():
            out += differences(value, live.get(key), f"{path}.{key}" if path else key)
        return out
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [path]
        out = []
        for index, (want, have) in enumerate(zip(desired, live, strict=True)):
            out += differences(want, have, f"{path}[{index}]")
        return out
    return [] if _same_scalar(path, desired, live) else [path]


def drift(desired: dict, live: dict | None) -> list[str]:
    """Owned fields of a live Deployment/Service that differ from the desired object."""
    if live is None:
        return ["(missing)"]
    out = []
    for top in ("metadata", "spec"):
        for diff in differences(desired.get(top, {}), live.get(top, {}), top):
            if top == "metadata" and not diff.startswith("metadata.labels"):
                continue  # ownerReferences/annotations are not user-visible drift
            out.append(diff)
    return out


# -- one version's rollout --------------------------------------------------------------------
@dataclass(frozen=True)
class VersionState:
    name: str
    desired: int
    ready: int
    updated: int
    available: int
    image: str
    revision: str
    rollout: str  # Complete | Progressing | Failed | Missing

    @property
    def is_available(self) -> bool:
        return self.rollout == "Complete" and self.available >= self.desired


def version_state(name: str, desired_replicas: int, deployment: dict | None) -> VersionState:
    if not deployment:
        return VersionState(name, desired_replicas, 0, 0, 0, "", "", "Missing")
    spec = deployment.get("spec", {})
    status = deployment.get("status", {})
    containers = spec.get("template", {}).get("spec", {}).get("containers", [{}])
    image = containers[0].get("image", "")
    revision = (deployment["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "")
    replicas = int(spec.get("replicas", desired_replicas))
    ready = int(status.get("readyReplicas", 0))
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    generation_seen = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    progressing = condition(status.get("conditions"), "Progressing")
    # A deadline exceeded by an older generation says nothing about the spec just applied
    # (kstatus: status is stale until observedGeneration catches up).
    if (
        generation_seen
        and progressing
        and progressing.get("status") == "False"
        and progressing.get("reason") == "ProgressDeadlineExceeded"
    ):
        rollout = "Failed"
    elif (
        generation_seen
        and updated >= replicas
        and available >= replicas
        and int(status.get("replicas", 0)) == replicas
    ):
        rollout = "Complete"
    else:
        rollout = "Progressing"
    return VersionState(name, replicas, ready, updated, available, image, revision, rollout)


@dataclass(frozen=True)
class RollbackDecision:
    version: str
    failed_image: str
    restored_image: str


def decide_rollback(
    *, auto: bool, spec_image: str, state: VersionState, last_good: str | None, pinned: dict | None
) -> RollbackDecision | None:
    """Roll back a failed rollout of ``spec_image`` to ``last_good`` once.

    Never in a loop: nothing happens while a rollback is already pinned for this spec image,
    when there is no different good image to return to, or when the running image is not the
    one the spec asks for (the restored image failing is reported, not rolled back again).
    """
    if not auto or state.rollout != "Failed" or not last_good or last_good == spec_image:
        return None
    if pinned and pinned.get("failedImage") == spec_image:
        return None
    if state.image != spec_image:
        return None
    return RollbackDecision(state.name, spec_image, last_good)


def decide_probe_rollback(
    *,
    auto: bool,
    spec_image: str,
    state: VersionState,
    previous_good: str | None,
    pinned: dict | None,
    started: datetime | None,
    now: datetime,
    window: float,
    down_probes: list[str],
) -> RollbackDecision | None:
    """Roll back a rollout that became available but whose probes went Down within the
    analysis window after it started (the pods are ready, the API is not)."""
    if not auto or not down_probes or not previous_good or previous_good == spec_image:
        return None
    if pinned and pinned.get("failedImage") == spec_image:
        return None
    if state.image != spec_image or started is None or (now - started).total_seconds() > window:
        return None
    return RollbackDecision(state.name, spec_image, previous_good)


def pinned_image(spec_image: str, pinned: dict | None) -> str | None:
    """The image to run instead of the spec's while a rollback is in force.

    A later change of the version's image clears the pin (the caller drops it)."""
    if pinned and pinned.get("failedImage") == spec_image:
        return pinned.get("restoredImage")
    return None


# -- conditions -------------------------------------------------------------------------------
def product_conditions(
    states: list[VersionState],
    *,
    stalled: Stalled | None,
    rolled_back: list[dict],
    backend_effect: tuple[str, str, str] | None = None,
    maintenance: str | None = None,
    refs: tuple[bool, str] = (True, ""),
) -> tuple[list[Condition], str]:
    """Conditions and the one-word ``status.state`` for the product.

    ``backend_effect``: (effect Unavailable|Degraded, reason, message) from its backends.
    """
    total = len(states)
    available = [s for s in states if s.is_available]
    failed = [s for s in states if s.rollout == "Failed"]
    progressing = [s for s in states if s.rollout in ("Progressing", "Missing")]
    some_ready = any(s.ready > 0 for s in states)
    conds: list[Condition] = []
    all_available = len(available) == total

    if progressing:
        rolling = (
            "RolloutInProgress",
            "rolling out " + ", ".join(f"{s.name} ({s.ready}/{s.desired} ready)" for s in progressing),
        )
    else:
        rolling = None

    if all_available:
        conds.append(
            Condition.true(
                "Available", "AllVersionsAvailable", f"{len(available)}/{total} versions available"
            )
        )
    else:
        missing = [s for s in states if not s.is_available]
        conds.append(
            Condition.false(
                "Available",
                "VersionsUnavailable",
                ", ".join(
                    f"{s.name}: {s.ready}/{s.desired} ready"
                    + (" (rollout failed)" if s.rollout == "Failed" else "")
                    for s in missing
                ),
            )
        )

    degraded_msgs = []
    if failed:
        degraded_msgs.append("rollout failed: " + ", ".join(s.name for s in failed))
    elif not all_available and some_ready and not progressing:
        degraded_msgs.append("some versions are not fully ready")
    state = (
        "Available"
        if all_available
        else ("Progressing" if progressing and not failed else ("Degraded" if some_ready else "Unavailable"))
    )
    if backend_effect:
        effect, reason, message = backend_effect
        if effect == "Unavailable":
            conds[0] = Condition.false("Available", reason, message)
            state = "Unavailable"
        elif state == "Available":
            state = "Degraded"
        degraded_msgs.append(message)
        degraded_reason = reason
    else:
        degraded_reason = "RolloutFailed" if failed else "PartiallyReady"
    if degraded_msgs:
        conds.append(Condition.true("Degraded", degraded_reason, "; ".join(degraded_msgs)))
    else:
        conds.append(Condition.false("Degraded", "NotDegraded", ""))

    if rolled_back:
        conds.append(
            Condition.true(
                "RolledBack",
                "RolloutFailed",
                "; ".join(
                    f"{r['version']}: {r['failedImage']} failed, running {r['restoredImage']}"
                    for r in rolled_back
                ),
            )
        )
    else:
        conds.append(Condition.false("RolledBack", "NoRollback", ""))

    if maintenance:
        conds.append(Condition.true("InMaintenance", "MaintenanceWindowActive", maintenance))
        state = "Maintenance"
    else:
        conds.append(Condition.false("InMaintenance", "NoActiveWindow", ""))

    refs_ok, refs_message = refs
    conds.append(
        Condition.true("ResolvedRefs", "AllResolved", "")
        if refs_ok
        else Condition.false("ResolvedRefs", "BackendNotFound", refs_message)
    )

    ready = (
        all_available
        and not stalled
        and not (backend_effect and backend_effect[0] == "Unavailable")
        and refs_ok
    )
    if stalled:
        state = "Stalled"
    not_ready = None
    if not ready:
        if not refs_ok:
            not_ready = ("BackendNotFound", refs_message)
        elif backend_effect and backend_effect[0] == "Unavailable":
            not_ready = (backend_effect[1], backend_effect[2])
        elif failed:
            not_ready = ("RolloutFailed", conds[0].message)
        else:
            not_ready = ("VersionsUnavailable", conds[0].message)
    conds += summary(
        ready,
        stalled=stalled,
        reconciling=None if stalled else rolling,
        not_ready=not_ready,
        ready_reason="AllVersionsAvailable",
        ready_message=conds[0].message,
    )
    return conds, state


# -- traffic analysis of a rollout ------------------------------------------------------------
@dataclass(frozen=True)
class TrafficVerdict:
    verdict: str  # pass | fail | wait
    message: str


def traffic_verdict(
    criteria: TrafficAnalysis,
    figures: VersionFigures | None,
    error: str | None,
    *,
    since_rollout: float,
    rate_window: float,
) -> TrafficVerdict:
    """Judge a version's real traffic against ``rollout.analysis.traffic``.

    No data (Prometheus silent, or fewer than ``minRps`` requests a second) is an explicit
    verdict, ``noData``: ``wait`` (nothing is decided), ``pass``, or ``fail`` once the rate
    window has passed since the rollout (before that the window still holds the old image's calls).
    """
    min_rps, no_data, quantile = criteria.min_rps, criteria.no_data, criteria.quantile
    if error is not None or figures is None or figures.rps < min_rps:
        why = error or f"under {min_rps:g} requests/s"
        if no_data == "pass":
            return TrafficVerdict("pass", f"no traffic data ({why}): passed (noData: pass)")
        if no_data == "fail" and since_rollout >= rate_window:
            return TrafficVerdict("fail", f"no traffic data ({why}) within {rate_window:g}s (noData: fail)")
        return TrafficVerdict("wait", f"waiting for traffic data ({why})")
    problems = []
    max_ratio = criteria.max_error_ratio
    ratio = figures.error_ratio or 0.0
    if max_ratio is not None and ratio > float(max_ratio):
        problems.append(f"{ratio * 100:.1f}% of requests failed (max {float(max_ratio) * 100:.1f}%)")
    max_ms = criteria.max_latency_ms
    seconds = (figures.latency or {}).get(quantile)
    if max_ms is not None and seconds is not None and seconds * 1000 > float(max_ms):
        problems.append(f"{quantile} latency {seconds * 1000:.0f}ms (max {float(max_ms):g}ms)")
    if problems:
        return TrafficVerdict("fail", "; ".join(problems))
    return TrafficVerdict("pass", f"{ratio * 100:.1f}% failed at {figures.rps:.3g} requests/s")
