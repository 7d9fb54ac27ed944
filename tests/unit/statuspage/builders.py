"""Objects as the watch caches hold them (dicts with status), and a small marketplace of them.

The marketplace mirrors ``examples/``: a public Payments API (v1 deprecated, v2) on three
backends, an internal Reference Data API, a public sandbox product, probes with history,
alert rules and maintenance windows. The INTERNAL list holds every string that must never
reach the public page.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pitwall.statuspage.relations import Snapshot

NOW = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
NS = "marketplace"
CID_DOWN = "c0ffee00-1111-4222-8333-444455556666"
CID_BACKEND = "deadbeef-aaaa-4bbb-8ccc-ddddeeeeffff"

INTERNAL = [
    "core-banking",
    "identity",
    "reference-data-store",  # backend names
    "acme-fintech",
    "globex-wallet",
    "umbrella-retail",
    "initech",  # consumer names
    "ops@acme.example",
    "payments-oncall@example.com",
    "cb-support@example.com",
    "payments-v2-isup",
    "payments-oauth-flow",
    "revenue-critical-down",
    "core-banking-weekly",  # probe/rule/window
    CID_DOWN,
    CID_BACKEND,
    ".svc",
    "127.",
    "10.244.",
    NS,
    "registry.example.com",
    "reference-data",
]


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, namespace: str = NS, labels: dict | None = None) -> dict:
    return {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "generation": 1,
        "labels": dict(labels or {}),
    }


def cond(type_: str, status: str, reason: str = "", message: str = "", at: datetime | None = None) -> dict:
    return {
        "type": type_,
        "status": status,
        "reason": reason or type_,
        "message": message,
        "lastTransitionTime": stamp(at or NOW - timedelta(hours=1)),
    }


def healthy_conditions() -> list[dict]:
    return [
        cond("Ready", "True"),
        cond("Available", "True", "AllVersionsAvailable"),
        cond("Degraded", "False", "NotDegraded"),
        cond("InMaintenance", "False", "NoActiveWindow"),
    ]


def product(
    name: str,
    *,
    public: bool = True,
    env: str = "live",
    versions=("v1",),
    backends=(),
    consumers=(),
    conditions: list[dict] | None = None,
    ready: dict | None = None,
    namespace: str = NS,
    with_status: bool = True,
    **spec,
) -> dict:
    vers = [
        v if isinstance(v, dict) else {"name": v, "image": f"registry.example.com/{name}:{v}", "replicas": 2}
        for v in versions
    ]
    obj = {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "ApiProduct",
        "metadata": meta(name, namespace),
        "spec": {
            "displayName": name.replace("-", " ").title() + " API",
            "environment": env,
            "public": public,
            "owner": {"team": name, "contact": f"{name}-oncall@example.com"},
            "versions": vers,
            "backends": list(backends),
            "consumers": list(consumers),
            **spec,
        },
    }
    if with_status:
        ready = ready or {}
        obj["status"] = {
            "state": "Available",
            "conditions": conditions if conditions is not None else healthy_conditions(),
            "versions": [
                {
                    "name": v["name"],
                    "lifecycle": v.get("lifecycle", "published"),
                    "replicas": v.get("replicas", 2),
                    "readyReplicas": ready.get(v["name"], v.get("replicas", 2)),
                    "state": "Complete",
                    "lastGoodImage": v.get("image"),
                    "url": f"http://{name}-{v['name']}.{namespace}.svc",
                }
                for v in vers
                if v.get("lifecycle") != "retired"
            ],
            "backends": [
                {
                    "name": b["name"],
                    "criticality": b.get("criticality", "critical"),
                    "state": "Available",
                    "effect": "None",
                }
                for b in backends
            ],
        }
    return obj


def daily(
    days: int, ok: int = 2880, total: int = 2880, bad: dict[int, int] | None = None, today: date | None = None
) -> dict:
    """``status.history.daily`` for ``days`` days ending today; ``bad`` maps days-ago -> failed runs."""
    today = today or NOW.date()
    runs = [f"{ok - (bad or {}).get(ago, 0)}/{total}" for ago in range(days - 1, -1, -1)]
    return {"from": (today - timedelta(days=days - 1)).isoformat(), "runs": " ".join(runs)}


def probe(
    name: str,
    *,
    product: str | None = None,
    version: str | None = None,
    url: str | None = None,
    labels: dict | None = None,
    state: str = "Up",
    history: dict | None = None,
    failure: dict | None = None,
    since: datetime | None = None,
    namespace: str = NS,
) -> dict:
    target = (
        {"apiProduct": {"name": product, "version": version}}
        if product and not url
        else {"url": url or "http://127.0.0.1:18080/isUp"}
    )
    status = {
        "state": state,
        "consecutiveFailures": 3 if state == "Down" else 0,
        "target": f"http://{product}-{version}.{namespace}.svc" if product and not url else target["url"],
        "lastTransitionAt": stamp(since or NOW - timedelta(minutes=30)),
        "lastRun": {
            "at": stamp(NOW),
            "result": "Up" if state == "Up" else "Down",
            "latencyMs": 12,
            "correlationId": "11111111-2222-4333-8444-555555555555",
        },
        "history": {"daily": history} if history else {},
        "availability": {"last1h": 100.0 if state == "Up" else 0.0},
    }
    if failure:
        status["lastFailure"] = failure
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Probe",
        "metadata": meta(name, namespace, labels),
        "spec": {"target": target, "interval": "30s"},
        "status": status,
    }


def backend(
    name: str,
    state: str = "Available",
    *,
    impact: dict | None = None,
    failure: dict | None = None,
    namespace: str = NS,
) -> dict:
    obj = {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Backend",
        "metadata": meta(name, namespace),
        "spec": {
            "displayName": name.replace("-", " ").title(),
            "owner": {"team": name, "contact": f"{name}-support@example.com"},
            "health": {"url": f"http://127.0.0.1:18080/backends/{name}/health"},
        },
        "status": {"state": state, "lastTransitionAt": stamp(NOW - timedelta(minutes=10))},
    }
    if impact is not None:
        obj["status"]["impact"] = impact
    if failure:
        obj["status"]["probe"] = {"consecutiveFailures": 3, "lastFailure": failure}
    return obj


def alert(
    kind: str,
    name: str,
    *,
    state: str = "firing",
    severity: str = "critical",
    since: datetime | None = None,
    acknowledged_by: str | None = None,
) -> dict:
    entry = {
        "key": f"k-{kind.lower()}-{name}",
        "object": {"kind": kind, "name": name},
        "subject": f"{kind} {name} is failing",
        "state": state,
        "severity": severity,
        "since": stamp(since or NOW - timedelta(minutes=20)),
    }
    if acknowledged_by:
        entry["acknowledgedBy"] = acknowledged_by
        entry["acknowledgedAt"] = stamp(NOW - timedelta(minutes=5))
    return entry


def rule(name: str, severity: str, alerts: list[dict], namespace: str = NS) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "AlertRule",
        "metadata": meta(name, namespace),
        "spec": {"severity": severity, "selector": {"kinds": ["Probe"]}},
        "status": {"firing": sum(1 for a in alerts if a["state"] == "firing"), "alerts": alerts},
    }


def window(
    name: str,
    phase: str,
    products: list[dict],
    *,
    start: datetime,
    hours: float = 2,
    reason: str = "Weekly core banking patching",
    backends=(),
    consumers=(),
    namespace: str = NS,
) -> dict:
    status = {
        "phase": phase,
        "nextStart": stamp(start),
        "nextEnd": stamp(start + timedelta(hours=hours)),
        "affected": {
            "apiProducts": products,
            "backends": list(backends),
            "consumers": [{"name": c, "apiProduct": "payments"} for c in consumers],
        },
    }
    if phase == "Active":
        status["activeSince"] = stamp(start)
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "MaintenanceWindow",
        "metadata": meta(name, namespace),
        "spec": {
            "reason": reason,
            "schedule": {"cron": "0 22 * * SAT", "duration": "2h"},
            "targets": {"backends": list(backends)},
        },
        "status": status,
    }


PAYMENTS_BACKENDS = [
    {"name": "core-banking", "criticality": "critical"},
    {"name": "identity", "criticality": "critical"},
    {"name": "reference-data-store", "criticality": "degradable"},
]
PAYMENTS_CONSUMERS = [
    {"name": "acme-fintech", "versions": ["v2"], "contact": {"name": "Acme", "email": "ops@acme.example"}},
    {"name": "globex-wallet", "versions": ["v1"], "contact": {"email": "api-support@globex.example"}},
    {"name": "umbrella-retail", "versions": ["v1", "v2"]},
]


def payments(**overrides) -> dict:
    spec = {
        "versions": [
            {
                "name": "v1",
                "lifecycle": "deprecated",
                "sunsetAt": "2027-03-01T00:00:00Z",
                "image": "registry.example.com/payments:1.9.3",
                "replicas": 2,
            },
            {"name": "v2", "image": "registry.example.com/payments:2.3.0", "replicas": 2},
        ],
        "backends": PAYMENTS_BACKENDS,
        "consumers": PAYMENTS_CONSUMERS,
        "description": "Initiate and track payments from customer accounts.",
        **overrides,
    }
    obj = product("payments", **spec)
    obj["spec"]["displayName"] = "Payments API"
    return obj


def marketplace(*, payments_probe_state: str = "Up", extra: dict | None = None) -> Snapshot:
    """The example marketplace, everything healthy unless told otherwise."""
    extra = extra or {}
    failure = (
        {
            "at": stamp(NOW - timedelta(minutes=1)),
            "step": "isup",
            "reason": "HTTP 503, expected 200",
            "httpStatus": 503,
            "correlationId": CID_DOWN,
        }
        if payments_probe_state == "Down"
        else None
    )
    products = [
        payments(),
        product(
            "reference-data",
            public=False,
            versions=["v1"],
            backends=[{"name": "reference-data-store"}, {"name": "identity", "criticality": "optional"}],
            consumers=[{"name": "initech-insurance", "versions": ["v1"]}],
        ),
        product("sandbox-payments", env="sandbox", versions=["v1"], backends=[{"name": "identity"}]),
        *extra.get("products", []),
    ]
    products[2]["spec"]["displayName"] = "Payments Sandbox"
    probes = [
        probe(
            "payments-v2-isup",
            product="payments",
            version="v2",
            state=payments_probe_state,
            history=daily(90, bad={3: 400, 10: 2880}),
            failure=failure,
        ),
        probe(
            "payments-oauth-flow",
            url="http://127.0.0.1:18080",
            labels={"pitwall.dev/product": "payments"},
            history=daily(30),
        ),
        probe("demo-api-isup", url="http://127.0.0.1:18080/isUp"),
        *extra.get("probes", []),
    ]
    backends = [backend(b) for b in ("core-banking", "identity", "reference-data-store")] + extra.get(
        "backends", []
    )
    return Snapshot(
        products=products,
        probes=probes,
        backends=backends,
        rules=extra.get("rules", []),
        windows=extra.get("windows", []),
    )
