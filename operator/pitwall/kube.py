"""The one place that talks to the Kubernetes API (besides kopf's own watches).

A small async client over httpx: server-side apply, merge patches of ``/status``, gets and
lists, deletes, Events and Secret reads. Credentials come from the kubeconfig (or the
in-cluster service account) through the official ``kubernetes`` package's loaders, so exec
plugins, client certificates and rotated tokens all work.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import json
import logging
import os
import secrets as _secrets
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import Counter

from . import API_VERSION, FIELD_MANAGER
from .durations import rfc3339
from .errors import Conflict, Forbidden, Invalid, KubeError, NotFound, SecretNotOptedIn
from .transport import LeanClient, LeanTransport
from .vocabulary import opt_in_problem

log = logging.getLogger("pitwall.kube")


@dataclass(frozen=True)
class Kind:
    kind: str
    api_version: str
    plural: str
    namespaced: bool = True

    def base(self, namespace: str | None) -> str:
        prefix = "/api/" + self.api_version if "/" not in self.api_version else "/apis/" + self.api_version
        if self.namespaced and namespace:
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"


KINDS: dict[str, Kind] = {
    k.kind: k
    for k in [
        Kind("ApiProduct", API_VERSION, "apiproducts"),
        Kind("Probe", API_VERSION, "probes"),
        Kind("Backend", API_VERSION, "backends"),
        Kind("AlertRule", API_VERSION, "alertrules"),
        Kind("MaintenanceWindow", API_VERSION, "maintenancewindows"),
        Kind("Incident", API_VERSION, "incidents"),
        Kind("Deployment", "apps/v1", "deployments"),
        Kind("ReplicaSet", "apps/v1", "replicasets"),
        Kind("Service", "v1", "services"),
        Kind("Pod", "v1", "pods"),
        Kind("Secret", "v1", "secrets"),
        Kind("ConfigMap", "v1", "configmaps"),
        Kind("Event", "v1", "events"),
        Kind("Namespace", "v1", "namespaces", namespaced=False),
        Kind("Node", "v1", "nodes", namespaced=False),
        Kind("ServiceAccount", "v1", "serviceaccounts"),
        Kind("EndpointSlice", "discovery.k8s.io/v1", "endpointslices"),
        Kind("Lease", "coordination.k8s.io/v1", "leases"),
        Kind(
            "CustomResourceDefinition",
            "apiextensions.k8s.io/v1",
            "customresourcedefinitions",
            namespaced=False,
        ),
    ]
}


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown kind {name!r}") from None


@dataclass
class Credentials:
    host: str
    ssl_context: ssl.SSLContext
    token: Any  # callable returning "Bearer xyz" or None


def load_credentials(kubeconfig: str | None = None, context: str | None = None) -> Credentials:
    """Kubeconfig from the argument or $KUBECONFIG, else in-cluster, else ~/.kube/config."""
    from kubernetes import client as kclient
    from kubernetes import config as kconfig

    cfg = kclient.Configuration()
    kubeconfig = kubeconfig or os.environ.get("KUBECONFIG")
    if kubeconfig:
        kconfig.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        kconfig.load_incluster_config(client_configuration=cfg)
    else:
        kconfig.load_kube_config(context=context, client_configuration=cfg)

    tls = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if not cfg.verify_ssl:
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    if cfg.cert_file and cfg.key_file:
        tls.load_cert_chain(cfg.cert_file, cfg.key_file)

    def token() -> str | None:
        # kubernetes>=30 keeps a bearer token under "BearerToken" ("authorization" is the old alias).
        value = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        return value or None

    return Credentials(host=cfg.host.rstrip("/"), ssl_context=tls, token=token)


def _error(response: httpx.Response) -> KubeError:
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text[:500]}
    message = body.get("message", response.reason_phrase)
    reason = body.get("reason", response.reason_phrase)
    cls = {404: NotFound, 409: Conflict, 403: Forbidden, 422: Invalid}.get(response.status_code, KubeError)
    return cls(response.status_code, reason, message, body)


# Every request the operator sends, retries included (what the API server sees), like
# client-go's rest_client_requests_total. ``resource`` is e.g. ``probes/status``: bounded.
REQUESTS = Counter(
    "pitwall_kube_requests_total",
    "Requests to the Kubernetes API by method, resource and code",
    ["method", "resource", "code"],
)


def resource_of(path: str) -> str:
    """``/apis/g/v/namespaces/ns/probes/p/status`` -> ``probes/status``; ``/api/v1/nodes`` -> ``nodes``."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) >= 2 and rest[0] == "namespaces":
        rest = rest[2:] or ["namespaces"]
    if not rest:
        return "-"
    return rest[0] + ("/" + rest[2] if len(rest) > 2 else "")


# Idle connections to the API server are kept this long (httpx's default is 5 s, after which a
# burst of status writes pays new TLS handshakes); kube-apiserver closes them after 90 s idle.
KEEPALIVE_S = 30.0
# What a status write reads back: the object's metadata only (kube-apiserver's
# PartialObjectMetadata transform), not the whole object with its spec and status.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json"


def _lean(client: httpx.AsyncClient, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
    """Give the client's direct transport the lean HTTP/1.1 transport (``transport.py``: an
    asyncio protocol and llhttp), as probe checks have. httpx builds the client first, so
    everything else stays httpx's (environment proxies, mounts): only its unused stock transport
    is replaced. Through httpcore (its pool, h11, anyio's TLS stream) a status write spent most
    of its CPU above the socket: ~9% of the operator's at 5,000 probes (issue 18)."""
    if type(client._transport) is httpx.AsyncHTTPTransport:
        client._transport = LeanTransport(
            None,  # the API server itself: not subject to the probes' egress policy
            verify=ssl_context,
            max_connections=limits.max_connections or 100,
            keepalive=limits.keepalive_expiry or KEEPALIVE_S,
        )


class Kube:
    """Async Kubernetes client. One instance per process; share it."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = 30.0,
        max_connections: int = 50,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        """``transport`` replaces the network, as in httpx's own tests: unit tests pass an
        ``httpx.MockTransport`` serving an in-memory API (tests/unit/kubeapi.py)."""
        self.credentials = credentials
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=KEEPALIVE_S,
        )
        # An egress.Client: no cookie jar (the API server sets none; httpx offering every response
        # to an empty jar through urllib's adapters was ~4% of a status write).
        self._client = LeanClient(  # and a direct path to the transport (transport.py)
            base_url=credentials.host,
            verify=credentials.ssl_context,
            timeout=timeout,
            limits=limits,
            headers={"User-Agent": "pitwall"},
            transport=transport,
        )
        if transport is None:
            _lean(self._client, credentials.ssl_context, limits)

    @classmethod
    def from_env(cls, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        return cls(load_credentials(kubeconfig, context))

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- raw ---------------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        body: Any = None,
        content_type: str = "application/json",
        ok_missing: bool = False,
        accept: str = "application/json",
    ) -> dict | None:
        headers = {"Accept": accept}
        token = self.credentials.token()
        if token:
            headers["Authorization"] = token
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body)
        for attempt in range(4):
            try:
                response = await self._client.request(
                    method, path, params=params, content=content, headers=headers
                )
                REQUESTS.labels(method, resource_of(path), str(response.status_code)).inc()
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
                REQUESTS.labels(method, resource_of(path), "error").inc()
                if attempt == 3:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            if response.status_code == 429 or (response.status_code >= 500 and method == "GET"):
                if attempt < 3:
                    await asyncio.sleep(float(response.headers.get("Retry-After", 0.2 * 2**attempt)))
                    continue
            break
        if response.status_code == 404 and ok_missing:
            return None
        if response.status_code >= 400:
            raise _error(response)
        if not response.content:
            return {}
        return response.json()

    # -- typed helpers -----------------------------------------------------------------------
    def _path(
        self, kind: str, namespace: str | None, name: str | None = None, subresource: str | None = None
    ) -> str:
        path = kind_of(kind).base(namespace)
        if name:
            path += "/" + name
        if subresource:
            path += "/" + subresource
        return path

    async def get(self, kind: str, namespace: str | None, name: str) -> dict | None:
        """The object, or None when it does not exist."""
        return await self.request("GET", self._path(kind, namespace, name), ok_missing=True)

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> builtins.list[dict]:
        return [
            item
            async for page in self.pages(
                kind, namespace, label_selector=label_selector, field_selector=field_selector
            )
            for item in page
        ]

    async def pages(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[builtins.list[dict]]:
        """The listing a page at a time (``limit`` objects each), so a caller that keeps a slim
        copy of each object never holds thousands of full ones at once."""
        params = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = str(limit)
        while True:
            result = await self.request("GET", self._path(kind, namespace), params=params or None) or {}
            items = result.get("items", [])
            for item in items:
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", kind_of(kind).api_version)
            yield items
            cont = result.get("metadata", {}).get("continue")
            if not cont:
                return
            params["continue"] = cont

    async def apply(
        self,
        obj: dict,
        *,
        force: bool = True,
        subresource: str | None = None,
        field_manager: str = FIELD_MANAGER,
    ) -> dict:
        """Server-side apply under Pitwall's field manager."""
        meta = obj["metadata"]
        path = self._path(obj["kind"], meta.get("namespace"), meta["name"], subresource)
        params = {"fieldManager": field_manager, "force": "true" if force else "false"}
        return (
            await self.request(
                "PATCH", path, params=params, body=obj, content_type="application/apply-patch+yaml"
            )
            or {}
        )

    async def patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        patch: dict | builtins.list,
        *,
        subresource: str | None = None,
        patch_type: str = "merge",
        accept: str = "application/json",
    ) -> dict:
        content_type = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
        }[patch_type]
        return (
            await self.request(
                "PATCH",
                self._path(kind, namespace, name, subresource),
                params={"fieldManager": FIELD_MANAGER},
                body=patch,
                content_type=content_type,
                accept=accept,
            )
            or {}
        )

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: dict, *, metadata_only: bool = False
    ) -> dict | None:
        """Merge-patch ``/status``; None when the object is gone.

        ``metadata_only``: the answer is the object's ``metadata`` alone (``kind``
        PartialObjectMetadata), for a caller that only needs the new ``resourceVersion``."""
        try:
            return await self.patch(
                kind,
                namespace,
                name,
                {"status": status},
                subresource="status",
                accept=METADATA_ONLY if metadata_only else "application/json",
            )
        except NotFound:
            return None

    async def create(self, obj: dict) -> dict:
        meta = obj["metadata"]
        return await self.request("POST", self._path(obj["kind"], meta.get("namespace")), body=obj) or {}

    async def delete(
        self, kind: str, namespace: str | None, name: str, *, propagation: str = "Background"
    ) -> bool:
        """True when something was deleted, False when it was already gone."""
        result = await self.request(
            "DELETE",
            self._path(kind, namespace, name),
            body={"propagationPolicy": propagation},
            ok_missing=True,
        )
        return result is not None

    async def read_secret(self, namespace: str, name: str, key: str, *, use: str) -> str | None:
        """A Secret's value as text; None when the Secret or the key is missing.

        ``use`` is what the value is for (``probes`` or ``receivers``); raises
        :class:`SecretNotOptedIn` when the Secret does not carry ``pitwall.dev/use`` for it.
        """
        secret = await self.get("Secret", namespace, name)
        if not secret:
            return None
        problem = opt_in_problem(secret, use)
        if problem:
            raise SecretNotOptedIn(problem)
        data = secret.get("data") or {}
        if key in data:
            return base64.b64decode(data[key]).decode()
        string_data = secret.get("stringData") or {}
        return string_data.get(key)

    async def event(self, obj: dict, reason: str, message: str, *, type_: str = "Normal") -> None:
        """Record a core/v1 Event on ``obj``; failures are logged, never raised."""
        meta = obj.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        stamp = rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta.get('name', 'pitwall')}.{_secrets.token_hex(8)}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1000],
            "type": type_,
            "source": {"component": "pitwall"},
            "reportingComponent": "pitwall.dev/operator",
            "reportingInstance": os.environ.get("HOSTNAME", "pitwall"),
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.create(event)
        except Exception as exc:  # an Event is never worth failing a reconcile for
            log.warning("could not record event %s on %s/%s: %s", reason, namespace, meta.get("name"), exc)
