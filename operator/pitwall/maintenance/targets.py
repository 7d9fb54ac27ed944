"""Which products, backends and consumers a maintenance window affects.

Products are targeted by name or by ``matchLabels``; Backends by name. A product that depends
on a targeted Backend is affected too, by how much it depends on it: a ``critical`` backend in
maintenance makes the product unavailable (it gets the maintenance page like a targeted one),
a ``degradable`` one makes it degraded (consumers are told, the product keeps serving), an
``optional`` one does not affect it. Retired versions run nothing and are left out.

An empty or missing ``matchLabels`` selects nothing (unlike a Kubernetes selector, where it
selects everything), so a typo cannot put every product into maintenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..api.apiproduct import BackendDependency
from ..api.base import default_of
from ..api.maintenancewindow import Targets
from ..vocabulary import CRITICALITY_EFFECT

UNAVAILABLE, DEGRADED = "Unavailable", "Degraded"
DEFAULT_CRITICALITY = default_of(BackendDependency, "criticality")


@dataclass(frozen=True)
class AffectedProduct:
    name: str
    display_name: str
    versions: tuple[str, ...]
    effect: str  # Unavailable: maintenance page and alerts held; Degraded: notice only
    reason: str  # for people: "targeted", "depends on Backend core-banking (critical)"
    contact: str | None = None  # the product owner's contact, quoted in notices


@dataclass(frozen=True)
class AffectedConsumer:
    name: str
    product: str
    versions: tuple[str, ...]  # the affected versions this consumer uses
    contact: dict = field(default_factory=dict)  # {name, email, webhook} from the ApiProduct


@dataclass(frozen=True)
class Affected:
    products: tuple[AffectedProduct, ...] = ()
    backends: tuple[str, ...] = ()
    consumers: tuple[AffectedConsumer, ...] = ()
    missing: tuple[str, ...] = ()  # "ApiProduct/x", "Backend/y": named targets that do not exist

    def page_versions(self) -> list[tuple[str, str]]:
        """(product, version) pairs whose Service switches to the maintenance page."""
        return [(p.name, v) for p in self.products if p.effect == UNAVAILABLE for v in p.versions]

    def status(self) -> dict:
        """The ``status.affected`` block. Consumer webhook URLs often embed a token, so only
        their scheme and host are shown."""
        return {
            "apiProducts": [
                {"name": p.name, "versions": list(p.versions), "effect": p.effect} for p in self.products
            ],
            "backends": list(self.backends),
            "consumers": [
                {
                    "name": c.name,
                    "apiProduct": c.product,
                    "versions": list(c.versions),
                    "contact": _masked(c.contact),
                }
                for c in self.consumers
            ],
        }


def resolve(targets: Targets | None, products: list[dict], backends: list[dict]) -> Affected:
    """Resolve ``spec.targets`` against the ApiProducts and Backends of the window's namespace
    (those are read as stored: raw objects of other kinds from the watch caches)."""
    targets = targets or Targets()
    wanted = targets.api_products
    names = set((wanted.names if wanted else None) or [])
    selector = (wanted.match_labels if wanted else None) or {}
    by_name = {p["metadata"]["name"]: p for p in products}
    existing_backends = {b["metadata"]["name"] for b in backends}
    targeted_backends = list(dict.fromkeys(targets.backends or []))
    in_maintenance = existing_backends.intersection(targeted_backends)

    reasons: dict[str, list[tuple[str, str]]] = {}  # product -> [(effect, reason)]
    for name, product in by_name.items():
        labels = product["metadata"].get("labels") or {}
        if name in names or (selector and selector.items() <= labels.items()):
            reasons.setdefault(name, []).append((UNAVAILABLE, "targeted"))
        for dependency in product.get("spec", {}).get("backends") or []:
            criticality = dependency.get("criticality", DEFAULT_CRITICALITY)
            effect = CRITICALITY_EFFECT.get(criticality, "None")
            if dependency.get("name") in in_maintenance and effect in (UNAVAILABLE, DEGRADED):
                reasons.setdefault(name, []).append(
                    (effect, f"depends on Backend {dependency['name']} ({criticality})")
                )

    affected = [_product(by_name[name], found) for name, found in sorted(reasons.items())]
    missing = [f"ApiProduct/{n}" for n in sorted(names - by_name.keys())]
    missing += [f"Backend/{n}" for n in targeted_backends if n not in existing_backends]
    return Affected(
        products=tuple(affected),
        backends=tuple(n for n in targeted_backends if n in in_maintenance),
        consumers=tuple(c for p in affected for c in _consumers(by_name[p.name], p.versions)),
        missing=tuple(missing),
    )


def _product(product: dict, found: list[tuple[str, str]]) -> AffectedProduct:
    spec = product.get("spec", {})
    name = product["metadata"]["name"]
    effects = {effect for effect, _ in found}
    return AffectedProduct(
        name=name,
        display_name=spec.get("displayName") or name,
        versions=tuple(v["name"] for v in spec.get("versions") or [] if v.get("lifecycle") != "retired"),
        effect=UNAVAILABLE if UNAVAILABLE in effects else DEGRADED,
        reason="; ".join(reason for _, reason in found),
        contact=(spec.get("owner") or {}).get("contact"),
    )


def _consumers(product: dict, versions: tuple[str, ...]) -> list[AffectedConsumer]:
    """Consumers of the affected versions; a consumer listing no versions uses all of them."""
    found = []
    for consumer in sorted(product.get("spec", {}).get("consumers") or [], key=lambda c: c["name"]):
        uses = tuple(v for v in versions if v in (consumer.get("versions") or versions))
        if uses:
            found.append(
                AffectedConsumer(
                    consumer["name"], product["metadata"]["name"], uses, dict(consumer.get("contact") or {})
                )
            )
    return found


def _masked(contact: dict) -> dict:
    shown = {k: contact[k] for k in ("name", "email") if contact.get(k)}
    if contact.get("webhook"):
        url = urlsplit(contact["webhook"])
        shown["webhook"] = f"{url.scheme}://{url.hostname}/…" if url.hostname else "…"
    return shown
