"""What an ApiProduct version should run: pure builders of its Deployment and Service.

Names are stable (``<product>-<version>``); the selector (product, version, role) never
changes, so a Service can be pointed at the maintenance page by changing only ``role``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..api.apiproduct import ApiProductSpec, Version
from ..durations import parse as parse_duration
from ..vocabulary import (
    ANNOTATION_SPEC_HASH,
    LABEL_PRODUCT,
    LABEL_ROLE,
    LABEL_VERSION,
    MANAGED_BY,
    PORT_NAME,
    ROLE_API,
    ROLE_MAINTENANCE,
    owner_reference,
    workload_name,
)

SERVICE_PORT = 80
__all__ = [
    "ANNOTATION_SPEC_HASH",
    "LABEL_PRODUCT",
    "LABEL_ROLE",
    "LABEL_VERSION",
    "ROLE_API",
    "ROLE_MAINTENANCE",
    "deployment",
    "labels",
    "selector",
    "service",
    "service_url",
    "workload_name",
]


def labels(product: str, version: str, role: str = ROLE_API) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": product,
        "app.kubernetes.io/instance": workload_name(product, version),
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/component": role,
        "app.kubernetes.io/part-of": product,
        **MANAGED_BY,
        LABEL_PRODUCT: product,
        LABEL_VERSION: version,
        LABEL_ROLE: role,
    }


def selector(product: str, version: str, role: str = ROLE_API) -> dict[str, str]:
    return {LABEL_PRODUCT: product, LABEL_VERSION: version, LABEL_ROLE: role}


def service_url(product: str, version: str, namespace: str) -> str:
    return f"http://{workload_name(product, version)}.{namespace}.svc"


ENV_SOURCES = ("configMapKeyRef", "fieldRef", "resourceFieldRef", "secretKeyRef")


def env_problem(version: Version) -> str | None:
    """Why the version's ``env`` cannot become a Deployment, or None.

    ``valueFrom`` is passed through as written (the schema keeps it free-form); a source the
    API server does not know (``{bogus: ...}``) would be refused on every apply, so it is
    named here once and the product is Stalled instead of retried forever.
    """
    for item in version.env or []:
        source = item.value_from
        if source is None:
            continue
        keys = sorted(source) if isinstance(source, dict) else []
        if len(keys) != 1 or keys[0] not in ENV_SOURCES or not isinstance(source[keys[0]], dict):
            return (
                f"env {item.name}: valueFrom must hold exactly one of {', '.join(ENV_SOURCES)} "
                f"(got {', '.join(keys) if keys else type(source).__name__})"
            )
    return None


def version_env(product: dict, version: Version) -> list[dict]:
    """The version's own env plus what Pitwall tells the API about itself."""
    name = product["metadata"]["name"]
    env: list[dict] = [
        {"name": "API_PRODUCT", "value": name},
        {"name": "API_VERSION", "value": version.name},
        {"name": "API_LIFECYCLE", "value": version.lifecycle},
    ]
    if version.lifecycle == "deprecated" and version.sunset_at:
        env.append({"name": "API_SUNSET", "value": version.sunset_at})
    reserved = {e["name"] for e in env}
    for item in version.env or []:
        if item.name in reserved:
            continue
        entry: dict[str, Any] = {"name": item.name}
        if "value_from" in item.model_fields_set:  # passed through as written
            entry["valueFrom"] = item.value_from
        else:
            entry["value"] = "" if item.value is None else str(item.value)
        env.append(entry)
    return env


def deployment(product: dict, spec: ApiProductSpec, version: Version, *, image: str | None = None) -> dict:
    """The Deployment for one version of ``product`` (its metadata; ``spec`` parsed by the model).
    ``image`` overrides the spec (a rollback in force)."""
    meta = product["metadata"]
    name, vname = meta["name"], version.name
    port = version.port
    health = version.health_path
    deadline = int(parse_duration(spec.rollout.progress_deadline))
    container: dict[str, Any] = {
        "name": "api",
        "image": image or version.image,
        "ports": [{"name": PORT_NAME, "containerPort": port, "protocol": "TCP"}],
        "env": version_env(product, version),
        "readinessProbe": {
            "httpGet": {"path": health, "port": port},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": health, "port": port},
            "periodSeconds": 10,
            "failureThreshold": 6,
            "initialDelaySeconds": 10,
        },
    }
    resources = version.resources.model_dump(by_alias=True, exclude_none=True) if version.resources else None
    if resources:
        container["resources"] = resources
    pod_labels = labels(name, vname)
    pod_spec: dict = {"containers": [container]}
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s.name} for s in spec.image_pull_secrets]
    template_meta: dict = {"labels": pod_labels}
    if version.pod_annotations:
        template_meta["annotations"] = dict(version.pod_annotations)
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": workload_name(name, vname),
            "namespace": meta["namespace"],
            "labels": pod_labels,
            "ownerReferences": [owner_reference({"kind": "ApiProduct", **product})],
        },
        "spec": {
            "replicas": version.replicas,
            "selector": {"matchLabels": selector(name, vname)},
            "progressDeadlineSeconds": max(deadline, 1),
            "revisionHistoryLimit": 5,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "template": {"metadata": template_meta, "spec": pod_spec},
        },
    }
    body["metadata"]["annotations"] = {ANNOTATION_SPEC_HASH: spec_hash(body)}
    return body


def service(product: dict, vname: str, *, role: str = ROLE_API) -> dict:
    """The Service of version ``vname``; ``role`` picks the API pods or the maintenance page pods."""
    meta = product["metadata"]
    name = meta["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": workload_name(name, vname),
            "namespace": meta["namespace"],
            "labels": labels(name, vname),
            "ownerReferences": [owner_reference({"kind": "ApiProduct", **product})],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector(name, vname, role),
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def spec_hash(obj: dict) -> str:
    """A short hash of what Pitwall owns in an object (annotations excluded)."""
    material = {"labels": obj["metadata"].get("labels"), "spec": obj.get("spec")}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]
