"""ApiProduct edit latency and operator memory (issue 3).

Setup: 200 ApiProducts x 2 versions (400 Deployments owned by Pitwall) and 50 plain Deployments
that Pitwall does not own, in one namespace, on a fresh local control plane with the operator
running as a real subprocess.

Then edits, one at a time, alternating between two kinds:

- **product edit**: a JSON merge patch of one version's ``replicas`` on a random ApiProduct,
  sent through ``pitwall.kube.Kube.request`` as exactly the request ``kubectl patch apiproduct
  NAME --type merge -p '{"spec":{"versions":[...]}}'`` sends (merge patch replaces the whole
  ``versions`` list, so the patch carries both versions with one replica count changed;
  fieldManager ``kubectl-patch``). Pitwall must see it and apply the Deployment.
- **direct edit**: the same merge patch of ``spec.replicas`` on a random plain Deployment,
  which needs nobody: the physical limit of one API round trip.

Each edit is stamped on one clock (``time.perf_counter`` in this process) three times: PATCH
sent, PATCH response received, and arrival of the watch event (one long-lived watch stream on the
namespace's Deployments, not polling) in which that Deployment's ``spec.replicas`` shows the new
value. Reported per kind, p50 and p99 of:

- ``from send``: watch event minus PATCH sent: what a person running ``kubectl patch`` waits.
- ``from response``: watch event minus PATCH response: what Pitwall adds after the API server
  accepted the edit (for a direct edit about zero, or negative when the watch event overtakes
  the response).

Memory: the operator's VmRSS once every product is Ready, and its VmHWM (peak RSS) at the end,
from /proc/<pid>/status.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pitwall.kube import Kube

from .common import Metric, Operator, Report, bounded, control_plane, percentile, sample

NAMESPACE = "bench-products"
VERSIONS = ("v1", "v2")
MERGE = "application/merge-patch+json"
EDIT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Size:
    products: int
    plain: int
    edits: int  # of each kind


FULL = Size(products=200, plain=50, edits=200)
QUICK = Size(products=40, plain=10, edits=50)


def product(name: str, replicas: dict[str, int]) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "ApiProduct",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"displayName": name, "owner": {"team": "bench"}, "versions": versions(name, replicas)},
    }


def versions(name: str, replicas: dict[str, int]) -> list[dict]:
    return [
        {"name": v, "image": f"registry.example.com/{name}:{v}", "replicas": replicas[v]} for v in VERSIONS
    ]


def plain_deployment(name: str) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.example.com/plain:1"}]},
            },
        },
    }


class DeploymentWatch:
    """One watch stream on the namespace's Deployments; resolves waiters when spec.replicas matches."""

    def __init__(self, kube: Kube, namespace: str):
        self.kube = kube
        self.path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
        self.replicas: dict[str, int] = {}
        self.waiters: dict[str, tuple[int, asyncio.Future]] = {}
        self.resource_version = ""
        self.task: asyncio.Task | None = None

    async def start(self) -> asyncio.Task:
        listing = await self.kube.request("GET", self.path)
        self.resource_version = listing["metadata"]["resourceVersion"]
        for item in listing["items"]:
            self.replicas[item["metadata"]["name"]] = item["spec"].get("replicas")
        self.task = asyncio.create_task(self._run(), name="deployment watch")
        return self.task

    def expect(self, name: str, replicas: int) -> asyncio.Future:
        if self.task is not None and self.task.done():
            self.task.result()  # the watch died: raise its error instead of timing out every edit
        future = asyncio.get_running_loop().create_future()
        self.waiters[name] = (replicas, future)
        return future

    async def _run(self) -> None:
        creds = self.kube.credentials
        timeout = httpx.Timeout(10.0, read=None)
        async with httpx.AsyncClient(base_url=creds.host, verify=creds.ssl_context, timeout=timeout) as http:
            while True:
                params = {
                    "watch": "true",
                    "resourceVersion": self.resource_version,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": "3600",
                }
                async with http.stream("GET", self.path, params=params) as response:
                    response.raise_for_status()
                    async for line in response.aiter_lines():
                        if line:
                            self._event(json.loads(line), time.perf_counter())

    def _event(self, event: dict, at: float) -> None:
        obj = event["object"]
        self.resource_version = obj["metadata"].get("resourceVersion", self.resource_version)
        if event["type"] == "BOOKMARK":
            return
        if event["type"] == "ERROR":
            raise RuntimeError(f"watch error: {obj}")
        name = obj["metadata"]["name"]
        if event["type"] == "DELETED":
            self.replicas.pop(name, None)
            return
        replicas = obj["spec"].get("replicas")
        self.replicas[name] = replicas
        waiter = self.waiters.get(name)
        if waiter and waiter[0] == replicas and not waiter[1].done():
            waiter[1].set_result(at)
            del self.waiters[name]


async def until(check, within: float, interval: float = 0.5) -> float | None:
    """Seconds until ``await check()`` is true, or None after ``within`` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(interval)
    return None


async def measure(kube: Kube, op: Operator, size: Size) -> dict:
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    watch = DeploymentWatch(kube, NAMESPACE)
    watch_task = await watch.start()
    try:
        return await _measure(kube, op, size, watch)
    finally:
        watch_task.cancel()


async def _measure(kube: Kube, op: Operator, size: Size, watch: DeploymentWatch) -> dict:
    names = [f"api-{i:03d}" for i in range(size.products)]
    plain = [f"plain-{i:02d}" for i in range(size.plain)]
    replicas = {name: dict.fromkeys(VERSIONS, 1) for name in names}
    await bounded(kube.apply(plain_deployment(name), field_manager="bench") for name in plain)

    started = time.monotonic()
    await bounded(kube.apply(product(name, replicas[name]), field_manager="bench") for name in names)
    applied = time.monotonic() - started
    owned = {f"{n}-{v}" for n in names for v in VERSIONS}

    async def all_deployments() -> bool:
        return owned <= watch.replicas.keys()

    async def all_ready() -> bool:
        items = await kube.list("ApiProduct", NAMESPACE)
        return len(items) == len(names) and all(_ready(item) for item in items)

    to_deployments = await until(all_deployments, 300, 0.1)
    if to_deployments is None:
        raise RuntimeError(f"only {len(owned & watch.replicas.keys())}/{len(owned)} Deployments after 300s")
    to_deployments += applied
    to_ready = await until(all_ready, 300, 2.0)
    settled = sample(op.pid)

    rng = random.Random(3)
    timings: dict[str, list[tuple[float, float, float]]] = {"product": [], "direct": []}
    timeouts = {"product": 0, "direct": 0}
    for _ in range(size.edits):
        for kind in ("product", "direct"):
            if kind == "product":
                name, version = rng.choice(names), rng.choice(VERSIONS)
                replicas[name][version] = 3 - replicas[name][version]  # 1 <-> 2
                deployment, want = f"{name}-{version}", replicas[name][version]
                path = f"/apis/pitwall.dev/v1alpha1/namespaces/{NAMESPACE}/apiproducts/{name}"
                body: dict = {"spec": {"versions": versions(name, replicas[name])}}
            else:
                deployment = rng.choice(plain)
                want = 3 - (watch.replicas.get(deployment) or 1)
                path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{deployment}"
                body = {"spec": {"replicas": want}}
            seen = watch.expect(deployment, want)
            sent = time.perf_counter()
            await kube.request(
                "PATCH", path, params={"fieldManager": "kubectl-patch"}, body=body, content_type=MERGE
            )
            answered = time.perf_counter()
            try:
                changed = await asyncio.wait_for(seen, EDIT_TIMEOUT)
            except TimeoutError:
                timeouts[kind] += 1
                watch.waiters.pop(deployment, None)
                continue
            timings[kind].append((sent, answered, changed))
            await asyncio.sleep(rng.uniform(0.02, 0.1))
    end = sample(op.pid)
    return {
        "applied_s": applied,
        "to_deployments_s": to_deployments,
        "to_ready_s": to_ready,
        "settled": settled,
        "end": end,
        "timings": timings,
        "timeouts": timeouts,
    }


def _ready(obj: dict) -> bool:
    status = obj.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return ready and status.get("observedGeneration") == obj["metadata"].get("generation")


def ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000


def run(workdir: Path, quick: bool = False) -> Report:
    size = QUICK if quick else FULL
    with control_plane(workdir) as cluster, Operator(cluster, workdir, NAMESPACE) as op:

        async def main() -> dict:
            async with Kube.from_env(str(cluster.kubeconfig)) as kube:
                return await measure(kube, op, size)

        data = asyncio.run(main())

    series = {
        kind: ([c - s for s, _, c in rows], [c - a for _, a, c in rows])
        for kind, rows in data["timings"].items()
    }
    p_send, p_resp = series["product"]
    d_send, d_resp = series["direct"]
    p99, d99 = ms(p_send, 0.99), ms(d_send, 0.99)
    ratio = p99 / d99 if d99 > 0 else float("inf")
    versions_total = size.products * len(VERSIONS)
    mib = 2**20
    metrics = [
        Metric("product edit p50 (from send)", ms(p_send, 0.5), "ms"),
        Metric("product edit p99 (from send)", p99, "ms", "< 250 ms", p99 < 250),
        Metric("product edit p50 (from response)", ms(p_resp, 0.5), "ms"),
        Metric(
            "product edit p99 (from response)", ms(p_resp, 0.99), "ms", "< 250 ms", ms(p_resp, 0.99) < 250
        ),
        Metric("direct edit p50 (from send)", ms(d_send, 0.5), "ms"),
        Metric("direct edit p99 (from send)", d99, "ms"),
        Metric("direct edit p50 (from response)", ms(d_resp, 0.5), "ms"),
        Metric("direct edit p99 (from response)", ms(d_resp, 0.99), "ms"),
        Metric("product p99 / direct p99 (from send)", ratio, "x", "<= 3x", ratio <= 3),
        Metric("edits timed (product / direct)", f"{len(p_send)} / {len(d_send)}"),
        Metric(
            "edits not seen within 10 s (product / direct)",
            f"{data['timeouts']['product']} / {data['timeouts']['direct']}",
            "",
            "0 / 0",
            not any(data["timeouts"].values()),
        ),
        Metric(
            f"apply {size.products} products -> all {versions_total} Deployments exist",
            data["to_deployments_s"],
            "s",
        ),
        Metric(
            "then -> every product Ready",
            data["to_ready_s"] if data["to_ready_s"] is not None else "not within 300 s",
            "s" if data["to_ready_s"] is not None else "",
        ),
        Metric(
            f"operator RSS with {versions_total} versions, all Ready (VmRSS)",
            data["settled"].rss_bytes / mib,
            "MiB",
        ),
        Metric("operator peak RSS over the run (VmHWM)", data["end"].hwm_bytes / mib, "MiB"),
    ]
    method = [
        "A fresh local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok "
        "with 3 fake nodes) and `python -m pitwall run --namespace bench-products` as a subprocess.",
        f"{size.products} ApiProducts x {len(VERSIONS)} versions (1 replica each, server-side applied, 16 at "
        f"a time) and {size.plain} plain Deployments not owned by Pitwall; all pods become Ready through kwok.",
        "Edits alternate product / direct, one at a time, 20-100 ms apart, each on a random object "
        "(seeded RNG), replicas toggling 1 <-> 2, so pods are created and deleted during the run.",
        "Product edit: a JSON merge patch of the ApiProduct's `spec.versions` (both versions, one replica count "
        "changed), sent with `pitwall.kube.Kube.request` as `kubectl patch --type merge` sends it "
        "(fieldManager kubectl-patch). Direct edit: the same merge patch of a plain Deployment's `spec.replicas`.",
        "Times on one clock (time.perf_counter): PATCH sent, PATCH response, and the arrival of the event on "
        "one watch stream of the namespace's Deployments whose `spec.replicas` has the new value. "
        "`from send` = event - sent; `from response` = event - response.",
        "p50/p99: linear interpolation between closest ranks over all timed edits.",
        "Memory: VmRSS from /proc/<operator pid>/status once every product is Ready; VmHWM at the end.",
    ]
    return Report(
        "products",
        "ApiProduct edit latency and operator memory (issue 3)",
        {
            "quick": quick,
            "products": size.products,
            "versions": versions_total,
            "plain_deployments": size.plain,
            "edits_per_kind": size.edits,
        },
        metrics,
        method,
        extra={"timings": data["timings"]},
    )
