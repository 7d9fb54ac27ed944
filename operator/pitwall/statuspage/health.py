"""The state of an API product version as third parties feel it: one of five words.

``operational``, ``degraded``, ``outage``, ``maintenance``, plus ``unknown`` for a version
Pitwall has no evidence about yet (a product created a second ago must not claim to be up or
down). The evidence, strongest first:

1. an Active MaintenanceWindow listing the version (``status.affected``), a probe of it held
   in ``Maintenance``, or ``InMaintenance=True`` with no window listing the product (a backend
   in maintenance): planned work is never shown as an outage;
2. its probes: all of them Down is an outage, some of them Down is degraded (one flow failing
   while ``isUp`` passes is a partial outage); real traffic (``status.traffic``) whose server
   errors and timeouts reach ``spec.traffic.degradedErrorRatio`` is degraded;
3. the product's conditions: ``Available=False`` because a critical backend is down is an
   outage, ``Degraded=True`` because a degradable one is down is degraded;
4. its workload: no ready replica of a version that ran before is an outage, a failed
   rollout or fewer ready replicas than wanted (outside a rollout) is degraded.

Each :class:`Verdict` carries a reason *code* whose public text comes from the fixed
:data:`REASONS` vocabulary, so nothing an operator typed (condition messages naming backends,
window names) can reach the public page through it; ``detail`` is for the internal view only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api.apiproduct import Traffic, Version
from ..api.base import default_of
from .relations import condition, is_true, key, status

OPERATIONAL, DEGRADED, OUTAGE, MAINTENANCE, UNKNOWN = (
    "operational",
    "degraded",
    "outage",
    "maintenance",
    "unknown",
)
RANK = {OPERATIONAL: 0, UNKNOWN: 1, MAINTENANCE: 2, DEGRADED: 3, OUTAGE: 4}
LABELS = {
    OPERATIONAL: "Operational",
    DEGRADED: "Degraded",
    OUTAGE: "Outage",
    MAINTENANCE: "Maintenance",
    UNKNOWN: "No data",
}

REASONS = {
    "ok": "Operating normally",
    "checks-failing": "Not responding to our checks",
    "some-checks-failing": "Some of our checks are failing",
    "provider-down": "An upstream provider is unavailable",
    "provider-degraded": "An upstream provider is degraded; some features may be slower or limited",
    "requests-failing": "An elevated share of requests is failing",
    "not-serving": "No instance is serving requests",
    "reduced-capacity": "Running with reduced capacity",
    "maintenance": "Scheduled maintenance in progress",
    "maintenance-degraded": "Reduced service during scheduled maintenance",
    "starting": "Being deployed",
    "no-data": "No data yet",
    "no-versions": "No running versions",
}


@dataclass(frozen=True)
class Verdict:
    state: str
    reason: str  # a key of REASONS
    since: str | None = None
    detail: str = ""  # internal view only: may name backends, windows, probes

    @property
    def text(self) -> str:
        return REASONS[self.reason]


def version_verdict(
    product: dict, version: dict, probes: list[dict], product_windows: list[tuple[dict, dict]]
) -> Verdict:
    """The verdict for one running version.

    ``probes``: the probes that check this version (targeted at it, or at the whole product);
    ``product_windows``: (window, affected entry) of every Active window listing the product.
    """
    name = version["name"]
    degraded_window = None
    for window, entry in product_windows:
        versions = entry.get("versions") or []
        if versions and name not in versions:
            continue
        wkey = "/".join(key(window))
        reason = (window.get("spec") or {}).get("reason", "")
        if entry.get("effect") == "Degraded":
            degraded_window = (status(window).get("activeSince"), f"window {wkey}: {reason}")
            continue
        return Verdict(
            MAINTENANCE, "maintenance", status(window).get("activeSince"), f"window {wkey}: {reason}"
        )
    in_maintenance = condition(product, "InMaintenance")
    if in_maintenance.get("status") == "True" and not product_windows:
        return Verdict(
            MAINTENANCE,
            "maintenance",
            in_maintenance.get("lastTransitionTime"),
            in_maintenance.get("message", ""),
        )
    held = [p for p in probes if status(p).get("state") == "Maintenance"]
    if held:
        return Verdict(
            MAINTENANCE, "maintenance", _earliest(held), "probe " + ", ".join(key(p)[1] for p in held)
        )

    checks = [p for p in probes if status(p).get("state") in ("Up", "Down")]
    down = [p for p in checks if status(p).get("state") == "Down"]
    if checks and len(down) == len(checks):
        return Verdict(OUTAGE, "checks-failing", _earliest(down), _probe_detail(down))
    available = condition(product, "Available")
    if available.get("status") == "False" and available.get("reason") == "BackendUnavailable":
        return Verdict(
            OUTAGE, "provider-down", available.get("lastTransitionTime"), available.get("message", "")
        )
    running = next((v for v in status(product).get("versions") or [] if v.get("name") == name), None)
    desired = int(
        (running or {}).get("replicas", version.get("replicas", default_of(Version, "replicas"))) or 0
    )
    ready = int((running or {}).get("readyReplicas") or 0)
    rollout = (running or {}).get("state", "")
    if running is not None and desired > 0 and ready == 0:
        if not running.get("lastGoodImage") and rollout in ("Progressing", "Missing"):
            return Verdict(UNKNOWN, "starting", None, f"first rollout of {name} in progress")
        return Verdict(OUTAGE, "not-serving", None, f"{name}: 0/{desired} replicas ready ({rollout})")

    if down:
        return Verdict(DEGRADED, "some-checks-failing", _earliest(down), _probe_detail(down))
    erroring = _erroring_traffic(product, name)
    if erroring:
        return Verdict(DEGRADED, "requests-failing", None, erroring)
    if degraded_window:
        return Verdict(DEGRADED, "maintenance-degraded", *degraded_window)
    degraded = condition(product, "Degraded")
    if degraded.get("status") == "True" and degraded.get("reason") == "BackendDegraded":
        return Verdict(
            DEGRADED, "provider-degraded", degraded.get("lastTransitionTime"), degraded.get("message", "")
        )
    if running is not None and (rollout == "Failed" or (rollout != "Progressing" and 0 < ready < desired)):
        return Verdict(
            DEGRADED,
            "reduced-capacity",
            None,
            f"{name}: {ready}/{desired} replicas ready"
            + (" (rollout failed)" if rollout == "Failed" else ""),
        )

    if running is None and not checks:
        return Verdict(UNKNOWN, "no-data", None, "no status and no probe results yet")
    since = available.get("lastTransitionTime") if is_true(product, "Available") else None
    return Verdict(OPERATIONAL, "ok", since)


def worst(verdicts: list[Verdict]) -> Verdict:
    """The product's verdict: its worst version's (ties keep the first version's)."""
    if not verdicts:
        return Verdict(UNKNOWN, "no-versions")
    return max(verdicts, key=lambda v: RANK[v.state])


def overall(states: list[str]) -> tuple[str, str]:
    """(state, headline) for a whole page from the states of every version it shows.

    The words say how much is affected, as Statuspage-style pages do: "Major outage" only when
    every version is down, "Partial outage" when some are (one version down of a product whose
    other version is healthy is partial, not "all APIs are down"), "Degraded" when nothing is
    down but something is limited.
    """
    if not states:
        return UNKNOWN, "No APIs to show"
    state = max(states, key=RANK.__getitem__)
    if state == OUTAGE:
        return state, "Major outage" if all(s == OUTAGE for s in states) else "Partial outage"
    return state, {
        DEGRADED: "Degraded service",
        MAINTENANCE: "Scheduled maintenance in progress",
        UNKNOWN: "Some APIs have no data yet",
        OPERATIONAL: "All APIs operational",
    }[state]


def label(state: str, version_states: list[str]) -> str:
    """A product's label: "Partial outage" when only some of its versions are down."""
    if state == OUTAGE and any(s != OUTAGE for s in version_states):
        return "Partial outage"
    return LABELS[state]


# The cause an outage without any alert is shown with (see model.product_views).
CAUSE_OF_REASON = {"checks-failing": "checks", "provider-down": "provider", "not-serving": "product"}


def _erroring_traffic(product: dict, version: str) -> str:
    """Real traffic (``status.traffic``, from Prometheus) in which server errors and timeouts
    reach ``spec.traffic.degradedErrorRatio`` of the version's requests: the detail, or ''."""
    traffic = status(product).get("traffic") or {}
    limit = float(
        ((product.get("spec") or {}).get("traffic") or {}).get(
            "degradedErrorRatio", default_of(Traffic, "degraded_error_ratio")
        )
    )
    for entry in traffic.get("versions") or []:
        if (
            entry.get("name") == version
            and float(entry.get("rps") or 0) > 0
            and float(entry.get("errorRatio") or 0) >= limit
        ):
            return f"traffic: {float(entry['errorRatio']):.1%} of {float(entry['rps']):g} req/s failing"
    return ""


def _earliest(probes: list[dict]) -> str | None:
    moments = sorted(t for t in (status(p).get("lastTransitionAt") for p in probes) if t)
    return moments[0] if moments else None


def _probe_detail(probes: list[dict]) -> str:
    parts = []
    for probe in probes:
        failure = status(probe).get("lastFailure") or {}
        parts.append(
            f"probe {key(probe)[1]} Down" + (f": {failure['reason']}" if failure.get("reason") else "")
        )
    return "; ".join(parts)
