"""User journeys, shared by the integration tests and the kind end-to-end run.

Each journey is what a user of Pitwall does and then checks with ``kubectl``: it takes ``k``, a
kubectl-like object bound to one namespace (``apply``, ``get``, ``list``, ``patch`` and
``k(*args)``, like ``tests.conftest.Kubectl``), and ``env``, what differs between the two places
the journeys run:

- the local control plane (``tests/integration/test_install.py``): kwok pods, the operator out
  of the cluster reaching pods through their loopback twins, a receiver on 127.0.0.1;
- a kind cluster (``hack/e2e-kind.sh`` runs ``python -m tests.journeys``): real pods of the demo
  API image, the operator in the cluster reaching Services, a receiver pod.

The assertions are the same in both places. Only the standard library is used here, so the
module runs wherever ``kubectl`` and Python are::

    python -m tests.journeys --kubeconfig ~/.kube/config --api-image pitwall-demo:e2e \\
        --receiver-image pitwall:e2e --timeout-scale 4
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

API = "pitwall.dev/v1alpha1"
JOURNEY_LABEL = {"tier": "journey-critical"}


# -- the two seams ---------------------------------------------------------------------------------
class KubectlLike(Protocol):
    namespace: str

    def __call__(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess: ...
    def apply(self, manifest: dict | str) -> Any: ...
    def get(self, kind: str, name: str) -> dict | None: ...
    def list(self, kind: str, selector: str | None = None) -> list[dict]: ...
    def patch(self, kind: str, name: str, patch: dict, patch_type: str = "merge") -> Any: ...


class Env(Protocol):
    api_image: str  # its pods serve the demo API (pitwall.demo) on port 8080
    timeout_scale: float  # real pods are slower than kwok's
    window: tuple[int, int]  # maintenance window: seconds until it starts, its duration

    def receiver_url(self, path: str) -> str: ...  # where the operator can POST
    def received(self, prefix: str) -> list[dict]: ...  # what arrived there: {"path", "body"}


class Kubectl:
    """``kubectl`` bound to a namespace, for ``python -m tests.journeys`` (same interface as
    ``tests.conftest.Kubectl``)."""

    def __init__(self, namespace: str, kubeconfig: str | None = None, binary: str = "kubectl"):
        self.namespace = namespace
        self.base = [binary] + ([f"--kubeconfig={kubeconfig}"] if kubeconfig else [])

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [*self.base, *args], input=input, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def __call__(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        return self.run(*args, "-n", self.namespace, **kwargs)

    def apply(self, manifest: dict | str) -> subprocess.CompletedProcess:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self("apply", "--server-side", "-f", "-", input=text)

    def get(self, kind: str, name: str) -> dict | None:
        proc = self("get", kind, name, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def list(self, kind: str, selector: str | None = None) -> list[dict]:
        args = ["get", kind, "-o", "json"] + (["-l", selector] if selector else [])
        return json.loads(self(*args).stdout)["items"]

    def patch(
        self, kind: str, name: str, patch: dict, patch_type: str = "merge"
    ) -> subprocess.CompletedProcess:
        return self("patch", kind, name, "--type", patch_type, "-p", json.dumps(patch))


# -- small helpers ---------------------------------------------------------------------------------
def eventually(
    check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, message: str = ""
) -> Any:
    """Wait until ``check()`` returns something truthy and return it."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # not there yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {message or 'a condition'}: last value {last!r}"
    )


def condition(obj: dict | None, type_: str) -> dict:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return {}


def ready(k: KubectlLike, kind: str, name: str) -> dict | None:
    """The object when Ready=True for its current generation (kstatus), else None."""
    obj = k.get(kind, name)
    if (
        obj
        and condition(obj, "Ready").get("status") == "True"
        and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
    ):
        return obj
    return None


def _when(
    obj_check: Callable[[dict], bool], k: KubectlLike, kind: str, name: str
) -> Callable[[], dict | None]:
    def check() -> dict | None:
        obj = k.get(kind, name)
        return obj if obj and obj_check(obj) else None

    return check


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready_endpoints(k: KubectlLike, service: str) -> list[str]:
    slices = k.list("endpointslices", f"kubernetes.io/service-name={service}")
    return sorted(
        address
        for s in slices
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
        for address in e.get("addresses") or []
    )


def pod_ips(k: KubectlLike, selector: str) -> list[str]:
    """IPs of the Ready pods matching ``selector``."""
    return sorted(
        p["status"]["podIP"]
        for p in k.list("pods", selector)
        if (p.get("status") or {}).get("podIP")
        and p["metadata"].get("deletionTimestamp") is None
        and condition(p, "Ready").get("status") == "True"
    )


def product(name: str, versions: list[dict], **spec: Any) -> dict:
    return {
        "apiVersion": API,
        "kind": "ApiProduct",
        "metadata": {"name": name},
        "spec": {
            "displayName": name.title(),
            "owner": {"team": "journeys", "contact": "journeys@example.com"},
            "versions": versions,
            **spec,
        },
    }


def probe(
    name: str, product_name: str, version: str, path: str, labels: dict | None = None, **spec: Any
) -> dict:
    body = {
        "apiVersion": API,
        "kind": "Probe",
        "metadata": {"name": name},
        "spec": {
            "target": {"apiProduct": {"name": product_name, "version": version}},
            "interval": "2s",
            "timeout": "2s",
            "failureThreshold": 2,
            "successThreshold": 1,
            "steps": [{"name": "check", "request": {"path": path}, "expect": {"status": [200]}}],
            **spec,
        },
    }
    if labels:
        body["metadata"]["labels"] = dict(labels)
    return body


# -- the journeys ----------------------------------------------------------------------------------
def products(k: KubectlLike, env: Env) -> None:
    """An ApiProduct becomes Ready with a Deployment and a Service per version; a replica edit
    on the CR reaches the Deployment; a retired version's workloads are deleted."""
    t = env.timeout_scale
    k.apply(
        product(
            "shop",
            [
                {"name": "v1", "image": env.api_image, "replicas": 2},
                {"name": "v2", "image": env.api_image, "replicas": 1},
            ],
        )
    )
    eventually(lambda: ready(k, "apiproduct", "shop"), 60 * t, message="ApiProduct shop Ready")
    k("wait", "--for=condition=Ready", "apiproduct/shop", "--timeout=10s")
    dep = k.get("deployment", "shop-v1")
    assert dep["spec"]["replicas"] == 2 and dep["status"].get("readyReplicas") == 2, dep.get("status")
    assert dep["metadata"]["ownerReferences"][0]["kind"] == "ApiProduct"
    assert dep["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pitwall"
    svc = k.get("service", "shop-v1")
    assert svc["spec"]["selector"] == {
        "pitwall.dev/product": "shop",
        "pitwall.dev/version": "v1",
        "pitwall.dev/role": "api",
    }
    assert svc["spec"]["ports"][0]["port"] == 80
    status = k.get("apiproduct", "shop")["status"]
    assert status["readyVersions"] == "2/2", status

    k.patch(
        "apiproduct",
        "shop",
        {
            "spec": {
                "versions": [
                    {"name": "v1", "image": env.api_image, "replicas": 3},
                    {"name": "v2", "image": env.api_image, "replicas": 1, "lifecycle": "retired"},
                ]
            }
        },
    )
    eventually(
        lambda: (k.get("deployment", "shop-v1") or {}).get("status", {}).get("readyReplicas") == 3,
        60 * t,
        message="shop-v1 scaled to 3 ready replicas",
    )
    eventually(
        lambda: k.get("deployment", "shop-v2") is None and k.get("service", "shop-v2") is None,
        30 * t,
        message="retired v2's Deployment and Service deleted",
    )
    obj = eventually(lambda: ready(k, "apiproduct", "shop"), 60 * t, message="shop Ready after the edit")
    assert [v["readyReplicas"] for v in obj["status"]["versions"] if v["name"] == "v1"] == [3], obj["status"]


def probes(k: KubectlLike, env: Env) -> None:
    """A Probe on an ApiProduct version runs against its pods and writes Up to status."""
    t = env.timeout_scale
    k.apply(probe("shop-v1-isup", "shop", "v1", "/isUp"))
    obj = eventually(
        _when(lambda o: (o.get("status") or {}).get("state") == "Up", k, "probe", "shop-v1-isup"),
        30 * t,
        message="Probe shop-v1-isup Up",
    )
    k("wait", "--for=condition=Ready", "probe/shop-v1-isup", "--timeout=10s")
    status = obj["status"]
    assert status.get("target"), status
    assert status.get("consecutiveSuccesses", 0) >= 1, status
    eventually(
        lambda: [
            e
            for e in k.list("events")
            if e["involvedObject"].get("name") == "shop-v1-isup" and e.get("reason") == "ProbeUp"
        ],
        20 * t,
        message="Event ProbeUp",
    )


def backends(k: KubectlLike, env: Env) -> None:
    """A Backend whose health is a Probe becomes Available; a product that names it shows in
    its impact matrix."""
    t = env.timeout_scale
    k.apply(probe("core-banking-health", "shop", "v1", "/backends/core-banking/health"))
    k.apply(
        {
            "apiVersion": API,
            "kind": "Backend",
            "metadata": {"name": "core-banking"},
            "spec": {
                "displayName": "Core banking",
                "owner": {"team": "core-banking"},
                "probeRef": {"name": "core-banking-health"},
            },
        }
    )
    k.patch(
        "apiproduct",
        "shop",
        {
            "spec": {
                "backends": [{"name": "core-banking", "criticality": "critical"}],
                "consumers": [{"name": "acme", "versions": ["v1"]}],
            }
        },
    )
    eventually(
        _when(lambda o: (o.get("status") or {}).get("state") == "Available", k, "backend", "core-banking"),
        30 * t,
        message="Backend core-banking Available",
    )
    obj = eventually(
        _when(
            lambda o: (
                [p["name"] for p in ((o.get("status") or {}).get("impact") or {}).get("apiProducts", [])]
                == ["shop"]
            ),
            k,
            "backend",
            "core-banking",
        ),
        30 * t,
        message="impact lists shop",
    )
    assert [c["name"] for c in obj["status"]["impact"]["consumers"]] == ["acme"], obj["status"]["impact"]
    k("wait", "--for=condition=Ready", "backend/core-banking", "--timeout=10s")
    eventually(lambda: ready(k, "apiproduct", "shop"), 30 * t, message="shop Ready with its backend")


def alerts(k: KubectlLike, env: Env) -> None:
    """An AlertRule fires to a receiver whose URL is in a Secret when its Probe goes Down,
    takes an acknowledgement, and resolves when the Probe is Up again."""
    t = env.timeout_scale
    k.apply(product("checkout", [{"name": "v1", "image": env.api_image, "replicas": 1}]))
    eventually(lambda: ready(k, "apiproduct", "checkout"), 60 * t, message="ApiProduct checkout Ready")
    k.apply(probe("checkout-isup", "checkout", "v1", "/isUp", labels=JOURNEY_LABEL))
    eventually(
        _when(lambda o: (o.get("status") or {}).get("state") == "Up", k, "probe", "checkout-isup"),
        30 * t,
        message="Probe checkout-isup Up",
    )
    k.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "journey-hook", "labels": {"pitwall.dev/use": "receivers"}},
            "stringData": {"url": env.receiver_url("/alerts/checkout")},
        }
    )
    k.apply(
        {
            "apiVersion": API,
            "kind": "AlertRule",
            "metadata": {"name": "checkout-down"},
            "spec": {
                "severity": "critical",
                "selector": {"kinds": ["Probe"], "matchLabels": JOURNEY_LABEL},
                "when": {"condition": "Ready", "status": "False", "for": "1s"},
                "receivers": [
                    {"name": "hook", "type": "webhook", "secretRef": {"name": "journey-hook", "key": "url"}}
                ],
                "repeatInterval": "1h",
            },
        }
    )
    eventually(lambda: ready(k, "alertrule", "checkout-down"), 30 * t, message="AlertRule Ready")
    assert condition(k.get("alertrule", "checkout-down"), "Firing").get("status") == "False"
    assert env.received("/alerts/checkout") == [], "notified before any outage"

    # the outage: no replicas, so nothing answers behind the version's Service
    k.patch(
        "apiproduct",
        "checkout",
        {"spec": {"versions": [{"name": "v1", "image": env.api_image, "replicas": 0}]}},
    )
    firing = eventually(
        lambda: env.received("/alerts/checkout"), 60 * t, message="firing notification received"
    )
    rule = eventually(
        _when(lambda o: condition(o, "Firing").get("status") == "True", k, "alertrule", "checkout-down"),
        30 * t,
        message="AlertRule Firing=True",
    )
    alert = rule["status"]["alerts"][0]
    assert alert["state"] == "firing", alert
    assert firing[0]["body"]["status"] == "firing", firing[0]  # Alertmanager v4 webhook format
    assert "checkout-isup" in json.dumps(firing[0]["body"]), firing[0]
    delivered = eventually(
        lambda: [
            d
            for a in (k.get("alertrule", "checkout-down")["status"].get("alerts") or [])
            for d in a.get("deliveries") or []
            if d.get("ok")
        ],
        30 * t,
        message="delivery recorded in status",
    )
    assert delivered[0]["event"] == "firing", delivered
    secret_url = env.receiver_url("/alerts/checkout")
    assert secret_url not in json.dumps(k.get("alertrule", "checkout-down")), (
        "the Secret's URL leaked into status"
    )

    # acknowledge: the operator consumes the annotation (a PATCH of the AlertRule)
    k(
        "annotate",
        "alertrule",
        "checkout-down",
        f"pitwall.dev/acknowledge={alert['key']}",
        "pitwall.dev/acknowledged-by=journeys",
        "--overwrite",
    )
    eventually(
        _when(
            lambda o: (
                (o["status"].get("alerts") or [{}])[0].get("acknowledgedBy") == "journeys"
                and "pitwall.dev/acknowledge" not in (o["metadata"].get("annotations") or {})
            ),
            k,
            "alertrule",
            "checkout-down",
        ),
        30 * t,
        message="acknowledgement consumed",
    )

    k.patch(
        "apiproduct",
        "checkout",
        {"spec": {"versions": [{"name": "v1", "image": env.api_image, "replicas": 1}]}},
    )
    eventually(
        lambda: len(env.received("/alerts/checkout")) >= 2, 60 * t, message="resolved notification received"
    )
    eventually(
        _when(
            lambda o: (o["status"].get("alerts") or [{}])[0].get("state") == "resolved",
            k,
            "alertrule",
            "checkout-down",
        ),
        30 * t,
        message="alert resolved in status",
    )
    sent = env.received("/alerts/checkout")
    assert [m["body"]["status"] for m in sent] == ["firing", "resolved"], sent  # each once


def maintenance(k: KubectlLike, env: Env) -> None:
    """A MaintenanceWindow puts the product version's Service on the maintenance page pods
    while it is open, notifies, and switches back when it ends."""
    t = env.timeout_scale
    start_in, duration = env.window
    api_ips = eventually(
        lambda: (lambda ips: ips if ips and ready_endpoints(k, "shop-v1") == ips else None)(
            pod_ips(k, "pitwall.dev/product=shop,pitwall.dev/version=v1,pitwall.dev/role=api")
        ),
        30 * t,
        message="shop-v1's endpoints are its API pods",
    )
    start = datetime.now(UTC) + timedelta(seconds=start_in)
    k.apply(
        {
            "apiVersion": API,
            "kind": "MaintenanceWindow",
            "metadata": {"name": "upgrade"},
            "spec": {
                "reason": "Core banking upgrade",
                "schedule": {"start": _stamp(start), "duration": f"{duration}s"},
                "targets": {"apiProducts": {"names": ["shop"]}},
                "notice": {
                    "leadTime": "5s",
                    "receivers": [
                        {"name": "ops", "type": "webhook", "url": env.receiver_url("/maintenance")}
                    ],
                },
            },
        }
    )
    eventually(lambda: ready(k, "maintenancewindow", "upgrade"), 30 * t, message="MaintenanceWindow Ready")

    svc = eventually(
        _when(
            lambda s: s["spec"]["selector"].get("pitwall.dev/role") == "maintenance-page",
            k,
            "service",
            "shop-v1",
        ),
        start_in + 30 * t,
        message="Service on the page pods",
    )
    assert svc["spec"]["selector"]["pitwall.dev/version"] == "v1"
    assert datetime.now(UTC) >= start - timedelta(seconds=2), "switched before the window opened"
    pages = eventually(
        lambda: [
            d
            for d in k.list("deployments", "pitwall.dev/role=maintenance-page")
            if (d.get("status") or {}).get("readyReplicas")
        ],
        30 * t,
        message="maintenance page Deployment ready",
    )
    assert pages[0]["metadata"]["ownerReferences"][0]["kind"] == "MaintenanceWindow"
    page_ips = eventually(
        lambda: pod_ips(k, "pitwall.dev/product=shop,pitwall.dev/role=maintenance-page"),
        30 * t,
        message="ready page pods",
    )
    eventually(
        lambda: ready_endpoints(k, "shop-v1") == page_ips,
        30 * t,
        message="the Service's endpoints are the page pods",
    )
    eventually(
        _when(lambda o: condition(o, "InMaintenance").get("status") == "True", k, "apiproduct", "shop"),
        20 * t,
        message="ApiProduct InMaintenance=True",
    )
    assert k.get("maintenancewindow", "upgrade")["status"]["phase"] == "Active"
    assert k.get("deployment", "shop-v1")["status"].get("readyReplicas") == 3  # the API pods keep running

    eventually(
        _when(lambda s: s["spec"]["selector"].get("pitwall.dev/role") == "api", k, "service", "shop-v1"),
        duration + 30 * t,
        message="Service back on the API pods",
    )
    assert datetime.now(UTC) >= start + timedelta(seconds=duration - 2), (
        "switched back before the window ended"
    )
    eventually(
        _when(lambda o: o["status"].get("phase") == "Completed", k, "maintenancewindow", "upgrade"),
        20 * t,
        message="window Completed",
    )
    eventually(
        lambda: not k.list("deployments", "pitwall.dev/role=maintenance-page"),
        30 * t,
        message="page Deployment deleted",
    )
    eventually(
        lambda: ready_endpoints(k, "shop-v1") == api_ips,
        30 * t,
        message="the Service's endpoints are the API pods again",
    )
    kinds = [n["kind"] for n in k.get("maintenancewindow", "upgrade")["status"]["notices"]]
    assert {"start", "end"} <= set(kinds), kinds
    eventually(lambda: len(env.received("/maintenance")) >= 2, 20 * t, message="notices received")
    eventually(
        _when(lambda o: condition(o, "InMaintenance").get("status") == "False", k, "apiproduct", "shop"),
        20 * t,
        message="ApiProduct InMaintenance=False",
    )


JOURNEYS: list[Callable[[KubectlLike, Env], None]] = [products, probes, backends, alerts, maintenance]


def examples_reconciled(k: KubectlLike, env: Env) -> None:
    """Every example object (examples/, namespace of ``k``) is observed by the operator at its
    current generation and none is Stalled."""
    t = env.timeout_scale

    def all_observed() -> list[dict] | None:
        items = json.loads(k("get", "pitwall", "-o", "json").stdout)["items"]
        if len(items) < 5 or any(
            (o.get("status") or {}).get("observedGeneration") != o["metadata"]["generation"] for o in items
        ):
            return None
        return items

    items = eventually(all_observed, 60 * t, message="every example observed")
    assert {"ApiProduct", "Probe", "Backend", "AlertRule", "MaintenanceWindow"} <= {o["kind"] for o in items}
    stalled = [o["metadata"]["name"] for o in items if condition(o, "Stalled").get("status") == "True"]
    assert not stalled, f"stalled examples: {stalled}"


def run(
    k: KubectlLike, env: Env, journeys: list[Callable[[KubectlLike, Env], None]] | None = None
) -> list[str]:
    """Run the journeys in order (later ones build on ``shop``); returns the names that failed."""
    failed = []
    for journey in journeys or JOURNEYS:
        started = time.monotonic()
        try:
            journey(k, env)
        except Exception:
            failed.append(journey.__name__)
            print(f"FAILED {journey.__name__} after {time.monotonic() - started:.1f}s", flush=True)
            traceback.print_exc()
            if journey in (products,):
                break  # every later journey needs the product
        else:
            print(f"passed {journey.__name__} in {time.monotonic() - started:.1f}s", flush=True)
    return failed


# -- kind only: what only real pods, a real Service and a real leader hand-over show -------------
# (``python -m tests.journeys --kind``; hack/e2e-kind.sh runs them after JOURNEYS.) ``env`` is a
# ClusterEnv: ``env.measure(name, seconds)`` records what bench/results/kind.md reports.
CLIENT = """
import json, sys, time, urllib.request, urllib.error
url = sys.argv[1]
while True:
    started = time.time()
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            code, body = r.status, r.read(200)
    except urllib.error.HTTPError as e:
        code, body = e.code, e.read(200)
    except Exception as e:
        code, body = 0, str(e).encode()[:200]
    print(json.dumps({"t": started, "code": code, "body": body.decode(errors="replace")}), flush=True)
    time.sleep(max(0.0, 0.2 - (time.time() - started)))
"""


def _in(k: KubectlLike, namespace: str) -> KubectlLike:
    other = copy.copy(k)
    other.namespace = namespace
    return other


def _probe_up(k: KubectlLike, name: str) -> Callable[[], dict | None]:
    return _when(lambda o: (o.get("status") or {}).get("state") == "Up", k, "probe", name)


def service_dns(k: KubectlLike, env: Env) -> None:
    """The operator runs in the cluster: its probes reach a version through the version's
    Service DNS name, and the answer comes from a real pod."""
    obj = eventually(_probe_up(k, "shop-v1-isup"), 30 * env.timeout_scale, message="shop-v1-isup Up")
    assert obj["status"]["target"] == f"http://shop-v1.{k.namespace}.svc", obj["status"]


def new_version(k: KubectlLike, env: Env) -> None:
    """A new product version, applied with its Probe, serves real pods and its probe goes Up
    (measured: apply to Up)."""
    t = env.timeout_scale
    started = time.monotonic()
    k.apply(product("fresh", [{"name": "v1", "image": env.api_image, "replicas": 1}]))
    k.apply(probe("fresh-v1-isup", "fresh", "v1", "/isUp", labels={"tier": "handover"}))
    eventually(_probe_up(k, "fresh-v1-isup"), 120 * t, interval=0.2, message="fresh-v1-isup Up")
    env.measure("apply_to_probe_up_s", time.monotonic() - started)
    eventually(lambda: ready(k, "apiproduct", "fresh"), 60 * t, message="ApiProduct fresh Ready")


def env_reaches_pods(k: KubectlLike, env: Env) -> None:
    """Replica and env edits on the CR reach the running pods (read inside them)."""
    t = env.timeout_scale
    k.patch(
        "apiproduct",
        "fresh",
        {
            "spec": {
                "versions": [
                    {
                        "name": "v1",
                        "image": env.api_image,
                        "replicas": 2,
                        "env": [{"name": "GREETING", "value": "hello"}],
                    }
                ]
            }
        },
    )
    selector = "pitwall.dev/product=fresh,pitwall.dev/version=v1,pitwall.dev/role=api"

    def pods_with_env() -> list[str] | None:
        pods = [
            p
            for p in k.list("pods", selector)
            if p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
            and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])
        ]
        if len(pods) != 2:
            return None
        # ``k`` appends ``-n NAMESPACE`` last: here it lands as ``sh -c``'s own $0 and $1
        seen = [
            k(
                "exec",
                p["metadata"]["name"],
                "-n",
                k.namespace,
                "--",
                "sh",
                "-c",
                "printenv GREETING",
                check=False,
            ).stdout.strip()
            for p in pods
        ]
        return seen if seen == ["hello", "hello"] else None

    eventually(pods_with_env, 120 * t, interval=1, message="two running pods with GREETING=hello")


def rollback(k: KubectlLike, env: Env) -> None:
    """A version whose new image cannot start (it does not exist) is rolled back to the last
    good image once the rollout misses its progress deadline; the pods run the good image."""
    t = env.timeout_scale
    good = env.api_image
    bad = "pitwall.invalid/does-not-exist:1"  # .invalid never resolves: the pull fails here and anywhere
    k.apply(
        product("rollme", [{"name": "v1", "image": good, "replicas": 1}], rollout={"progressDeadline": "30s"})
    )
    eventually(lambda: ready(k, "apiproduct", "rollme"), 90 * t, message="ApiProduct rollme Ready")
    k.patch("apiproduct", "rollme", {"spec": {"versions": [{"name": "v1", "image": bad, "replicas": 1}]}})
    obj = eventually(
        _when(lambda o: bool((o.get("status") or {}).get("rolledBack")), k, "apiproduct", "rollme"),
        120 + 60 * t,
        interval=1,
        message="rollme rolled back",
    )
    pin = obj["status"]["rolledBack"][0]
    assert pin["failedImage"] == bad and pin["restoredImage"] == good, pin
    eventually(
        lambda: (
            [c["image"] for c in k.get("deployment", "rollme-v1")["spec"]["template"]["spec"]["containers"]]
            == [good]
        ),
        30 * t,
        message="Deployment back on the good image",
    )
    eventually(
        lambda: (
            (k.get("deployment", "rollme-v1").get("status") or {}).get("readyReplicas") == 1
            and (k.get("deployment", "rollme-v1").get("status") or {}).get("updatedReplicas") == 1
        ),
        120 * t,
        interval=1,
        message="a ready pod of the good image",
    )
    assert [
        e
        for e in k.list("events")
        if e["involvedObject"].get("name") == "rollme" and e.get("reason") == "RolledBack"
    ], "no RolledBack event"


def maintenance_traffic(k: KubectlLike, env: Env) -> None:
    """A client pod curling the version's Service gets the maintenance page (503) while the
    window is open and the API again after it (measured: how late each switch is seen)."""
    t = env.timeout_scale
    labels = {"app.kubernetes.io/name": "journey-client"}
    url = f"http://fresh-v1.{k.namespace}.svc/isUp"
    k.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "journey-client"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "client",
                                "image": env.receiver_image,
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["python", "-u", "-c", CLIENT, url],
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }
                        ],
                    },
                },
            },
        }
    )
    k("rollout", "status", "deployment/journey-client", f"--timeout={int(120 * t)}s", timeout=150 * t)

    def seen() -> list[dict]:
        out = k("logs", "deployment/journey-client", "--tail=-1").stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    eventually(lambda: [r for r in seen() if r["code"] == 200], 60 * t, message="the client reaches the API")
    start_in, duration = env.window
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=start_in)
    k.apply(
        {
            "apiVersion": API,
            "kind": "MaintenanceWindow",
            "metadata": {"name": "fresh-upgrade"},
            "spec": {
                "reason": "Upgrade seen through the Service",
                "schedule": {"start": _stamp(start), "duration": f"{duration}s"},
                "targets": {"apiProducts": {"names": ["fresh"]}},
                "notice": {
                    "leadTime": "5s",
                    "receivers": [
                        {"name": "ops", "type": "webhook", "url": env.receiver_url("/maintenance-fresh")}
                    ],
                },
            },
        }
    )
    end = start + timedelta(seconds=duration)
    eventually(
        _when(
            lambda o: (o.get("status") or {}).get("phase") == "Completed",
            k,
            "maintenancewindow",
            "fresh-upgrade",
        ),
        start_in + duration + 60 * t,
        interval=1,
        message="fresh-upgrade Completed",
    )
    eventually(
        lambda: [r for r in seen() if r["t"] > end.timestamp() and r["code"] == 200],
        60 * t,
        message="the client reaches the API after the window",
    )
    rows = seen()
    page = [r for r in rows if r["code"] == 503]
    assert page, "the client never saw the maintenance page"
    assert min(r["t"] for r in page) >= start.timestamp() - 1, "maintenance page served before the window"
    on = min(r["t"] for r in page) - start.timestamp()
    off = (
        min(r["t"] for r in rows if r["t"] > max(r2["t"] for r2 in page) and r["code"] == 200)
        - end.timestamp()
    )
    during = [r for r in rows if start.timestamp() + on <= r["t"] <= end.timestamp()]
    env.measure("maintenance_on_seen_s", on)
    env.measure("maintenance_off_seen_s", off)
    env.measure("maintenance_other_answers_during", len([r for r in during if r["code"] != 503]))
    k("delete", "deployment", "journey-client", "--wait=false")


HANDOVER_ESCALATION_AFTER = 30  # seconds: after the firing and the leader's deletion, past the takeover


def _handover_events(env: Env, path: str) -> list[str]:
    """What one receiver got, in order: firing, escalation or resolved (one alert per message)."""
    out = []
    for message in env.received(path):
        body = message["body"] or {}
        for alert in body.get("alerts") or []:
            event = (alert.get("annotations") or {}).get("event")
            out.append("escalation" if event == "escalation" else alert.get("status"))
    return out


def leader_handover(k: KubectlLike, env: Env) -> None:
    """Deleting the leader pod in the middle of an escalation hands the Lease to the other
    replica: an alert fires (the page receiver is told), the leader pod is deleted before the
    escalation step is due, the new leader sends the escalation (to the second receiver) when it
    is due, and the resolve after it reaches both; each receiver gets exactly one trigger (or
    escalation) and exactly one resolve (measured: Lease takeover time)."""
    t = env.timeout_scale
    system = _in(k, "pitwall-system")
    page, lead = "/alerts/handover-page", "/alerts/handover-lead"
    k.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "handover-hook", "labels": {"pitwall.dev/use": "receivers"}},
            "stringData": {"url": env.receiver_url(page)},
        }
    )
    k.apply(
        {
            "apiVersion": API,
            "kind": "AlertRule",
            "metadata": {"name": "fresh-down"},
            "spec": {
                "severity": "critical",
                "selector": {"kinds": ["Probe"], "matchLabels": {"tier": "handover"}},
                "when": {"condition": "Ready", "status": "False", "for": "1s"},
                "receivers": [
                    {"name": "hook", "type": "webhook", "secretRef": {"name": "handover-hook", "key": "url"}},
                    {
                        "name": "lead",
                        "type": "webhook",
                        "url": env.receiver_url(lead),
                        "escalationOnly": True,
                    },
                ],
                "escalation": [{"after": f"{HANDOVER_ESCALATION_AFTER}s", "receivers": ["lead"]}],
                "repeatInterval": "1h",
            },
        }
    )
    eventually(lambda: ready(k, "alertrule", "fresh-down"), 30 * t, message="AlertRule fresh-down Ready")
    k.patch(
        "apiproduct", "fresh", {"spec": {"versions": [{"name": "v1", "image": env.api_image, "replicas": 0}]}}
    )
    eventually(
        lambda: env.received(page), 60 * t, interval=0.5, message="firing notification before the hand-over"
    )
    fired = eventually(
        lambda: next(
            (
                a
                for a in (k.get("alertrule", "fresh-down").get("status") or {}).get("alerts") or []
                if a.get("since")
            ),
            None,
        ),
        30 * t,
        interval=0.5,
        message="the alert's firing time in status",
    )
    since = datetime.fromisoformat(fired["since"].replace("Z", "+00:00"))

    holder = system.get("lease", "pitwall-operator")["spec"]["holderIdentity"]
    # the identity is the pod's name plus a per-process suffix
    leader_pod = next(
        p["metadata"]["name"]
        for p in system.list("pods", "app.kubernetes.io/name=pitwall")
        if holder.startswith(p["metadata"]["name"])
    )
    # In the middle of the escalation: fired, the escalation not yet due (nor sent).
    elapsed = (datetime.now(UTC) - since).total_seconds()
    assert elapsed < HANDOVER_ESCALATION_AFTER - 5, (
        f"the alert fired {elapsed:.0f}s ago: too late to delete the leader before its escalation"
    )
    assert env.received(lead) == [], "escalated before the leader was deleted"
    started = time.monotonic()
    system("delete", "pod", leader_pod, "--wait=false")

    def new_holder() -> str | None:
        spec = (system.get("lease", "pitwall-operator") or {}).get("spec") or {}
        h = spec.get("holderIdentity")
        return h if h and h != holder else None

    taken_by = eventually(new_holder, 60 * t, interval=0.2, message="another replica holds the Lease")
    env.measure("leader_takeover_s", time.monotonic() - started)
    print(
        f"  Lease pitwall-operator: {holder} -> {taken_by} (escalation due at +{HANDOVER_ESCALATION_AFTER}s)"
    )

    eventually(lambda: env.received(lead), 90 * t, message="the escalation, sent by the new leader")
    k.patch(
        "apiproduct", "fresh", {"spec": {"versions": [{"name": "v1", "image": env.api_image, "replicas": 1}]}}
    )
    eventually(
        lambda: len(_handover_events(env, page)) >= 2 and len(_handover_events(env, lead)) >= 2,
        90 * t,
        message="resolved to both receivers after the hand-over",
    )
    time.sleep(10)  # a repeated notification would arrive now
    assert _handover_events(env, page) == ["firing", "resolved"], env.received(page)
    assert _handover_events(env, lead) == ["escalation", "resolved"], env.received(lead)
    eventually(
        lambda: system.get("deployment", "pitwall")["status"].get("readyReplicas") == 2,
        120 * t,
        interval=1,
        message="two operator replicas ready again",
    )


KIND_JOURNEYS: list[Callable[[KubectlLike, Env], None]] = [
    service_dns,
    new_version,
    env_reaches_pods,
    rollback,
    maintenance_traffic,
    leader_handover,
]


# -- kind (python -m tests.journeys) ---------------------------------------------------------------
RECEIVER = """
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode(errors="replace")
        print(json.dumps({"path": self.path, "body": body}), flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
"""


class ClusterEnv:
    """A real cluster: the operator in it reaches Services; a receiver pod records what it is sent
    (read back from its log)."""

    def __init__(
        self,
        k: Kubectl,
        api_image: str,
        receiver_image: str,
        timeout_scale: float = 4.0,
        window: tuple[int, int] = (20, 40),
    ):
        self.k = k
        self.api_image = api_image
        self.receiver_image = receiver_image
        self.timeout_scale = timeout_scale
        self.window = window
        self.measurements: dict[str, float] = {}

    def measure(self, name: str, value: float) -> None:
        self.measurements[name] = round(value, 2)
        print(f"  measured {name} = {value:.2f}", flush=True)

    def start(self) -> None:
        labels = {"app.kubernetes.io/name": "journey-receiver"}
        self.k.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "journey-receiver"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "automountServiceAccountToken": False,
                            "securityContext": {
                                "runAsNonRoot": True,
                                "runAsUser": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [
                                {
                                    "name": "receiver",
                                    "image": self.receiver_image,
                                    "imagePullPolicy": "IfNotPresent",
                                    "command": ["python", "-u", "-c", RECEIVER],
                                    "ports": [{"name": "http", "containerPort": 8080}],
                                    "readinessProbe": {
                                        "httpGet": {"path": "/", "port": "http"},
                                        "periodSeconds": 2,
                                    },
                                    "securityContext": {
                                        "allowPrivilegeEscalation": False,
                                        "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]},
                                    },
                                }
                            ],
                        },
                    },
                },
            }
        )
        self.k.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "journey-receiver"},
                "spec": {"selector": labels, "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]},
            }
        )
        self.k(
            "rollout",
            "status",
            "deployment/journey-receiver",
            f"--timeout={int(120 * self.timeout_scale)}s",
            timeout=150 * self.timeout_scale,
        )

    def receiver_url(self, path: str) -> str:
        return f"http://journey-receiver.{self.k.namespace}.svc:8080{path}"

    def received(self, prefix: str) -> list[dict]:
        out = self.k("logs", "deployment/journey-receiver", "--tail=-1").stdout
        seen = []
        for line in out.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and str(entry.get("path", "")).startswith(prefix):
                seen.append(entry)
        return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.journeys", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--namespace", default="pitwall-journeys", help="created if missing")
    parser.add_argument("--api-image", required=True, help="an image whose pods serve the demo API on 8080")
    parser.add_argument("--receiver-image", required=True, help="an image with python (the Pitwall image)")
    parser.add_argument("--timeout-scale", type=float, default=4.0)
    parser.add_argument(
        "--examples-namespace",
        default=None,
        help="also check that every example object in this namespace is reconciled",
    )
    parser.add_argument("--only", action="append", choices=[j.__name__ for j in JOURNEYS + KIND_JOURNEYS])
    parser.add_argument(
        "--kind", action="store_true", help="also the kind-only journeys (real pods, leader hand-over)"
    )
    parser.add_argument(
        "--measurements", default=None, help="write the kind journeys' measurements here (JSON)"
    )
    args = parser.parse_args(argv)

    k = Kubectl(args.namespace, args.kubeconfig, args.kubectl)
    if k.run("get", "namespace", args.namespace, check=False).returncode:
        k.run("create", "namespace", args.namespace)
    env = ClusterEnv(k, args.api_image, args.receiver_image, args.timeout_scale)
    env.start()
    journeys = JOURNEYS + (KIND_JOURNEYS if args.kind else [])
    chosen = [j for j in journeys if not args.only or j.__name__ in args.only]
    failed = run(k, env, chosen)
    total = len(chosen)
    if args.examples_namespace:
        total += 1
        failed += run(
            Kubectl(args.examples_namespace, args.kubeconfig, args.kubectl), env, [examples_reconciled]
        )
    if args.measurements:
        with open(args.measurements, "w") as out:
            json.dump({"measurements": env.measurements, "failed": failed, "total": total}, out, indent=1)
    print(f"journeys: {total - len(failed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
