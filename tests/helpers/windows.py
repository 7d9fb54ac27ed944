"""MaintenanceWindow specs as the reconciler sees them: parsed through the API models.

Tests of one part (the schedule, the notices, the targets) write only what that part reads;
``window_spec`` fills in the two required fields the part does not look at.
"""

from __future__ import annotations

from pitwall.api.maintenancewindow import MaintenanceWindowSpec, Schedule, Targets


def window_spec(raw: dict) -> MaintenanceWindowSpec:
    return MaintenanceWindowSpec.model_validate({"reason": "Database upgrade", "targets": {}, **raw})


def schedule(raw: dict | None) -> Schedule:
    return Schedule.model_validate(raw or {})


def targets(raw: dict | None) -> Targets | None:
    return None if raw is None else Targets.model_validate(raw)
