"""The words every part of Pitwall shares: kinds, labels, annotations, owner references, lookups.

One definition each, so the controller, the status page, the CLI and the maintenance page
cannot drift apart (a label key spelt twice is a selector that silently matches nothing).
Pure: no I/O, nothing imported but the standard library and :mod:`pitwall` itself, so any
layer may use it (``.importlinter``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import API_VERSION, GROUP

# -- kinds ---------------------------------------------------------------------------------------
API_PRODUCT, PROBE, BACKEND, ALERT_RULE, MAINTENANCE_WINDOW, INCIDENT = (
    "ApiProduct",
    "Probe",
    "Backend",
    "AlertRule",
    "MaintenanceWindow",
    "Incident",
)
PITWALL_KINDS = (API_PRODUCT, PROBE, BACKEND, ALERT_RULE, MAINTENANCE_WINDOW, INCIDENT)

# -- labels --------------------------------------------------------------------------------------
LABEL_PRODUCT = f"{GROUP}/product"  # on workloads, Services, EndpointSlices, Probes
LABEL_VERSION = f"{GROUP}/version"
LABEL_ROLE = f"{GROUP}/role"  # which pods a version's Service selects
LABEL_WINDOW = f"{GROUP}/maintenance-window"  # on maintenance page Deployments
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = {LABEL_MANAGED_BY: "pitwall"}
LABEL_SERVICE_NAME = "kubernetes.io/service-name"  # set by Kubernetes on EndpointSlices
ROLE_API = "api"
ROLE_MAINTENANCE = "maintenance-page"

# -- annotations and finalizers -----------------------------------------------------------------
ANNOTATION_SPEC_HASH = f"{GROUP}/spec-hash"
ANNOTATION_ACK = f"{GROUP}/acknowledge"  # on an AlertRule: KEY[,KEY...]
ANNOTATION_ACK_BY = f"{GROUP}/acknowledged-by"
FINALIZER = f"{GROUP}/finalizer"

# A Secret is read for a tenant's object only when its owner opted it in for that use: without
# this, anyone allowed to create a Probe could send any Secret of the namespace to a URL of their
# choice (``body: ${secret:x/y}``) without holding ``get`` on Secrets themselves.
SECRET_USE_LABEL = f"{GROUP}/use"
SECRET_USES = ("probes", "receivers", "traffic")  # plus "all"; traffic: the Prometheus credentials

# -- what a dependency's loss does to a product ------------------------------------------------
CRITICALITY_EFFECT = {"critical": "Unavailable", "degradable": "Degraded", "optional": "None"}

# The port every API version serves on (container port and Service port name).
PORT_NAME = "http"


@dataclass(frozen=True)
class SecretRef:
    """A key of a Secret in the referencing object's own namespace."""

    name: str
    key: str


class Stalled(NamedTuple):
    """Why an object cannot progress until someone changes something (kstatus ``Stalled``)."""

    reason: str
    message: str


def owner_reference(owner: Mapping[str, Any], *, controller: bool = True) -> dict[str, Any]:
    """An ownerReference to ``owner``: garbage-collected with it; ``controller`` when Pitwall's
    reconciler of ``owner`` is the one that manages the object (not for shared pages)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", API_VERSION),
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def workload_name(product: str, version: str) -> str:
    """The Deployment and Service of one ApiProduct version (stable across edits)."""
    return f"{product}-{version}"


def opt_in_problem(secret: dict, use: str) -> str | None:
    """Why ``secret`` may not be used for ``use`` (``probes`` or ``receivers``), with the command
    that opts it in; None when ``pitwall.dev/use`` is ``use`` or ``all``."""
    meta = secret.get("metadata") or {}
    value = (meta.get("labels") or {}).get(SECRET_USE_LABEL)
    if value in (use, "all"):
        return None
    name, namespace = meta.get("name"), meta.get("namespace")
    if value:
        return (
            f"Secret {name} is opted in for {value}, not {use}: "
            f"kubectl -n {namespace} label secret {name} {SECRET_USE_LABEL}=all --overwrite"
        )
    return f"Secret {name} is not opted in for {use}: kubectl -n {namespace} label secret {name} {SECRET_USE_LABEL}={use}"


# -- lookups ----------------------------------------------------------------------------------
def condition(conditions: Iterable[Any] | None, type_: str) -> dict[str, Any] | None:
    """The condition of ``type_`` in a ``status.conditions`` list (entries that are not objects
    are skipped: the list may come from anyone who can write status)."""
    for cond in conditions or ():
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return None


def condition_of(obj: Mapping[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """The condition of ``type_`` of a Kubernetes object."""
    return condition(((obj or {}).get("status") or {}).get("conditions"), type_)


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def target_product(probe: Mapping[str, Any]) -> tuple[str, str] | None:
    """(product, version) a Probe targets through ``spec.target.apiProduct``, else None."""
    target = ((probe.get("spec") or {}).get("target") or {}).get("apiProduct")
    if target:
        return target["name"], target.get("version", "")
    return None


def active_windows(
    product: str, windows: Iterable[Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any], dict]]:
    """(window, its ``status.affected.apiProducts`` entry) of every Active window listing
    ``product`` (windows being deleted no longer count)."""
    found = []
    for window in windows:
        status = window.get("status") or {}
        if status.get("phase") != "Active" or window["metadata"].get("deletionTimestamp"):
            continue
        for entry in (status.get("affected") or {}).get("apiProducts") or []:
            if entry.get("name") == product:
                found.append((window, entry))
    return found


def endpoint_url(
    slices: Iterable[Mapping[str, Any]], service: str, rewrite: Callable[[str], str] = str
) -> str | None:
    """``http://address:port`` of a ready endpoint of ``service`` from its EndpointSlices.

    The port is the one named ``http`` (what the version's Service targets; a slice of a
    Service with more ports lists them in any order), or an unnamed one (a single-port
    Service). ``rewrite`` maps a pod address to one reachable from here (``PITWALL_ENDPOINT_REWRITE``).
    """
    for slice_ in slices:
        if labels_of(slice_).get(LABEL_SERVICE_NAME) != service:
            continue
        port = next(
            (p.get("port") for p in slice_.get("ports") or [] if p.get("name") in (PORT_NAME, None, "")), None
        )
        if not port:
            continue
        for endpoint in slice_.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") and endpoint.get("addresses"):
                return f"http://{rewrite(endpoint['addresses'][0])}:{port}"
    return None
