"""The AlertRule status patch, built in one place from its model (``AlertRuleStatus``).

Every status write of the alerts package goes through :func:`patch`: a field the model does
not declare (which the API server would prune silently) or a value outside its bounds fails
here, in the operator's log, instead of vanishing or being refused at the API server. Fields
left out (None) are not in the patch, so the merge patch keeps what is stored (a war-room
write keeps the alerts, a digest write keeps the war room). ``observedGeneration`` and the
conditions are added by ``Runtime.write_status`` for every kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..api.alertrule import AlertRuleStatus
from ..api.base import status_patch


def patch(
    *,
    firing: int | None = None,
    alerts: Sequence[Mapping[str, Any]] | None = None,
    last_digest_at: str | None = None,
    war_room: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``status`` fields (``alerts`` as ``state.AlertRecord.to_dict`` writes them, camelCase),
    validated by the model and dumped camelCase, without the fields not given."""
    given = {
        "firing": firing,
        "alerts": None if alerts is None else list(alerts),
        "lastDigestAt": last_digest_at,
        "warRoom": war_room,
    }
    return status_patch(AlertRuleStatus.model_validate({k: v for k, v in given.items() if v is not None}))
