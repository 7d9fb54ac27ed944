"""The support engineer's views: status, impact, graph, windows, ack, probe run.

They read the cluster with the same client and the same pure functions the operator uses,
so what the CLI prints is what the operator decides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from . import logsearch
from .traffic.view import summary as traffic_summary
from .vocabulary import (
    ANNOTATION_ACK,
    ANNOTATION_ACK_BY,
    LABEL_SERVICE_NAME,
    condition_of,
    endpoint_url,
    workload_name,
)


def _namespace(args: argparse.Namespace) -> str | None:
    """kubectl's rule: ``-A`` is every namespace (None), then ``-n``, then the kubeconfig
    context's namespace, then ``default``."""
    if getattr(args, "all_namespaces", False):
        return None
    if args.namespace:
        return args.namespace
    return context_namespace(args.kubeconfig)


def context_namespace(kubeconfig: str | None = None) -> str:
    """The current context's namespace (``default`` when it names none, or in a pod: its own)."""
    import os

    from kubernetes import config as kconfig

    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        _, context = kconfig.list_kube_config_contexts(config_file=path.split(os.pathsep)[0])
        return (context or {}).get("context", {}).get("namespace") or "default"
    except Exception:
        try:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
                return f.read().strip() or "default"
        except OSError:
            return "default"


def _where(args: argparse.Namespace) -> str:
    namespace = _namespace(args)
    return "any namespace" if namespace is None else f"namespace {namespace}"


async def _list(args: argparse.Namespace, *kinds: str) -> dict[str, list[dict]]:
    from .kube import Kube

    async with Kube.from_env(args.kubeconfig) as kube:
        return {kind: await kube.list(kind, _namespace(args)) for kind in kinds}


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def _impact(args: argparse.Namespace) -> int:
    from .backends.impact import impact

    found = asyncio.run(_list(args, "Backend", "ApiProduct"))
    backend = next((b for b in found["Backend"] if b["metadata"]["name"] == args.backend), None)
    products = found["ApiProduct"]
    if backend is not None and _namespace(args) is None:  # -A: the products of the backend's namespace
        products = [
            p for p in products if p["metadata"].get("namespace") == backend["metadata"].get("namespace")
        ]
    matrix = impact(args.backend, products)
    state = ((backend or {}).get("status") or {}).get("state", "NotFound" if backend is None else "Unknown")
    if args.output == "json":
        print(json.dumps({"backend": args.backend, "state": state, **matrix}, indent=2))
        return 0 if backend is not None else 1
    if backend is None:
        print(
            f"Backend {args.backend} not found in {_where(args)} (products that name it are shown below)",
            file=sys.stderr,
        )
    print(f"Backend {args.backend}: {state}\n")
    by_product = {p["metadata"]["name"]: p for p in products}
    rows = []
    for entry in matrix["apiProducts"]:
        spec = by_product[entry["name"]].get("spec") or {}
        versions = ",".join(v["name"] for v in spec.get("versions") or [] if v.get("lifecycle") != "retired")
        owner = (spec.get("owner") or {}).get("contact", "")
        rows.append([entry["name"], versions, entry["criticality"], entry["effect"], owner])
    print(
        _table(rows, ["API PRODUCT", "VERSIONS", "CRITICALITY", "EFFECT IF DOWN", "OWNER"])
        if rows
        else "No API product depends on it."
    )
    if matrix["consumers"]:
        print()
        print(
            _table(
                [
                    [
                        c["name"],
                        c["apiProduct"],
                        ",".join(c.get("versions") or []),
                        (c.get("contact") or {}).get("email", ""),
                    ]
                    for c in matrix["consumers"]
                ],
                ["CONSUMER", "API PRODUCT", "VERSIONS", "CONTACT"],
            )
        )
    return 0 if backend is not None else 1


def _graph(args: argparse.Namespace) -> int:
    from .backends.impact import dot, mermaid

    found = asyncio.run(_list(args, "Backend", "ApiProduct"))
    render = dot if args.format == "dot" else mermaid
    print(render(found["ApiProduct"], found["Backend"]), end="")
    return 0


def _ack(args: argparse.Namespace) -> int:
    import getpass

    from .kube import Kube

    async def annotate() -> dict | None:
        async with Kube.from_env(args.kubeconfig) as kube:
            rule = await kube.get("AlertRule", _namespace(args), args.rule)
            if rule is None:
                return None
            keys = [a.get("key") for a in (rule.get("status") or {}).get("alerts") or []]
            if args.key not in keys:
                raise SystemExit(
                    f"AlertRule {args.rule} has no alert {args.key!r}; open alerts: "
                    + (", ".join(k for k in keys if k) or "none")
                )
            return await kube.patch(
                "AlertRule",
                _namespace(args),
                args.rule,
                {
                    "metadata": {
                        "annotations": {
                            ANNOTATION_ACK: args.key,
                            ANNOTATION_ACK_BY: args.by or getpass.getuser(),
                        }
                    }
                },
            )

    if asyncio.run(annotate()) is None:
        print(f"AlertRule {args.rule} not found in {_where(args)}", file=sys.stderr)
        return 1
    print(f"acknowledged {args.key} on {args.rule}: escalation stops")
    return 0


def namespace_flags(parser, *, all_namespaces: bool = True) -> None:
    """kubectl's flags: ``-n NAMESPACE``, ``-A/--all-namespaces`` (for listings), ``--kubeconfig``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    if all_namespaces:
        group.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    parser.add_argument("--kubeconfig", help="path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config)")


def register(sub) -> None:
    def common(parser, *, all_namespaces: bool = True):
        namespace_flags(parser, all_namespaces=all_namespaces)

    impact = sub.add_parser(
        "impact", help="who is affected when a backend is down: products, versions, consumers"
    )
    impact.add_argument("backend")
    impact.add_argument("-o", "--output", choices=["table", "json"], default="table")
    common(impact)
    impact.set_defaults(func=_impact)
    graph = sub.add_parser("graph", help="the dependency graph (consumer -> product -> backend)")
    graph.add_argument("--format", choices=["mermaid", "dot"], default="mermaid")
    common(graph)
    graph.set_defaults(func=_graph)
    ack = sub.add_parser("ack", help="acknowledge an alert: escalation and reminders stop")
    ack.add_argument("rule")
    ack.add_argument("key")
    ack.add_argument("--by", help="who acknowledges (default: your user name)")
    common(ack, all_namespaces=False)
    ack.set_defaults(func=_ack)
    register_more(sub)


# -- status --------------------------------------------------------------------------------------
COLOURS = {"green": "32", "yellow": "33", "red": "31", "blue": "34", "grey": "90"}
STATE_COLOUR = {
    "Available": "green",
    "Up": "green",
    "Scheduled": "blue",
    "Completed": "grey",
    "Active": "yellow",
    "Maintenance": "blue",
    "Degraded": "yellow",
    "Progressing": "yellow",
    "Paused": "grey",
    "Unknown": "grey",
    "Down": "red",
    "Unavailable": "red",
    "Stalled": "red",
    "Firing": "red",
    "Quiet": "green",
    "Cancelled": "grey",
}


def _paint(text: str, state: str, enabled: bool) -> str:
    colour = COLOURS.get(STATE_COLOUR.get(state, ""), "")
    return f"\033[{colour}m{text}\033[0m" if enabled and colour else text


def _ready(obj: dict) -> str:
    return (condition_of(obj, "Ready") or {}).get("status", "Unknown")


def _stalled(obj: dict) -> str:
    cond = condition_of(obj, "Stalled") or {}
    return f"{cond.get('reason')}: {cond.get('message')}" if cond.get("status") == "True" else ""


def _unavailable(obj: dict) -> str:
    """Why a Backend is Unavailable: its failing check, or who declared it down and why."""
    if (obj.get("status") or {}).get("state") != "Unavailable":
        return ""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Available" and cond.get("status") == "False":
            return cond.get("message", "")
    return ""


def _row(kind: str, obj: dict, state: str, detail: str) -> dict:
    """One line of ``pitwall status``: what every kind shows, its state and its own detail."""
    meta = obj["metadata"]
    return {
        "kind": kind,
        "name": meta["name"],
        "namespace": meta.get("namespace", ""),
        "ready": _ready(obj),
        "state": state,
        "detail": detail,
    }


def status_rows(found: dict[str, list[dict]]) -> list[dict]:
    """One row per object: kind, name, ready, state and a short detail. Pure (tested)."""
    rows = []
    for obj in found.get("ApiProduct", []):
        st = obj.get("status") or {}
        detail = ", ".join(
            f"{v['name']} {v.get('readyReplicas', 0)}/{v.get('replicas', 0)}"
            for v in st.get("versions") or []
        )
        traffic = traffic_summary(st.get("traffic"))  # real traffic, when spec.traffic is set
        rows.append(
            _row(
                "ApiProduct",
                obj,
                st.get("state", "Unknown"),
                _stalled(obj) or (f"{detail}; {traffic}" if traffic else detail),
            )
        )
    for obj in found.get("Backend", []):
        st = obj.get("status") or {}
        hurt = [
            p["name"] for p in (st.get("impact") or {}).get("apiProducts") or [] if p.get("effect") != "None"
        ]
        rows.append(
            _row(
                "Backend",
                obj,
                st.get("state", "Unknown"),
                _stalled(obj) or _unavailable(obj) or ("used by " + ", ".join(hurt) if hurt else ""),
            )
        )
    for obj in found.get("Probe", []):
        st = obj.get("status") or {}
        failure = st.get("lastFailure") or {}
        detail = _stalled(obj)
        if not detail and st.get("state") == "Down":
            detail = (
                f"step {failure.get('step')}: {failure.get('reason')} "
                f"(correlation id {failure.get('correlationId')}"
                + (f", logs {failure['logsUrl']})" if failure.get("logsUrl") else ")")
            )
        elif not detail and st.get("availability"):
            detail = f"{st['availability'].get('last24h', 100):.2f}% over 24h"
        rows.append(_row("Probe", obj, st.get("state", "Unknown"), detail))
    for obj in found.get("AlertRule", []):
        st = obj.get("status") or {}
        firing = [a for a in st.get("alerts") or [] if a.get("state") == "firing"]
        detail = _stalled(obj) or "; ".join(
            f"{a['key']}{' (acked by ' + a['acknowledgedBy'] + ')' if a.get('acknowledgedBy') else ''}"
            for a in firing
        )
        rows.append(
            _row(
                "AlertRule",
                obj,
                "Firing" if firing else "Quiet",
                f"{(obj.get('spec') or {}).get('severity')}: {detail}".rstrip(": "),
            )
        )
    for obj in found.get("MaintenanceWindow", []):
        st = obj.get("status") or {}
        rows.append(
            _row(
                "MaintenanceWindow",
                obj,
                st.get("phase", "Unknown"),
                _stalled(obj) or f"{st.get('nextStart', '')} -> {st.get('nextEnd', '')}".strip(" ->"),
            )
        )
    return rows


KINDS_SHOWN = ("ApiProduct", "Backend", "Probe", "AlertRule", "MaintenanceWindow")


def _status(args: argparse.Namespace) -> int:
    found = asyncio.run(_list(args, *KINDS_SHOWN))
    rows = status_rows(found)
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return 0
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    if not rows:
        print(f"No Pitwall objects in {_where(args)}.", file=sys.stderr)
        return 0
    every = _namespace(args) is None
    table = _table(
        [
            [
                *([r["namespace"]] if every else []),
                r["kind"],
                r["name"],
                r["ready"],
                r["state"],
                r["detail"][:100],
            ]
            for r in rows
        ],
        [*(["NAMESPACE"] if every else []), "KIND", "NAME", "READY", "STATE", "DETAIL"],
    )
    lines = table.splitlines()
    print(lines[0])
    for line, row in zip(lines[1:], rows, strict=True):
        print(line.replace(row["state"], _paint(row["state"], row["state"], colour), 1))
    bad = sum(1 for r in rows if r["state"] in ("Down", "Unavailable", "Stalled", "Firing"))
    return 2 if bad and args.fail_on_problems else 0


def _windows(args: argparse.Namespace) -> int:
    found = asyncio.run(_list(args, "MaintenanceWindow"))
    rows = []
    for obj in found["MaintenanceWindow"]:
        spec, st = obj.get("spec") or {}, obj.get("status") or {}
        products = ", ".join(p["name"] for p in (st.get("affected") or {}).get("apiProducts") or [])
        rows.append(
            {
                "name": obj["metadata"]["name"],
                "namespace": obj["metadata"].get("namespace", ""),
                "phase": st.get("phase", "Unknown"),
                "start": st.get("nextStart", ""),
                "end": st.get("nextEnd", ""),
                "emergency": bool(spec.get("emergency")),
                "reason": spec.get("reason", ""),
                "products": products,
                "notices": [n.get("kind") for n in st.get("notices") or []],
            }
        )
    rows.sort(key=lambda r: (r["phase"] != "Active", r["start"] or "~"))
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return 0
    every = _namespace(args) is None
    print(
        _table(
            [
                [
                    *([r["namespace"]] if every else []),
                    r["name"],
                    r["phase"],
                    r["start"],
                    r["end"],
                    r["products"],
                    ("EMERGENCY " if r["emergency"] else "") + r["reason"],
                ]
                for r in rows
            ],
            [*(["NAMESPACE"] if every else []), "NAME", "PHASE", "START", "END", "PRODUCTS", "REASON"],
        )
        if rows
        else f"No maintenance windows in {_where(args)}."
    )
    return 0


# -- probe run -----------------------------------------------------------------------------------
async def _probe_once(args: argparse.Namespace) -> int:
    import httpx

    from .egress import Policy
    from .errors import InvalidSpec
    from .kube import Kube
    from .probes.client import make_client
    from .probes.engine import run_check
    from .probes.spec import parse_check
    from .runtime import Settings, parse_rewrite, rewrite_address

    namespace = _namespace(args) or context_namespace(args.kubeconfig)  # one probe: one namespace
    async with Kube.from_env(args.kubeconfig) as kube:
        probe = await kube.get("Probe", namespace, args.name)
        if probe is None:
            print(f"Probe {args.name} not found in namespace {namespace}", file=sys.stderr)
            return 1
        spec = probe.get("spec") or {}
        target = (spec.get("target") or {}).get("apiProduct")
        base_url = None
        if target:
            service = workload_name(target["name"], target.get("version", ""))
            if args.target_mode == "service":
                base_url = f"http://{service}.{namespace}.svc"
            else:
                rules = parse_rewrite(args.endpoint_rewrite or os.environ.get("PITWALL_ENDPOINT_REWRITE"))
                slices = await kube.list(
                    "EndpointSlice", namespace, label_selector=f"{LABEL_SERVICE_NAME}={service}"
                )
                base_url = endpoint_url(slices, service, lambda address: rewrite_address(address, rules))
                if base_url is None:
                    print(f"{target['name']} {target.get('version')}: no ready endpoint", file=sys.stderr)
                    return 1

        async def secrets(name: str, key: str) -> str | None:
            return await kube.read_secret(namespace, name, key, use="probes")

        try:
            check = parse_check(spec, base_url=base_url)
            # The operator's own policy (PITWALL_PROBE_ALLOW/DENY, its ports, the API server):
            # what this prints is what the operator would do.
            policy = Policy.for_operator(Settings.from_env(), kube.credentials.host)
            client = await make_client(check, secrets=secrets, policy=policy)
            print(
                f"running {args.name} ({len(check.steps)} steps) against {base_url or check.target} ...",
                file=sys.stderr,
                flush=True,
            )
            async with client:
                result = await run_check(check, client=client, secrets=secrets, base_url=base_url)
        except InvalidSpec as exc:
            print(f"cannot run: {exc.reason}: {exc.message}", file=sys.stderr)
            return 1
        except httpx.HTTPError as exc:
            print(f"cannot run: {exc}", file=sys.stderr)
            return 1
    if args.output == "json":
        print(
            json.dumps(
                {
                    "ok": result.ok,
                    "traceId": result.trace_id,
                    "latencyMs": result.latency_ms,
                    "steps": [
                        {
                            "name": s.name,
                            "method": s.method,
                            "url": s.url,
                            "status": s.status,
                            "latencyMs": s.latency_ms,
                            "correlationId": s.correlation_id,
                            "logsUrl": logsearch.link(
                                s.correlation_id, os.environ.get("PITWALL_LOG_SEARCH_URL") or None
                            ),
                            "captured": dict(s.captured),
                            "ok": s.ok,
                            "reason": s.reason,
                        }
                        for s in result.steps
                    ],
                },
                indent=2,
            )
        )
    else:
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        for index, step in enumerate(result.steps, 1):
            verdict = _paint("ok", "Up", colour) if step.ok else _paint("FAILED", "Down", colour)
            latency = f"{step.latency_ms:.0f}ms" if step.latency_ms is not None else "-"
            print(
                f"{index}. {step.name}: {step.method} {step.url} -> {step.status or '-'} in {latency} {verdict}"
            )
            logs = logsearch.link(step.correlation_id, os.environ.get("PITWALL_LOG_SEARCH_URL") or None)
            print(f"   correlation id {step.correlation_id}" + (f" (logs: {logs})" if logs else ""))
            for name, value in (step.captured or {}).items():
                print(f"   captured {name} = {value}")
            if not step.ok:
                print(f"   {step.reason}")
        print(f"{'passed' if result.ok else 'failed'} in {result.latency_ms:.0f}ms (trace {result.trace_id})")
    return 0 if result.ok else 2


def _probe_run(args: argparse.Namespace) -> int:
    return asyncio.run(_probe_once(args))


def register_more(sub) -> None:
    def common(parser, *, all_namespaces: bool = True):
        namespace_flags(parser, all_namespaces=all_namespaces)
        parser.add_argument("-o", "--output", choices=["table", "json"], default="table")

    status = sub.add_parser(
        "status", help="everything at a glance: products, backends, probes, alerts, windows"
    )
    status.add_argument(
        "--fail-on-problems", action="store_true", help="exit 2 when something is down or firing"
    )
    common(status)
    status.set_defaults(func=_status)
    windows = sub.add_parser("windows", help="maintenance windows: active first, then upcoming")
    common(windows)
    windows.set_defaults(func=_windows)
    probe = sub.add_parser("probe", help="probe commands")
    probe_sub = probe.add_subparsers(dest="probe_command", required=True)
    run = probe_sub.add_parser("run", help="run a probe once now and print every step (secrets masked)")
    run.add_argument("name")
    run.add_argument("--target-mode", choices=["endpoints", "service"], default="endpoints")
    run.add_argument("--endpoint-rewrite", default=None, metavar="FROM=TO")
    common(run, all_namespaces=False)
    run.set_defaults(func=_probe_run)
