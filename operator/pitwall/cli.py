"""The ``pitwall`` command: run the operator, and the support engineer's views."""

from __future__ import annotations

import argparse
import asyncio
import sys

from . import __version__


def _run(args: argparse.Namespace) -> int:
    import kopf

    from . import handlers, logs
    from .runtime import Settings

    settings = Settings.from_env(
        namespaces=args.namespace or None,
        target_mode=args.target_mode,
        endpoint_rewrite=args.endpoint_rewrite,
        metrics_port=args.metrics_port,
        statuspage_port=args.statuspage_port,
        internal_port=args.internal_port,
        leader_election=args.leader_elect or None,
        lease_namespace=args.lease_namespace,
        lease_duration=args.lease_duration,
    )
    handlers.configure(settings)
    if args.kubeconfig:
        import os
        os.environ["KUBECONFIG"] = args.kubeconfig
    kopf.configure(verbose=args.log_level.upper() == "DEBUG")
    logs.setup(args.log_level, args.log_format)   # after kopf's, so every line is ours
    asyncio.run(kopf.operator(
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        standalone=True,
        liveness_endpoint=None,
    ))
    return 0


def _maintenance_page(rest: list[str]) -> int:
    from .maintenance.page import main as page_main
    return page_main(rest)


def _demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main
    return demo_main(["--host", args.host, "--port", str(args.port)])


def _namespace(args: argparse.Namespace) -> str:
    if args.namespace:
        return args.namespace
    from kubernetes import config as kconfig
    try:
        _, context = kconfig.list_kube_config_contexts(config_file=args.kubeconfig)
        return (context or {}).get("context", {}).get("namespace") or "default"
    except Exception:
        return "default"


async def _list(args: argparse.Namespace, *kinds: str) -> dict[str, list[dict]]:
    from .kube import Kube
    async with Kube.from_env(args.kubeconfig) as kube:
        return {kind: await kube.list(kind, _namespace(args)) for kind in kinds}


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


def _impact(args: argparse.Namespace) -> int:
    import json

    from .backends.impact import impact
    found = asyncio.run(_list(args, "Backend", "ApiProduct"))
    backend = next((b for b in found["Backend"] if b["metadata"]["name"] == args.backend), None)
    products = found["ApiProduct"]
    matrix = impact(args.backend, products)
    state = ((backend or {}).get("status") or {}).get("state", "NotFound" if backend is None else "Unknown")
    if args.output == "json":
        print(json.dumps({"backend": args.backend, "state": state, **matrix}, indent=2))
        return 0 if backend is not None else 1
    if backend is None:
        print(f"Backend {args.backend} not found in namespace {_namespace(args)} "
              f"(products that name it are shown below)", file=sys.stderr)
    print(f"Backend {args.backend}: {state}\n")
    by_product = {p["metadata"]["name"]: p for p in products}
    rows = []
    for entry in matrix["apiProducts"]:
        spec = by_product[entry["name"]].get("spec") or {}
        versions = ",".join(v["name"] for v in spec.get("versions") or [] if v.get("lifecycle") != "retired")
        owner = (spec.get("owner") or {}).get("contact", "")
        rows.append([entry["name"], versions, entry["criticality"], entry["effect"], owner])
    print(_table(rows, ["API PRODUCT", "VERSIONS", "CRITICALITY", "EFFECT IF DOWN", "OWNER"]) if rows
          else "No API product depends on it.")
    if matrix["consumers"]:
        print()
        print(_table([[c["name"], c["apiProduct"], ",".join(c.get("versions") or []),
                       (c.get("contact") or {}).get("email", "")] for c in matrix["consumers"]],
                     ["CONSUMER", "API PRODUCT", "VERSIONS", "CONTACT"]))
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
                raise SystemExit(f"AlertRule {args.rule} has no alert {args.key!r}; open alerts: "
                                 + (", ".join(k for k in keys if k) or "none"))
            return await kube.patch("AlertRule", _namespace(args), args.rule, {"metadata": {"annotations": {
                "pitwall.dev/acknowledge": args.key, "pitwall.dev/acknowledged-by": args.by or getpass.getuser()}}})
    if asyncio.run(annotate()) is None:
        print(f"AlertRule {args.rule} not found in namespace {_namespace(args)}", file=sys.stderr)
        return 1
    print(f"acknowledged {args.key} on {args.rule}: escalation stops")
    return 0


def _views(sub) -> None:
    def common(parser):
        parser.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
        parser.add_argument("--kubeconfig")
    impact = sub.add_parser("impact", help="who is affected when a backend is down: products, versions, consumers")
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
    common(ack)
    ack.set_defaults(func=_ack)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pitwall", description="Pitwall: operate an API marketplace "
                                     "declaratively (ApiProduct, Probe, Backend, AlertRule, MaintenanceWindow).")
    parser.add_argument("--version", action="version", version=f"pitwall {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator (current kubeconfig, or in-cluster)")
    run.add_argument("--kubeconfig", help="path to a kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)")
    run.add_argument("-n", "--namespace", action="append",
                     help="watch only this namespace (repeatable; default: all namespaces)")
    run.add_argument("--metrics-port", type=int, default=8080, help="/metrics and /healthz (0 disables)")
    run.add_argument("--statuspage-port", type=int, default=8081, help="public status page (0 disables)")
    run.add_argument("--internal-port", type=int, default=8082, help="internal view (0 disables)")
    run.add_argument("--target-mode", choices=["auto", "service", "endpoints"], default=None,
                     help="how probes reach an ApiProduct version: its Service DNS name (in-cluster) or its "
                          "ready EndpointSlice addresses (out of cluster); auto picks by where Pitwall runs")
    run.add_argument("--endpoint-rewrite", default=None, metavar="FROM=TO",
                     help="map endpoint addresses to reachable ones, e.g. 10.244.0.0/16=127.244.0.0/16 "
                          "(local control plane)")
    run.add_argument("--leader-elect", action="store_true",
                     help="run as one of several replicas: only the holder of the Lease "
                          "pitwall-operator does the work (takeover within --lease-duration + a few seconds)")
    run.add_argument("--lease-namespace", default=None, help="namespace of the Lease (default: $POD_NAMESPACE or default)")
    run.add_argument("--lease-duration", type=float, default=None, help="seconds (default 15)")
    run.add_argument("--log-level", default="INFO")
    run.add_argument("--log-format", choices=["json", "text"], default="json")
    run.set_defaults(func=_run)

    page = sub.add_parser("maintenance-page", help="serve the maintenance page (503 + Retry-After); "
                          "configured by PITWALL_MAINTENANCE_* variables", add_help=False)
    page.set_defaults(func=lambda a: _maintenance_page(a.rest), rest=[])
    demo = sub.add_parser("demo-api", help="the demo API make dev probes (isUp, an OAuth flow, backends)")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=18080)
    demo.set_defaults(func=_demo)
    _views(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "maintenance-page":
        args.rest = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
