#!/usr/bin/env python3
"""`make dev`: the whole of Pitwall on this machine, in the foreground. Ctrl-C stops it all.

1. a local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok),
2. the CRDs, 3. the demo API, a receiver standing in for Teams/Slack/PagerDuty/webhooks and an
SMTP relay, 4. a server on every example pod's address (the demo API, or the maintenance page
on the maintenance-page pods), 5. a real Prometheus (Debian's ``prometheus``; without it,
everything else still runs) scraping the demo API and the ready example pods (listed for it
as they come and go, with namespace and pod labels), and the demo's consumers calling them
(``pitwall.demo.generate_load``), 6. the operator, reading traffic from that Prometheus,
7. the examples. Then it prints where to look.

Nothing here takes a port or an address another `make dev` or `make test` may hold: each
well-known port (demo 18080, receiver 18081, SMTP 2525, status page 8081, internal view 8082,
metrics 8080, Prometheus 18090) is used by the first `make dev` when free, and a free one otherwise; the operator binds
127.0.0.1 only, and the pods' loopback twins live in an address block of their own
(127.B.0.0/16, B claimed with a lock file per block). The examples are applied with the
addresses actually used; DIR/dev.json records them for tools and tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from aiohttp import web  # noqa: E402

from pitwall.demo import (  # noqa: E402
    describe_notification,
    example_manifests,
    generate_load,
    make_app,
    start_demo,
)
from pitwall.maintenance.page import PageConfig  # noqa: E402
from pitwall.maintenance.page import make_app as make_page_app  # noqa: E402
from pitwall.vocabulary import (  # noqa: E402
    LABEL_PRODUCT,
    LABEL_ROLE,
    LABEL_VERSION,
    ROLE_MAINTENANCE,
)
from pitwall_testing.cluster import Cluster, free_port  # noqa: E402
from pitwall_testing.pods import PodServers  # noqa: E402
from pitwall_testing.prometheus import PROMETHEUS, Prometheus  # noqa: E402

# 127.244.0.0/16 is the tests' block; `make dev` takes one of these, one per running checkout.
DEV_BLOCKS = range(200, 240)
LOCKS = Path(tempfile.gettempdir()) / "pitwall-dev-blocks"
POD = web.AppKey("pod", dict)  # a demo pod app's namespace and name: its Prometheus target labels


def say(text: str) -> None:
    print(f"\033[1;36m==>\033[0m {text}", flush=True)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int, first: bool) -> int:
    """``preferred`` when this is the first `make dev` (it holds the first address block, so two
    starting at once cannot both pick it) and nobody else holds the port; else a free port."""
    if first and preferred and port_free(preferred) and port_free(preferred, "0.0.0.0"):
        return preferred
    return free_port()


def claim_address_block() -> tuple[int, int]:
    """(B, lock fd): 127.B.0.0/16 is this process's for the pods' loopback twins until it exits."""
    LOCKS.mkdir(parents=True, exist_ok=True)
    for block in DEV_BLOCKS:
        fd = os.open(LOCKS / f"127.{block}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return block, fd
    raise SystemExit(
        f"every dev address block (127.{DEV_BLOCKS[0]}-{DEV_BLOCKS[-1]}.0.0/16) is taken: "
        f"are {len(DEV_BLOCKS)} `make dev` running?"
    )


def smtp_login(manifests: str) -> tuple[str, str] | None:
    """The user and password of the examples' ``smtp-relay`` Secret: the dev relay accepts exactly
    those, so the example and the relay always agree."""
    for doc in yaml.safe_load_all(manifests):
        if (doc or {}).get("kind") == "Secret" and doc["metadata"]["name"] == "smtp-relay":
            url = urlsplit((doc.get("stringData") or {}).get("url", ""))
            if url.username:
                return unquote(url.username), unquote(url.password or "")
    return None


async def start_receiver(port: int) -> web.AppRunner:
    """Stands in for Teams, Slack, PagerDuty and webhooks: prints what a person would read."""

    async def receive(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = (await request.text())[:200]
        lines = describe_notification(body)
        say(f"notification {request.path}: {lines[0]}")
        for line in lines[1:]:
            print(f"      {line}", flush=True)
        return web.json_response({"ok": True}, status=202)

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def start_smtp(port: int, login: tuple[str, str] | None):
    """A local mail relay for notices and email receivers: prints each message's subject.

    It offers AUTH without TLS (it only listens on 127.0.0.1) and accepts the examples' login."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    class Print:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's API
            subject = next(
                (
                    line
                    for line in envelope.content.decode(errors="replace").splitlines()
                    if line.lower().startswith("subject:")
                ),
                "Subject: ?",
            )
            say(f"mail to {', '.join(envelope.rcpt_tos)}: {subject[8:].strip()}")
            return "250 OK"

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            login is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == login
        )
        if not ok:
            say(f"mail relay refused a login ({mechanism})")
        return AuthResult(success=ok)

    # aiosmtpd 1.4 warns about its own use of Session.login_data at every login: not ours to fix.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    controller = Controller(
        Print(), hostname="127.0.0.1", port=port, authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    return controller


def pod_app(pod: dict) -> web.Application:
    """The maintenance page on maintenance-page pods (configured from their env, as the image
    would be), the demo API on every other pod, its metrics labelled with the pod's product and
    version (what the product's real image would export)."""
    labels = pod["metadata"].get("labels") or {}
    if labels.get(LABEL_ROLE) == ROLE_MAINTENANCE:
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e.get("value", "") for e in container.get("env") or []}
        return make_page_app(PageConfig.from_env(env))
    app = make_app(labels.get(LABEL_PRODUCT, "demo"), labels.get(LABEL_VERSION, "v1"))
    app[POD] = {"namespace": pod["metadata"]["namespace"], "pod": pod["metadata"]["name"]}
    return app


def scrape_configs(demo: str, pods_file: Path) -> list[dict]:
    """Prometheus' jobs: the demo API (a static target) and every ready demo pod Pitwall runs,
    from a file-based discovery list :func:`publish_pods` keeps current, with ``namespace`` and
    ``pod`` labels as kube-prometheus sets them. (Debian's build of Prometheus has no Kubernetes
    discovery, so `make dev` writes the list the way an API-server watch would.)"""
    return [
        {"job_name": "demo-api", "static_configs": [{"targets": [demo]}]},
        {"job_name": "pitwall-pods", "file_sd_configs": [{"files": [str(pods_file)]}]},
    ]


def pod_targets(runners: dict[tuple[str, int], web.AppRunner]) -> list[dict]:
    """The file discovery list of the pods serving the demo API (not the maintenance pages)."""
    return [
        {"targets": [f"{address}:{port}"], "labels": runner.app[POD]}
        for (address, port), runner in sorted(runners.items())
        if POD in runner.app
    ]


async def publish_pods(pods: PodServers, path: Path, stop: asyncio.Event) -> None:
    """Keep ``path`` (Prometheus' file discovery) listing the bound demo pods, replaced atomically."""
    written = None
    while not stop.is_set():
        targets = pod_targets(pods.runners)
        if targets != written:
            scratch = path.with_suffix(".tmp")
            scratch.write_text(json.dumps(targets))  # noqa: ASYNC240 - a few hundred bytes
            scratch.replace(path)  # noqa: ASYNC240
            written = targets
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 2)


async def start_prometheus(workdir: Path, port: int, cluster: Cluster, demo: str) -> Prometheus:
    """Prometheus on ``port``, its TSDB in DIR/prometheus, scraping every 5 s; stopped with the
    control plane (it is listed in DIR/pids.json, so a killed `make dev` leaves none behind)."""
    home = workdir / "prometheus"
    pods_file = home / "pods.json"
    home.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    pods_file.write_text("[]")  # noqa: ASYNC240
    prometheus = Prometheus(home, [], "5s", port=port, scrape_configs=scrape_configs(demo, pods_file))
    await asyncio.to_thread(prometheus.start)
    cluster.processes["prometheus"] = prometheus.proc
    cluster._write_pids()  # noqa: SLF001 - the control plane's pid list is the one stop_pids reads
    return prometheus


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=".pitwall")
    parser.add_argument("--demo-port", type=int, default=int(os.environ.get("PITWALL_DEMO_PORT", 18080)))
    parser.add_argument("--receiver-port", type=int, default=18081)
    parser.add_argument("--smtp-port", type=int, default=2525)
    parser.add_argument("--statuspage-port", type=int, default=8081)
    parser.add_argument("--internal-port", type=int, default=8082)
    parser.add_argument("--metrics-port", type=int, default=8080)
    parser.add_argument("--prometheus-port", type=int, default=18090)
    parser.add_argument(
        "--load", type=float, default=1.0, metavar="RPS", help="calls a second to each demo pod (0: none)"
    )
    args = parser.parse_args()
    workdir = (ROOT / args.dir).resolve()

    started = time.monotonic()
    block, _lock = claim_address_block()
    rewrite = f"10.244.0.0/16=127.{block}.0.0/16"
    ports = {
        name: pick_port(getattr(args, f"{name}_port"), first=block == DEV_BLOCKS[0])
        for name in ("demo", "receiver", "smtp", "statuspage", "internal", "metrics", "prometheus")
    }
    moved = [
        f"{name} {getattr(args, f'{name}_port')} -> {port}"
        for name, port in ports.items()
        if port != getattr(args, f"{name}_port")
    ]
    if moved:
        say(
            "another `make dev` (or something else) has the usual ports; using free ones: " + ", ".join(moved)
        )
    say("starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
    cluster = Cluster.start(workdir)
    operator = None
    demo = receiver = smtp = prometheus = None
    pods = pods_task = None
    background: list[asyncio.Task] = []
    stop = asyncio.Event()
    try:
        say(f"control plane ready in {time.monotonic() - started:.1f}s at {cluster.server}")
        cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
        cluster.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=pitwall",
        )
        # `pitwall status` and `kubectl get` without -n show the examples' namespace.
        cluster.kubectl("config", "set-context", "--current", "--namespace=marketplace")
        say("CRDs installed")
        manifests = example_manifests(
            ROOT / "examples",
            demo=f"127.0.0.1:{ports['demo']}",
            receiver=f"127.0.0.1:{ports['receiver']}",
            smtp=f"127.0.0.1:{ports['smtp']}",
        )
        demo = await start_demo("127.0.0.1", ports["demo"])
        receiver = await start_receiver(ports["receiver"])
        smtp = start_smtp(ports["smtp"], smtp_login(manifests))
        webhook_port = free_port()
        webhook_env = cluster.register_webhook(webhook_port)
        pods = PodServers(str(cluster.kubeconfig), pod_app, rewrite=rewrite)
        pods_task = asyncio.create_task(pods.run())
        traffic_args: list[str] = []
        if await asyncio.to_thread(os.access, PROMETHEUS, os.X_OK):
            try:
                prometheus = await start_prometheus(
                    workdir, ports["prometheus"], cluster, f"127.0.0.1:{ports['demo']}"
                )
            except RuntimeError as exc:
                say(f"Prometheus did not start, so no real traffic (everything else runs): {exc}")
        else:
            say(
                f"no Prometheus ({PROMETHEUS} is missing: sudo apt-get install prometheus): "
                "everything else runs, but `pitwall traffic` has nothing to show"
            )
        if prometheus is not None:
            traffic_args = ["--prometheus-url", prometheus.url]
            say(f"Prometheus scraping the demo API and the example pods at {prometheus.url}")

            def demo_targets() -> list[str]:
                """The demo API and every pod serving it (not the maintenance pages)."""
                bound = [f"http://{a}:{p}" for (a, p), r in pods.runners.items() if POD in r.app]
                return [f"http://127.0.0.1:{ports['demo']}", *bound]

            background = [
                asyncio.create_task(publish_pods(pods, prometheus.workdir / "pods.json", stop)),
                asyncio.create_task(generate_load(demo_targets, args.load, stop)),
            ]
        env = {**cluster.env, "PITWALL_ENDPOINT_REWRITE": rewrite, **webhook_env}
        operator = subprocess.Popen(  # noqa: ASYNC220 - started, never waited on here
            [
                sys.executable,
                "-m",
                "pitwall",
                "run",
                "--log-format",
                "text",
                "--bind-address",
                "127.0.0.1",
                "--webhook-port",
                str(webhook_port),
                "--metrics-port",
                str(ports["metrics"]),
                "--statuspage-port",
                str(ports["statuspage"]),
                "--internal-port",
                str(ports["internal"]),
                *traffic_args,
            ],
            env=env,
            start_new_session=True,
        )
        await asyncio.sleep(2)
        # Probes last, once the products run: a probe of a version whose pods are still being
        # created would fail its first run and show an untouched demo below 100% for the day.
        docs = manifests.split("\n---\n")
        probes = [d for d in docs if re.search(r"^kind: Probe$", d, re.MULTILINE)]
        cluster.kubectl(
            "apply", "--server-side", "-f", "-", input="\n---\n".join(d for d in docs if d not in probes)
        )
        await asyncio.to_thread(
            cluster.kubectl,
            "wait",
            "--for=condition=Ready",
            "apiproducts",
            "--all",
            "-n",
            "marketplace",
            "--timeout=90s",
            check=False,
        )  # the pods' servers bind meanwhile
        await asyncio.sleep(1)
        cluster.kubectl("apply", "--server-side", "-f", "-", input="\n---\n".join(probes))
        say("examples applied")
        urls = {
            "kubeconfig": str(cluster.kubeconfig),
            "statusPage": f"http://127.0.0.1:{ports['statuspage']}/",
            "internalView": f"http://127.0.0.1:{ports['internal']}/",
            "metrics": f"http://127.0.0.1:{ports['metrics']}/metrics",
            "demoApi": f"http://127.0.0.1:{ports['demo']}",
            "receiver": f"http://127.0.0.1:{ports['receiver']}",
            "smtp": f"smtp://127.0.0.1:{ports['smtp']}",
            "prometheus": prometheus.url if prometheus else None,
            "podAddresses": f"127.{block}.0.0/16",
            "operatorPid": operator.pid,
            "pid": os.getpid(),
        }
        (workdir / "dev.json").write_text(json.dumps(urls, indent=2))
        path = os.pathsep.join([str(cluster.bindir), str(Path(sys.executable).parent)])
        prometheus_line = (
            f"{prometheus.url}/  (scrapes the demo API and the example pods; "
            f"their consumers call them {args.load:g}x a second each)"
            if prometheus
            else "not running (see above), so no real traffic"
        )
        print(
            f"""
  Pitwall is running. In another shell:

    export KUBECONFIG={cluster.kubeconfig}
    export PATH={path}:$PATH
    kubectl get pitwall -A
    pitwall status                       # the support engineer's view (namespace marketplace)
    pitwall traffic --wide               # real traffic from Prometheus (a minute after start)

  Status page:   {urls["statusPage"]}
  Internal view: {urls["internalView"]}
  Metrics:       {urls["metrics"]}
  Demo API:      {urls["demoApi"]}/isUp   (POST /_admin/down?what=isUp to cause an outage)
  Prometheus:    {prometheus_line}
  Receivers:     {urls["receiver"]} (Teams, Slack, PagerDuty, webhooks) and {urls["smtp"]},
                 printed here as they arrive
  Pods answer on their loopback twins in {urls["podAddresses"]}.
  A backend outage by hand: pitwall backend down core-banking --reason "mainframe patching"

  Ctrl-C stops everything.
""",
            flush=True,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            if operator.poll() is not None:
                say(f"the operator exited with {operator.returncode}")
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1)
        return 0
    finally:
        say("stopping")
        stop.set()
        for task in background:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        if operator and operator.poll() is None:
            os.killpg(operator.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                operator.wait(10)
        if pods_task is not None:
            pods._stop.set()
            with contextlib.suppress(Exception):
                await pods_task
        for runner in (receiver, demo):
            if runner is not None:
                await runner.cleanup()
        if smtp is not None:
            smtp.stop()
        cluster.stop()  # Prometheus too


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
