"""metav1.Condition handling with kstatus semantics.

Every Pitwall kind carries ``Ready``, ``Reconciling`` and ``Stalled`` plus its own domain
conditions. ``lastTransitionTime`` changes only when ``status`` changes; ``observedGeneration``
is the generation the condition was computed for. The list is always written whole (merge
patches replace lists).
"""

from __future__ import annotations

from dataclasses import dataclass

from .durations import rfc3339
from .vocabulary import Stalled, condition

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str = ""

    @classmethod
    def true(cls, type_: str, reason: str, message: str = "") -> Condition:
        return cls(type_, TRUE, reason, message)

    @classmethod
    def false(cls, type_: str, reason: str, message: str = "") -> Condition:
        return cls(type_, FALSE, reason, message)

    @classmethod
    def unknown(cls, type_: str, reason: str, message: str = "") -> Condition:
        return cls(type_, UNKNOWN, reason, message)


get = condition  # the lookup by type, under the name callers of this module use

# kstatus reads the first of these; keep them first and in this order.
_LEAD = ("Ready", "Reconciling", "Stalled")


def merge(
    existing: list[dict] | None, wanted: list[Condition], generation: int | None, now: str | None = None
) -> list[dict]:
    """Return the full new conditions list.

    Conditions in ``wanted`` replace those of the same type; lastTransitionTime is kept when
    the status did not change. Types not in ``wanted`` are kept as they were (another part of
    the operator may own them), except the lead three, which the caller always sets.
    """
    now = now or rfc3339()
    by_type: dict[str, dict] = {c.get("type", ""): c for c in (existing or []) if isinstance(c, dict)}
    out: dict[str, dict] = dict(by_type)
    for cond in wanted:
        old = by_type.get(cond.type)
        changed = old is None or old.get("status") != cond.status
        entry = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message[:32000],
            "lastTransitionTime": now if changed or old is None else old.get("lastTransitionTime", now),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        out[cond.type] = entry
    lead = [out.pop(t) for t in _LEAD if t in out]
    return lead + sorted(out.values(), key=lambda c: c["type"])


def summary(
    ready: bool,
    *,
    stalled: Stalled | None = None,
    reconciling: tuple[str, str] | None = None,
    ready_reason: str = "Ready",
    ready_message: str = "",
    not_ready: tuple[str, str] | None = None,
) -> list[Condition]:
    """The three kstatus conditions, consistent with each other.

    - stalled=Stalled(reason, message): Stalled=True, Ready=False with the same reason.
    - reconciling=(reason, message): Reconciling=True, Ready=False unless ``ready``.
    - otherwise Ready reflects ``ready`` (with ``not_ready`` as reason/message when False).
    """
    if stalled:
        reason, message = stalled
        return [
            Condition.false("Ready", reason, message),
            Condition.false("Reconciling", "Stalled", message),
            Condition.true("Stalled", reason, message),
        ]
    conds = [Condition.false("Stalled", "NotStalled", "")]
    if reconciling:
        reason, message = reconciling
        conds.append(Condition.true("Reconciling", reason, message))
    else:
        conds.append(Condition.false("Reconciling", "Reconciled", ""))
    if ready:
        conds.append(Condition.true("Ready", ready_reason, ready_message))
    else:
        reason, message = not_ready or (reconciling or ("NotReady", ""))
        conds.append(Condition.false("Ready", reason, message))
    return conds


def is_true(conditions: list[dict] | None, type_: str) -> bool:
    cond = get(conditions, type_)
    return bool(cond and cond.get("status") == TRUE)


def same(a: list[dict] | None, b: list[dict] | None) -> bool:
    """Equal ignoring lastTransitionTime order effects (used to skip no-op status writes)."""

    def key(conds: list[dict] | None) -> list[tuple[object, ...]]:
        return sorted(
            (
                c.get("type"),
                c.get("status"),
                c.get("reason"),
                c.get("message"),
                c.get("observedGeneration"),
                c.get("lastTransitionTime"),
            )
            for c in conds or []
        )

    return key(a) == key(b)
