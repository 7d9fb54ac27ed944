"""The Pitwall API (``pitwall.dev/v1alpha1``): one pydantic model per kind, spec and status.

These models are the single source of truth: field descriptions, defaults, enums, bounds and
CEL rules are declared here, ``crds/*.yaml`` is generated from them (``make crds``, see
:mod:`pitwall.api.crdgen`) and the spec parsers take their enums and defaults from them.
To change the API, edit a model and run ``make crds`` (docs/api.md).
"""

from __future__ import annotations

from .alertrule import AlertRule
from .apiproduct import ApiProduct
from .backend import Backend
from .incident import Incident
from .maintenancewindow import MaintenanceWindow
from .probe import Probe
from .resource import Resource

# In the order the CRDs are listed (kustomization.yaml) and documented.
KINDS: tuple[type[Resource], ...] = (ApiProduct, Probe, Backend, AlertRule, MaintenanceWindow, Incident)

__all__ = [
    "KINDS",
    "AlertRule",
    "ApiProduct",
    "Backend",
    "Incident",
    "MaintenanceWindow",
    "Probe",
    "Resource",
]
