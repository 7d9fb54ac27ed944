"""Pitwall: a Kubernetes operator for API marketplaces."""

GROUP = "pitwall.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "pitwall"

__version__ = "0.1.0"
