"""What other kinds contribute to an ApiProduct's status: its backends and active windows.

Pure functions of the watch caches. The product reconciler asks these questions; the Backend
and MaintenanceWindow reconcilers only write their own status, and every write enqueues the
products involved (``wiring``), so a Service switches to the maintenance page in the same single
server-side apply that keeps it as declared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..api.apiproduct import ApiProductSpec, BackendDependency
from ..api.base import default_of
from ..api.maintenancewindow import MaintenanceWindowSpec
from ..vocabulary import CRITICALITY_EFFECT, ROLE_API, ROLE_MAINTENANCE, active_windows

if TYPE_CHECKING:
    from ..controller import Store


def backend_view(product: dict, dependencies: list[BackendDependency], backends: Store) -> dict:
    """``{"backends": [...status entries], "backend_effect": (effect, reason, msg) | None,
    "refs": (ok, message), "backend_maintenance": message | None}`` for the product's
    ``spec.backends`` (as the model parsed them)."""
    namespace = product["metadata"]["namespace"]
    entries, missing, down, degraded, in_maintenance = [], [], [], [], []
    for dependency in dependencies:
        name, criticality = dependency.name, dependency.criticality
        backend = backends.get(namespace, name)
        if backend is None:
            missing.append(name)
            entries.append({"name": name, "criticality": criticality, "state": "NotFound", "effect": "None"})
            continue
        state = (backend.get("status") or {}).get("state", "Unknown")
        effect = "None"
        if state == "Unavailable":
            effect = CRITICALITY_EFFECT[criticality]
            if effect == "Unavailable":
                down.append(name)
            elif effect == "Degraded":
                degraded.append(name)
        elif state == "Maintenance" and criticality != "optional":
            in_maintenance.append(name)
        entries.append({"name": name, "criticality": criticality, "state": state, "effect": effect})
    result: dict = {
        "backends": entries,
        "refs": (not missing, ""),
        "backend_effect": None,
        "backend_maintenance": None,
    }
    if missing:
        result["refs"] = (False, "Backend " + ", ".join(missing) + f" not found in namespace {namespace}")
    if down:
        result["backend_effect"] = (
            "Unavailable",
            "BackendUnavailable",
            "critical backend " + ", ".join(down) + " is unavailable",
        )
    elif degraded:
        result["backend_effect"] = (
            "Degraded",
            "BackendDegraded",
            "degradable backend " + ", ".join(degraded) + " is unavailable",
        )
    if in_maintenance:
        result["backend_maintenance"] = "backend " + ", ".join(in_maintenance) + " is in maintenance"
    return result


def _active_windows(product: dict, windows: Store) -> list:
    meta = product["metadata"]
    return active_windows(meta["name"], windows.list(meta["namespace"]))


class ProductHooks:
    """``rt.products``; consulted by the product reconciler."""

    def __init__(self, stores: dict[str, Store]):
        self.stores = stores

    def product_contributions(self, product: dict, spec: ApiProductSpec) -> dict:
        view = backend_view(product, spec.backends or [], self.stores["Backend"])
        windows = _active_windows(product, self.stores["MaintenanceWindow"])
        messages = [
            f"maintenance window {w['metadata']['name']}: {(w.get('spec') or {}).get('reason', '')}"
            for w, _ in windows
        ]
        if view["backend_maintenance"]:
            messages.append(view["backend_maintenance"])  # planned work is not an outage
        view["maintenance"] = "; ".join(messages) or None
        return view

    def service_role(self, product: dict, version: str) -> str:
        for window, entry in _active_windows(product, self.stores["MaintenanceWindow"]):
            if (
                (window.get("spec") or {}).get(
                    "maintenancePage", default_of(MaintenanceWindowSpec, "maintenance_page")
                )
                and entry.get("effect") == "Unavailable"
                and version in (entry.get("versions") or [])
            ):
                return ROLE_MAINTENANCE
        return ROLE_API
