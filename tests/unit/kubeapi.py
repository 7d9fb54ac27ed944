"""A small in-memory Kubernetes API behind ``httpx.MockTransport``, for reconciler unit tests.

httpx tests its clients through a transport; this does the same for :class:`pitwall.kube.Kube`.
It answers the requests the operator sends (GET, LIST with label selectors, POST, PATCH as
merge, JSON or apply patch, the ``/status`` subresource, DELETE with finalizers) the way the
API server does in the respects the reconcilers depend on: ``resourceVersion`` advances on
every write, ``generation`` on spec changes only, a write to the main resource leaves
``status`` alone and a write to ``/status`` leaves everything else alone, unknown objects
are 404 with a Status body, a create of an existing name is 409.

Approximations, on purpose: server-side apply is a recursive merge of the applied object
(lists replaced whole, no field ownership, no removal of fields a manager stopped applying);
strategic merge is a merge patch; label selectors support ``k``, ``!k``, ``k=v``, ``k!=v``;
no watch endpoint: :meth:`KubeAPI.echo` hands every change to a callback at once, which is
how tests keep a :class:`pitwall.runtime.Runtime`'s watch caches current.

Only ever used by tests/unit: integration tests run against a real control plane.
"""

from __future__ import annotations

import copy
import json
import ssl
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from pitwall.kube import KINDS, Credentials, Kube
from pitwall.runtime import Runtime, Settings

HOST = "https://kube.test"
WITH_STATUS = {
    "ApiProduct",
    "Probe",
    "Backend",
    "AlertRule",
    "MaintenanceWindow",
    "Deployment",
    "ReplicaSet",
    "Pod",
    "Service",
    "Namespace",
    "Node",
}
PLURALS = {k.plural: k for k in KINDS.values()}
Key = tuple[str, str | None, str]  # (kind, namespace, name)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: dicts merge recursively, ``None`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc: Any, ops: list[dict]) -> Any:
    """RFC 6902 add/remove/replace/test (what an operator sends); raises ValueError on a failed op."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _pointer(op["path"])
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, op["value"])
            elif kind == "remove":
                parent.pop(index)
            elif kind == "replace":
                parent[index] = op["value"]
            elif kind == "test" and parent[index] != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
        else:
            if kind in ("remove", "replace", "test") and last not in parent:
                raise ValueError(f"no value at {op['path']}")
            if kind in ("add", "replace"):
                parent[last] = op["value"]
            elif kind == "remove":
                del parent[last]
            elif kind == "test" and parent[last] != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
    return doc


def matches_selector(labels: dict | None, selector: str | None) -> bool:
    labels = labels or {}
    for term in (selector or "").split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.strip().rstrip("=")) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _status(code: int, reason: str, message: str) -> httpx.Response:
    return httpx.Response(
        code,
        json={
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": reason,
            "message": message,
            "code": code,
        },
    )


class KubeAPI:
    """The objects, the requests seen, and a transport that serves them."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) in order
        # (method, kind) or (method, kind, name) -> (code, reason, message): answered instead
        self.refuse: dict[tuple[str, ...], tuple[int, str, str]] = {}
        self._version = 0
        self._echo: list[Callable[[str, dict], None]] = []
        self.transport = httpx.MockTransport(self._handle)

    # -- for tests ---------------------------------------------------------------------------
    def kube(self) -> Kube:
        """A :class:`Kube` whose every request this API answers."""
        credentials = Credentials(host=HOST, ssl_context=ssl.create_default_context(), token=lambda: None)
        return Kube(credentials, transport=self.transport)

    def echo(self, callback: Callable[[str, dict], None]) -> None:
        """Call ``callback(event_type, obj)`` after every change (an instant watch)."""
        self._echo.append(callback)

    def put(self, obj: dict) -> dict:
        """Create or replace ``obj`` as ``kubectl apply`` would (the status kept unless given)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        kind = KINDS[obj["kind"]]
        obj.setdefault("apiVersion", kind.api_version)
        if kind.namespaced:
            meta.setdefault("namespace", "default")
        old = self.objects.get(self._key(obj))
        if old is not None:
            meta.setdefault("uid", old["metadata"]["uid"])
            meta.setdefault("creationTimestamp", old["metadata"]["creationTimestamp"])
            changed = old.get("spec") != obj.get("spec")
            if "status" not in obj and "status" in old:
                obj["status"] = copy.deepcopy(old["status"])  # status is not the applier's
            meta["generation"] = old["metadata"].get("generation", 1) + (1 if changed else 0)
        return self._store(obj, created=old is None)

    def get(self, kind: str, namespace: str | None, name: str) -> dict | None:
        obj = self.objects.get((kind, namespace if KINDS[kind].namespaced else None, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        return [
            copy.deepcopy(o)
            for (k, ns, _), o in sorted(self.objects.items(), key=lambda i: str(i[0]))
            if k == kind and (namespace is None or ns == namespace)
        ]

    def set_status(self, kind: str, namespace: str | None, name: str, status: dict) -> dict:
        """Merge ``status`` in, as another controller (kube-controller-manager) would."""
        obj = self.objects[(kind, namespace, name)]
        return self._store({**obj, "status": merge_patch(obj.get("status") or {}, status)})

    def events(self, name: str | None = None) -> list[dict]:
        """Events recorded, oldest first; ``name``: only those about that object."""
        return sorted(
            (
                e
                for e in self.list("Event")
                if name is None or (e.get("involvedObject") or {}).get("name") == name
            ),
            key=lambda e: int(e["metadata"]["resourceVersion"]),
        )

    def reasons(self, name: str | None = None) -> list[str]:
        return [e["reason"] for e in self.events(name)]

    def writes(self, kind_plural: str | None = None) -> list[tuple[str, str]]:
        """The requests that changed something (not GETs), optionally of one resource."""
        return [
            (m, p) for m, p in self.requests if m != "GET" and (kind_plural is None or f"/{kind_plural}" in p)
        ]

    # -- the server --------------------------------------------------------------------------
    def _key(self, obj: dict) -> Key:
        meta = obj["metadata"]
        return (obj["kind"], meta.get("namespace") if KINDS[obj["kind"]].namespaced else None, meta["name"])

    def _store(self, obj: dict, *, created: bool = False) -> dict:
        self._version += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._version)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta.setdefault("generation", 1)
        self.objects[self._key(obj)] = obj
        for callback in self._echo:
            callback("ADDED" if created else "MODIFIED", copy.deepcopy(obj))
        return copy.deepcopy(obj)

    def _remove(self, key: Key) -> dict:
        obj = self.objects.pop(key)
        self._version += 1
        for callback in self._echo:
            callback("DELETED", copy.deepcopy(obj))
        return obj

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((request.method, path))
        parts = [p for p in path.split("/") if p]
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        namespace = None
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) > 2:
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = (
            rest[0],
            (rest[1] if len(rest) > 1 else None),
            (rest[2] if len(rest) > 2 else None),
        )
        kind = PLURALS.get(plural)
        if kind is None:
            return _status(404, "NotFound", f"the server could not find the requested resource ({plural})")
        refused = self.refuse.get((request.method, kind.kind, name or "")) or self.refuse.get(
            (request.method, kind.kind)
        )
        if refused:
            return _status(*refused)
        body = json.loads(request.content) if request.content else None
        key = (kind.kind, namespace, name or "")
        if request.method == "GET" and name is None:
            selector = request.url.params.get("labelSelector")
            fields = request.url.params.get("fieldSelector")
            items = [
                o
                for (k, ns, _), o in self.objects.items()
                if k == kind.kind
                and (namespace is None or ns == namespace)
                and matches_selector(o["metadata"].get("labels"), selector)
                and matches_selector(_fields(o), fields)
            ]
            return httpx.Response(
                200,
                json={
                    "kind": f"{kind.kind}List",
                    "items": copy.deepcopy(items),
                    "metadata": {"resourceVersion": str(self._version)},
                },
            )
        if request.method == "POST":
            body.setdefault("metadata", {})
            if kind.namespaced:
                body["metadata"]["namespace"] = namespace
            key = self._key(body)
            if key in self.objects:
                return _status(409, "AlreadyExists", f'{plural} "{body["metadata"]["name"]}" already exists')
            body["metadata"]["generation"] = 1
            return httpx.Response(201, json=self._store(body, created=True))
        old = self.objects.get(key)
        content_type = request.headers.get("content-type", "")
        if request.method == "PATCH" and "apply-patch" in content_type and old is None and sub is None:
            body["metadata"]["generation"] = 1
            return httpx.Response(201, json=self._store(body, created=True))
        if old is None:
            return _status(404, "NotFound", f'{plural} "{name}" not found')
        if request.method == "GET":
            return httpx.Response(200, json=copy.deepcopy(old))
        if request.method == "DELETE":
            if old["metadata"].get("finalizers"):
                if not old["metadata"].get("deletionTimestamp"):
                    marked = copy.deepcopy(old)
                    marked["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
                    return httpx.Response(200, json=self._store(marked))
                return httpx.Response(200, json=copy.deepcopy(old))
            return httpx.Response(200, json=self._remove(key))
        if request.method in ("PATCH", "PUT"):
            try:
                if "json-patch" in content_type:
                    new = json_patch(old, body)
                else:
                    new = merge_patch(old, body)
            except (ValueError, KeyError, IndexError) as exc:
                return _status(422, "Invalid", f"patch failed: {exc}")
            with_status = kind.kind in WITH_STATUS
            if sub == "status":
                new = {**old, "status": new.get("status")}
            elif with_status:
                new = {**new, "status": old.get("status")}
                if new.get("status") is None:
                    new.pop("status")
            new["metadata"] = {
                **new["metadata"],
                "uid": old["metadata"]["uid"],
                "name": old["metadata"]["name"],
            }
            if new.get("spec") != old.get("spec"):
                new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            if old["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
                self.objects[key] = new
                return httpx.Response(200, json=self._remove(key))
            return httpx.Response(200, json=self._store(new))
        return _status(405, "MethodNotAllowed", request.method)


def _fields(obj: dict) -> dict:
    meta = obj.get("metadata") or {}
    return {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace")}


class Clock:
    """``pitwall.durations.now`` under a test's control (install with ``monkeypatch``)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.moment = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> datetime:
        self.moment += timedelta(seconds=seconds)
        return self.moment


def runtime(api: KubeAPI, **settings: Any) -> Runtime:
    """A :class:`Runtime` wired as ``pitwall run`` wires it (every domain registered, no
    queue started, no port opened), whose watch caches follow ``api`` at once."""
    from pitwall import wiring

    defaults: dict[str, Any] = {
        "statuspage_port": 0,
        "internal_port": 0,
        "metrics_port": 0,
        "target_mode": "endpoints",
    }
    rt = Runtime(kube=api.kube(), settings=Settings(**{**defaults, **settings}))

    def follow(event: str, obj: dict) -> None:
        store = rt.stores.get(obj["kind"])
        if store is not None:
            store.update(event, obj)

    api.echo(follow)
    for obj in api.objects.values():
        follow("ADDED", copy.deepcopy(obj))
    wiring.register(rt)
    return rt


def condition(obj: dict | None, type_: str) -> dict:
    """The condition of ``type_`` in ``obj``'s status ({} when absent)."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return {}
