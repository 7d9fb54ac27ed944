#!/usr/bin/env python3
"""`make dev`: the whole of Pitwall on this machine, in the foreground. Ctrl-C stops it all.

1. a local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok),
2. the CRDs, 3. the demo API on 127.0.0.1:18080 (and on every example pod's address),
4. the operator, 5. the examples. Then it prints where to look.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from aiohttp import web  # noqa: E402

from pitwall.demo import make_app, start_demo  # noqa: E402
from pitwall.testing.cluster import POD_ADDRESS_REWRITE, Cluster, free_port  # noqa: E402
from pitwall.testing.pods import PodServers  # noqa: E402


def say(text: str) -> None:
    print(f"\033[1;36m==>\033[0m {text}", flush=True)


async def start_receiver(port: int) -> web.AppRunner:
    """Stands in for Teams, Slack, PagerDuty and webhooks: prints what Pitwall sends."""
    async def receive(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        summary = (body.get("text") or body.get("status") or body.get("event_action")
                   or (body.get("payload") or {}).get("summary") or body.get("subject") or "")
        say(f"notification {request.path}: {str(summary)[:120]}")
        return web.json_response({"ok": True}, status=202)
    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def start_smtp(port: int):
    """A local mail relay for notices and email receivers: prints each message's subject."""
    from aiosmtpd.controller import Controller

    class Print:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's API
            subject = next((line for line in envelope.content.decode(errors="replace").splitlines()
                            if line.lower().startswith("subject:")), "Subject: ?")
            say(f"mail to {', '.join(envelope.rcpt_tos)}: {subject[8:].strip()}")
            return "250 OK"
    controller = Controller(Print(), hostname="127.0.0.1", port=port)
    controller.start()
    return controller


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=".pitwall")
    parser.add_argument("--demo-port", type=int, default=int(os.environ.get("PITWALL_DEMO_PORT", 18080)))
    parser.add_argument("--statuspage-port", type=int, default=8081)
    parser.add_argument("--internal-port", type=int, default=8082)
    parser.add_argument("--metrics-port", type=int, default=8080)
    args = parser.parse_args()

    started = time.monotonic()
    say("starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
    cluster = Cluster.start(ROOT / args.dir)
    operator = None
    pods = None
    demo = None
    try:
        say(f"control plane ready in {time.monotonic() - started:.1f}s at {cluster.server}")
        cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd",
                        "-l", "app.kubernetes.io/part-of=pitwall")
        say("CRDs installed")
        demo = await start_demo("127.0.0.1", args.demo_port)
        receiver = await start_receiver(18081)
        smtp = start_smtp(2525)
        webhook_port = free_port()
        webhook_env = cluster.register_webhook(webhook_port)
        pods = PodServers(str(cluster.kubeconfig), lambda pod: make_app())
        pods_task = asyncio.create_task(pods.run())
        say(f"demo API on http://127.0.0.1:{args.demo_port} (and on every example pod's address)")
        env = {**cluster.env, "PITWALL_ENDPOINT_REWRITE": POD_ADDRESS_REWRITE, **webhook_env}
        operator = subprocess.Popen(  # noqa: ASYNC220 - started, never waited on here
            [sys.executable, "-m", "pitwall", "run", "--log-format", "text", "--webhook-port", str(webhook_port),
             "--metrics-port", str(args.metrics_port), "--statuspage-port", str(args.statuspage_port),
             "--internal-port", str(args.internal_port)], env=env, start_new_session=True)
        await asyncio.sleep(2)
        cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "examples"))
        say("examples applied")
        print(f"""
  Pitwall is running. In another shell:

    export KUBECONFIG={cluster.kubeconfig}
    export PATH={cluster.bindir}:$PATH
    kubectl get pitwall -A
    pitwall status                       # the support engineer's view

  Status page:   http://127.0.0.1:{args.statuspage_port}/
  Internal view: http://127.0.0.1:{args.internal_port}/
  Metrics:       http://127.0.0.1:{args.metrics_port}/metrics
  Demo API:      http://127.0.0.1:{args.demo_port}/isUp   (POST /_admin/down?what=isUp to cause an outage)
  Receivers:     http://127.0.0.1:18081 (Teams, Slack, PagerDuty, webhooks) and smtp://127.0.0.1:2525,
                 printed here as they arrive

  Ctrl-C stops everything.
""", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            if operator.poll() is not None:
                say(f"the operator exited with {operator.returncode}")
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1)
        pods._stop.set()
        await pods_task
        await receiver.cleanup()
        smtp.stop()
        return 0
    finally:
        say("stopping")
        if operator and operator.poll() is None:
            os.killpg(operator.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                operator.wait(10)
        if demo:
            await demo.cleanup()
        cluster.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
