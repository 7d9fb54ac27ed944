"""An overloaded probe engine, against the real control plane: reported, never turned into failures.

The operator gets more probe work than it can run: ``--probe-concurrency 1`` (one run in flight)
and twelve probes every 2 s on a real server that takes 0.4 s to answer, so 2.4 times more is
due than one slot can run. It believes it runs in a Pod (``POD_NAME``,
``POD_NAMESPACE``, ``POD_UID``, as the downward API sets them in manifests/base): a real Pod
object that no scheduler or kubelet touches. The test sees what a person would: the Warning
Event ``ProbeEngineOverloaded`` on that Pod, its condition ``pitwall.dev/ProbeEngine`` False,
/healthz still 200 with the details, every probe still Up with no failed run and every probe
still run; then, once the target is fast again, ``ProbeEngineRecovered`` and the condition True.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import Operator, eventually
from tests.integration.test_probes import probe

PROBES = 12
SLOW = 0.4  # seconds per answer while overloaded
CONDITION = "pitwall.dev/ProbeEngine"


class SlowTarget:
    """A real HTTP server answering 200 after ``delay`` seconds; hits counted per path."""

    def __init__(self):
        self.delay = SLOW
        self.hits: Counter = Counter()
        self.lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's API
                time.sleep(target.delay)
                with target.lock:
                    target.hits[self.path.rsplit("/", 1)[-1]] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/p/{name}"

    def counts(self) -> Counter:
        with self.lock:
            return Counter(self.hits)

    def __enter__(self) -> SlowTarget:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def the_pod(kubectl, name: str) -> dict:
    """A Pod standing in for the operator's: never scheduled (no such scheduler), so nothing but
    the operator writes its status."""
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "schedulerName": "nobody",
                "automountServiceAccountToken": False,
                "containers": [{"name": "operator", "image": "ghcr.io/pitwall-dev/pitwall:0.1.0"}],
            },
        }
    )
    return kubectl.get("pod", name)


def engine_condition(kubectl, pod: str) -> dict:
    for condition in (kubectl.get("pod", pod) or {}).get("status", {}).get("conditions") or []:
        if condition["type"] == CONDITION:
            return condition
    return {}


def events(kubectl, pod: str, reason: str) -> list[dict]:
    return [e for e in kubectl.events(pod) if e.get("reason") == reason]


def healthz(op: Operator) -> tuple[int, dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/healthz", timeout=5) as r:
        return r.status, json.loads(r.read())


def failed_runs(op: Operator) -> float:
    found = re.findall(r'^pitwall_probe_runs_total{[^}]*result="failure"[^}]*} (\S+)$', op.metrics(), re.M)
    return sum(float(v) for v in found)


def test_overload_is_reported_on_the_pod_and_fails_no_probe(cluster, namespace, kubectl, tmp_path):
    pod = the_pod(kubectl, "pitwall-overload-0")
    env = {"POD_NAME": pod["metadata"]["name"], "POD_NAMESPACE": namespace, "POD_UID": pod["metadata"]["uid"]}
    op = Operator(cluster, tmp_path, namespace, env, ["--probe-concurrency", "1"]).start()
    names = [f"slow{i}" for i in range(PROBES)]
    try:
        # At start the condition says the engine is on time.
        on_time = eventually(lambda: engine_condition(kubectl, pod["metadata"]["name"]), message="condition")
        assert (on_time["status"], on_time["reason"]) == ("True", "OnTime")

        with SlowTarget() as target:
            for name in names:
                kubectl.apply(probe(name, {"url": target.url(name)}, interval="2s", timeout="1s"))
            overloaded = eventually(
                lambda: events(kubectl, pod["metadata"]["name"], "ProbeEngineOverloaded"),
                timeout=60,
                message="a ProbeEngineOverloaded Event on the Pod",
            )
            assert overloaded[0]["type"] == "Warning"
            assert overloaded[0]["involvedObject"]["uid"] == pod["metadata"]["uid"]  # kubectl describe pod
            assert "never fails a check" in overloaded[0]["message"]
            condition = eventually(
                lambda: (
                    (c := engine_condition(kubectl, pod["metadata"]["name"])).get("status") == "False" and c
                ),
                timeout=30,
                message="the condition False",
            )
            assert condition["reason"] == "Overloaded" and "late" in condition["message"]
            status, body = healthz(op)
            assert status == 200 and body["status"] == "ok"  # an overload never restarts the pod
            assert body["probeEngine"]["overloaded"] is True

            # Overloaded for a while: every probe keeps running, none fails, none goes Down.
            start = target.counts()
            time.sleep(10)
            ran = target.counts() - start
            print(f"runs per probe in 10 s overloaded (1 slot, {SLOW}s each, {PROBES / 2:g}/s due): {ran}")
            assert all(ran[name] >= 1 for name in names), ran  # nobody starved
            assert failed_runs(op) == 0
            for name in names:
                state = (kubectl.get("probe", name) or {}).get("status", {}).get("state")
                assert state in (None, "Unknown", "Up"), (name, state)  # lateness never flips a probe to Down

            # A fast target again: the engine catches up and says so.
            target.delay = 0.0
            recovered = eventually(
                lambda: events(kubectl, pod["metadata"]["name"], "ProbeEngineRecovered"),
                timeout=60,
                message="a ProbeEngineRecovered Event",
            )
            assert recovered[0]["type"] == "Normal"
            condition = eventually(
                lambda: (
                    (c := engine_condition(kubectl, pod["metadata"]["name"])).get("status") == "True" and c
                ),
                timeout=30,
                message="the condition True again",
            )
            assert condition["reason"] == "OnTime" and "on time again" in condition["message"]
            assert healthz(op)[1]["probeEngine"]["overloaded"] is False
            assert failed_runs(op) == 0
            for name in names:
                assert eventually(
                    lambda n=name: (kubectl.get("probe", n) or {}).get("status", {}).get("state")
                )
                assert kubectl.get("probe", name)["status"]["state"] == "Up"
    finally:
        op.stop()
