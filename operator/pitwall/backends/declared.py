"""A backend declared down by hand: its owner announced an outage, operations record it.

Health checks only see what they probe; when the core-banking team phones to say the
mainframe is down, the support desk needs to say so at once, with a reason and a name. That
is three annotations on the Backend (no schema change, so ``kubectl annotate`` and GitOps work
as well as ``pitwall backend down``)::

    pitwall.dev/declared-down: "mainframe patching overran"   # the reason; present = down
    pitwall.dev/declared-down-by: marge
    pitwall.dev/declared-down-at: "2026-11-29T14:05:00Z"

While it is there the Backend is ``Unavailable`` (``Available=False``, reason ``DeclaredDown``)
whatever its health check says, so impact, products, alerts and the status page treat it
exactly like a failing check. Removing ``pitwall.dev/declared-down`` hands the state back to
the check. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

ANNOTATION = "pitwall.dev/declared-down"
BY = "pitwall.dev/declared-down-by"
AT = "pitwall.dev/declared-down-at"
REASON_MAX = 500


@dataclass(frozen=True)
class Declaration:
    reason: str
    by: str
    at: str

    def describe(self) -> str:
        who = f" by {self.by}" if self.by else ""
        when = f" at {self.at}" if self.at else ""
        return f"declared down{who}{when}: {self.reason}"


def declared_down(backend: dict) -> Declaration | None:
    annotations = (backend.get("metadata") or {}).get("annotations") or {}
    if ANNOTATION not in annotations:
        return None
    reason = " ".join(str(annotations[ANNOTATION]).split())[:REASON_MAX] or "no reason given"
    return Declaration(
        reason, " ".join(str(annotations.get(BY, "")).split())[:100], str(annotations.get(AT, ""))[:40]
    )


def down_patch(reason: str, by: str, at: str) -> dict:
    """The merge patch that declares a backend down."""
    if not reason.strip():
        raise ValueError("a reason is required: say what the owner announced")
    return {"metadata": {"annotations": {ANNOTATION: reason.strip(), BY: by, AT: at}}}


def up_patch() -> dict:
    """The merge patch that hands the state back to the health check."""
    return {"metadata": {"annotations": {ANNOTATION: None, BY: None, AT: None}}}
