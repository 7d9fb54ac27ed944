"""Who belongs to whom: the status page's read of the watch caches.

The page is built only from what the operator already watches (no API call per request), so
this module turns the caches into a :class:`Snapshot` and answers the few relationship
questions every view asks: which probes check which product version, which products a backend
serves, which maintenance windows hold a product now. Relationships never cross namespaces,
as everywhere in Pitwall.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ..api.apiproduct import ApiProductSpec, BackendDependency, Version
from ..api.base import default_of
from ..durations import parse_time
from ..vocabulary import LABEL_PRODUCT, LABEL_VERSION, condition_of

Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Snapshot:
    """Every object the page needs, as plain dicts (read only: they are the caches' own)."""

    products: list[dict] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)
    backends: list[dict] = field(default_factory=list)
    rules: list[dict] = field(default_factory=list)
    windows: list[dict] = field(default_factory=list)
    incidents: list[dict] = field(default_factory=list)

    @classmethod
    def from_stores(cls, stores: Mapping) -> Snapshot:
        def objects(kind: str) -> list[dict]:
            store = stores.get(kind)
            return [
                o
                for o in (store.list() if store is not None else [])
                if not o.get("metadata", {}).get("deletionTimestamp")
            ]

        return cls(
            objects("ApiProduct"),
            objects("Probe"),
            objects("Backend"),
            objects("AlertRule"),
            objects("MaintenanceWindow"),
            objects("Incident"),
        )


def key(obj: dict) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def status(obj: dict) -> dict:
    return obj.get("status") or {}


def condition(obj: dict, type_: str) -> dict:
    return condition_of(obj, type_) or {}


def is_true(obj: dict, type_: str) -> bool:
    return condition(obj, type_).get("status") == "True"


def running_versions(product: dict) -> list[dict]:
    """Versions that run something: everything but ``retired``."""
    return [
        v
        for v in spec(product).get("versions") or []
        if v.get("lifecycle", default_of(Version, "lifecycle")) != "retired"
    ]


def is_public(product: dict) -> bool:
    return spec(product).get("public") is True


def environment(product: dict) -> str:
    return str(spec(product).get("environment") or default_of(ApiProductSpec, "environment"))


def display_name(product: dict) -> str:
    return spec(product).get("displayName") or key(product)[1]


def probe_target(probe: dict) -> tuple[str, str | None] | None:
    """(product, version or None for every version) a probe checks, or None.

    ``spec.target.apiProduct`` names both; a URL probe joins a product through the
    ``pitwall.dev/product`` label (and optionally ``pitwall.dev/version``), so a functional flow
    run against a public gateway URL still counts for the product it exercises.
    """
    target = (spec(probe).get("target") or {}).get("apiProduct") or {}
    if target.get("name"):
        return target["name"], target.get("version") or None
    labels = (probe.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_PRODUCT):
        return labels[LABEL_PRODUCT], labels.get(LABEL_VERSION) or None
    return None


def probes_by_product(snapshot: Snapshot) -> dict[Key, list[tuple[dict, str | None]]]:
    """(namespace, product) -> [(probe, version or None)], for the namespaces that have products
    (relationships never cross namespaces: a probe elsewhere belongs to none)."""
    out: dict[Key, list[tuple[dict, str | None]]] = {}
    namespaces = {key(product)[0] for product in snapshot.products}
    for probe in snapshot.probes:
        namespace = (probe.get("metadata") or {}).get("namespace", "")
        if namespace not in namespaces:
            continue
        target = probe_target(probe)
        if target is None:
            continue
        out.setdefault((namespace, target[0]), []).append((probe, target[1]))
    return out


def products_of_backend(snapshot: Snapshot, namespace: str, backend: str) -> list[tuple[dict, str]]:
    """(product, criticality) for every product in ``namespace`` that names ``backend``."""
    found = []
    for product in snapshot.products:
        if key(product)[0] != namespace:
            continue
        for ref in spec(product).get("backends") or []:
            if ref.get("name") == backend:
                found.append((product, ref.get("criticality", default_of(BackendDependency, "criticality"))))
    return found


def window_entries(
    snapshot: Snapshot, product: dict, phases: tuple[str, ...] = ("Active",)
) -> list[tuple[dict, dict]]:
    """(window, ``status.affected.apiProducts`` entry) for windows in ``phases`` that list the product."""
    namespace, name = key(product)
    found = []
    for window in snapshot.windows:
        if key(window)[0] != namespace or status(window).get("phase") not in phases:
            continue
        for entry in (status(window).get("affected") or {}).get("apiProducts") or []:
            if entry.get("name") == name:
                found.append((window, entry))
    return found


def when(value: str | None) -> datetime | None:
    """An RFC 3339 string from a status, or None when absent or unreadable."""
    if not value:
        return None
    try:
        return parse_time(value)
    except (TypeError, ValueError):
        return None
