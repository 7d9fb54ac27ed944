"""The ``pitwall`` command: run the operator, and the support engineer's views."""

from __future__ import annotations

import argparse
import asyncio
import sys

from . import __version__, edits, incidentviews, views
from .durations import format as format_duration
from .floors import ADMISSION
from .floors import FLAGS as FLOOR_FLAGS


def use_kubeconfig(path: str) -> None:
    """Make ``path`` the kubeconfig of everything in this process: kopf's login, our client.

    The Kubernetes client library reads ``$KUBECONFIG`` once, when it is imported (and kopf
    imports it when it is imported), so setting the variable afterwards is not enough: the
    library's default location is set too.
    """
    import os

    if not os.path.isfile(path):
        raise SystemExit(f"pitwall run: --kubeconfig {path}: no such file")
    os.environ["KUBECONFIG"] = os.path.abspath(path)
    from kubernetes.config import kube_config

    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = os.environ["KUBECONFIG"]


def _run(args: argparse.Namespace) -> int:
    if args.kubeconfig:
        use_kubeconfig(args.kubeconfig)  # before kopf is imported
    import kopf

    from . import handlers, logs
    from .runtime import Settings

    try:
        settings = Settings.from_env(
            namespaces=args.namespace or None,
            target_mode=args.target_mode,
            endpoint_rewrite=args.endpoint_rewrite,
            metrics_port=args.metrics_port,
            statuspage_port=args.statuspage_port,
            internal_port=args.internal_port,
            leader_election=args.leader_elect or None,
            webhook_port=args.webhook_port,
            webhook_cert=args.webhook_cert,
            webhook_key=args.webhook_key,
            lease_namespace=args.lease_namespace,
            lease_duration=args.lease_duration,
            probe_shards=args.probe_shards,
            probe_concurrency=args.probe_concurrency,
            status_writes_per_second=args.status_writes_per_second,
            floor_flags={name: getattr(args, name) for name in FLOOR_FLAGS},
            prometheus_url=args.prometheus_url,
            prometheus_secret=args.prometheus_secret,
            prometheus_ca_file=args.prometheus_ca_file,
            prometheus_insecure=args.prometheus_insecure or None,
            prometheus_timeout=args.prometheus_timeout,
            prometheus_qps=args.prometheus_qps,
            traffic_interval=args.traffic_interval,
            log_search_url=args.log_search_url,
        )
    except ValueError as exc:
        print(f"pitwall run: {exc}", file=sys.stderr)
        return 2
    if settings.probe_shards and not settings.leader_election:
        print(
            "pitwall run: --probe-shards needs --leader-elect (alerts and notices must have one owner)",
            file=sys.stderr,
        )
        return 2
    if not 0.1 <= settings.status_writes_per_second <= 1000:
        print(
            "pitwall run: --status-writes-per-second must be between 0.1 and 1000, got "
            f"{settings.status_writes_per_second:g}",
            file=sys.stderr,
        )
        return 2
    if not 1 <= settings.probe_concurrency <= 1000:
        print(
            f"pitwall run: --probe-concurrency must be between 1 and 1000, got {settings.probe_concurrency}",
            file=sys.stderr,
        )
        return 2
    if settings.probe_shards and not 1 <= settings.probe_shards <= 256:
        print(
            f"pitwall run: --probe-shards must be between 1 and 256, got {settings.probe_shards}",
            file=sys.stderr,
        )
        return 2
    if args.bind_address:
        settings.metrics_host = settings.statuspage_host = args.bind_address
    handlers.configure(settings)
    kopf.configure(verbose=args.log_level.upper() == "DEBUG")
    logs.setup(args.log_level, args.log_format)  # after kopf's, so every line is ours
    asyncio.run(
        kopf.operator(
            clusterwide=not args.namespace,
            namespaces=args.namespace or (),
            standalone=True,
            liveness_endpoint=None,
        )
    )
    return 0


def _maintenance_page(rest: list[str]) -> int:
    from .maintenance.page import main as page_main

    return page_main(rest)


def _demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    demo_main(["--host", args.host, "--port", str(args.port)])
    return 0


def _traffic(args: argparse.Namespace) -> int:
    """``pitwall traffic``: real traffic per product version, as the operator wrote it to status."""
    import json

    from .traffic import view

    found = asyncio.run(views._list(args, "ApiProduct"))
    rows = view.rows(sorted(found["ApiProduct"], key=lambda p: p["metadata"]["name"]))
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No ApiProduct declares spec.traffic.")
        return 0
    columns = view.COLUMNS if args.wide else view.COLUMNS[:12]
    print(views._table([[str(r.get(key, "")) for _, key in columns] for r in rows], [h for h, _ in columns]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pitwall",
        description="Pitwall: operate an API marketplace "
        "declaratively (ApiProduct, Probe, Backend, AlertRule, MaintenanceWindow).",
    )
    parser.add_argument("--version", action="version", version=f"pitwall {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator (current kubeconfig, or in-cluster)")
    run.add_argument(
        "--kubeconfig", help="path to a kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)"
    )
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        help="watch only this namespace (repeatable; default: all namespaces)",
    )
    run.add_argument(
        "--bind-address",
        default=None,
        metavar="ADDRESS",
        help="address of the metrics, status page and internal view servers (default 0.0.0.0; "
        "`make dev` uses 127.0.0.1 so nothing collides with the pods' loopback twins)",
    )
    run.add_argument("--metrics-port", type=int, default=8080, help="/metrics and /healthz (0 disables)")
    run.add_argument("--statuspage-port", type=int, default=8081, help="public status page (0 disables)")
    run.add_argument("--internal-port", type=int, default=8082, help="internal view (0 disables)")
    run.add_argument(
        "--target-mode",
        choices=["auto", "service", "endpoints"],
        default=None,
        help="how probes reach an ApiProduct version: its Service DNS name (in-cluster) or its "
        "ready EndpointSlice addresses (out of cluster); auto picks by where Pitwall runs",
    )
    run.add_argument(
        "--endpoint-rewrite",
        default=None,
        metavar="FROM=TO",
        help="map endpoint addresses to reachable ones, e.g. 10.244.0.0/16=127.244.0.0/16 "
        "(local control plane)",
    )
    run.add_argument(
        "--webhook-port",
        type=int,
        default=None,
        help="serve the MaintenanceWindow admission webhook (HTTPS) on this port; needs "
        "--webhook-cert/--webhook-key or PITWALL_WEBHOOK_CERT/KEY",
    )
    run.add_argument("--webhook-cert", default=None)
    run.add_argument("--webhook-key", default=None)
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="run as one of several replicas: only the holder of the Lease "
        "pitwall-operator does the work (takeover within --lease-duration + a few seconds)",
    )
    run.add_argument(
        "--lease-namespace", default=None, help="namespace of the Lease (default: $POD_NAMESPACE or default)"
    )
    run.add_argument("--lease-duration", type=float, default=None, help="seconds (default 15)")
    run.add_argument(
        "--probe-shards",
        type=int,
        default=None,
        metavar="N",
        help="split the probes into N shards held through Leases pitwall-shard-<i>, so every "
        "replica runs its share (needs --leader-elect; alerts stay with the leader). "
        "Default: off ($PITWALL_PROBE_SHARDS)",
    )
    run.add_argument(
        "--probe-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="probe runs in flight at once (default 100, $PITWALL_PROBE_CONCURRENCY); runs due "
        "beyond it wait in due order and start late, never fail (pitwall_probe_overloaded)",
    )
    run.add_argument(
        "--status-writes-per-second",
        type=float,
        default=None,
        metavar="N",
        help="steady probe status writes a second, all probes together (default 10, "
        "$PITWALL_STATUS_WRITES_PER_SECOND): each probe's counts, numbers and last run are "
        "written once a minute, or every probes/N seconds when there are more probes than "
        "that; changes of state are written at once",
    )
    for name, (flag, var) in FLOOR_FLAGS.items():
        run.add_argument(
            flag,
            dest=name,
            default=None,
            metavar="DURATION",
            help=f"operator-wide floor (${var}; default and minimum "
            f"{format_duration(getattr(ADMISSION, name))}): objects below it are Stalled",
        )
    traffic = run.add_argument_group("traffic (Prometheus, read-only)")
    traffic.add_argument(
        "--prometheus-url",
        default=None,
        help="Prometheus base URL, e.g. "
        "http://prometheus.monitoring:9090 ($PITWALL_PROMETHEUS_URL; unset: no traffic figures)",
    )
    traffic.add_argument(
        "--prometheus-secret",
        default=None,
        metavar="NAMESPACE/NAME",
        help="Secret with key token (bearer) or username + password (basic), labelled "
        "pitwall.dev/use=traffic ($PITWALL_PROMETHEUS_SECRET)",
    )
    traffic.add_argument("--prometheus-ca-file", default=None, help="CA bundle for https Prometheus")
    traffic.add_argument(
        "--prometheus-insecure", action="store_true", help="skip TLS verification (development)"
    )
    traffic.add_argument(
        "--prometheus-timeout", type=float, default=None, help="seconds per query (default 10)"
    )
    traffic.add_argument(
        "--prometheus-qps", type=float, default=None, help="at most this many queries per second (default 5)"
    )
    traffic.add_argument(
        "--traffic-interval", type=float, default=None, help="seconds between traffic cycles (default 30)"
    )
    run.add_argument(
        "--log-search-url",
        default=None,
        metavar="TEMPLATE",
        help="turns correlation ids into links, e.g. 'https://kibana/app/discover#/?query={correlationId}' "
        "($PITWALL_LOG_SEARCH_URL)",
    )
    run.add_argument("--log-level", default="INFO")
    run.add_argument("--log-format", choices=["json", "text"], default="json")
    run.set_defaults(func=_run)

    page = sub.add_parser(
        "maintenance-page",
        help="serve the maintenance page (503 + Retry-After); configured by PITWALL_MAINTENANCE_* variables",
        add_help=False,
    )
    page.set_defaults(func=lambda a: _maintenance_page(a.rest), rest=[])
    demo = sub.add_parser("demo-api", help="the demo API make dev probes (isUp, an OAuth flow, backends)")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=18080)
    demo.set_defaults(func=_demo)
    views.register(sub)
    edits.register(sub)
    traffic_cmd = sub.add_parser(
        "traffic",
        help="real traffic per product version (from Prometheus, via status): "
        "requests/s, failures by class, latency, top consumers and routes",
    )
    traffic_cmd.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    traffic_cmd.add_argument("--kubeconfig")
    traffic_cmd.add_argument("-o", "--output", choices=["table", "json"], default="table")
    traffic_cmd.add_argument("--wide", action="store_true", help="also the top consumers and routes")
    traffic_cmd.set_defaults(func=_traffic)
    incidentviews.register(sub)
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
