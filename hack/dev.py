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

from pitwall.demo import make_app, start_demo  # noqa: E402
from pitwall.testing.cluster import POD_ADDRESS_REWRITE, Cluster  # noqa: E402
from pitwall.testing.pods import PodServers  # noqa: E402


def say(text: str) -> None:
    print(f"\033[1;36m==>\033[0m {text}", flush=True)


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
        pods = PodServers(str(cluster.kubeconfig), lambda pod: make_app())
        pods_task = asyncio.create_task(pods.run())
        say(f"demo API on http://127.0.0.1:{args.demo_port} (and on every example pod's address)")
        env = {**cluster.env, "PITWALL_ENDPOINT_REWRITE": POD_ADDRESS_REWRITE}
        operator = subprocess.Popen(  # noqa: ASYNC220 - started, never waited on here
            [sys.executable, "-m", "pitwall", "run", "--log-format", "text",
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
