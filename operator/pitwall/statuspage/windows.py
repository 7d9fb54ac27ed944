"""Active and upcoming maintenance windows, read from MaintenanceWindow status.

The maintenance reconciler already computed everything the page needs: ``phase``, the
current or next occurrence (``nextStart``/``nextEnd``, ``activeSince``) and what it affects
(``affected.apiProducts`` with versions and effect, ``affected.backends``). Completed and
cancelled windows, and windows with no occurrence left, are not shown.
"""

from __future__ import annotations

from ..api.base import default_of
from ..api.maintenancewindow import MaintenanceWindowSpec
from .relations import Snapshot, key, spec, status

ACTIVE, SCHEDULED = "Active", "Scheduled"
# What the API server fills in when a stored window lacks the field.
PAGE = default_of(MaintenanceWindowSpec, "maintenance_page")
SUPPRESS = default_of(MaintenanceWindowSpec, "suppress_alerts")


def collect(snapshot: Snapshot) -> list[dict]:
    """Internal rows, active ones first, then by start."""
    rows = []
    for window in snapshot.windows:
        st = status(window)
        phase = st.get("phase")
        start = (st.get("activeSince") or st.get("nextStart")) if phase == ACTIVE else st.get("nextStart")
        if phase not in (ACTIVE, SCHEDULED) or not start:
            continue
        affected = st.get("affected") or {}
        namespace, name = key(window)
        rows.append(
            {
                "namespace": namespace,
                "name": name,
                "reason": spec(window).get("reason", ""),
                "phase": phase,
                "start": start,
                "end": st.get("nextEnd"),
                "emergency": bool(spec(window).get("emergency")),
                "maintenancePage": spec(window).get("maintenancePage", PAGE),
                "suppressAlerts": spec(window).get("suppressAlerts", SUPPRESS),
                "products": [
                    {
                        "name": p.get("name", ""),
                        "versions": list(p.get("versions") or []),
                        "effect": p.get("effect", "Unavailable"),
                    }
                    for p in affected.get("apiProducts") or []
                ],
                "backends": list(affected.get("backends") or []),
                "consumers": [c.get("name", "") for c in affected.get("consumers") or []],
            }
        )
    rows.sort(key=lambda r: (r["phase"] != ACTIVE, r["start"], r["namespace"], r["name"]))
    return rows
