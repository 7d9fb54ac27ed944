"""Probes sharded over two operator replicas (--probe-shards) against the real control plane.

Each probe checks its own path on one real local server, which records every hit, so the test
sees from the target's side who runs what and how often: the probes are split, each runs once
per interval (never twice: one owner at a time), a SIGKILLed replica's probes come back within
the interval plus the lease, and the alert on a probe fires and resolves exactly once.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import Operator, eventually
from tests.helpers.receiver import Recorder
from tests.integration.test_alerts import alerts, rule
from tests.integration.test_probes import probe

LEASE_SECONDS = 4
INTERVAL = 2
SHARDS = 2
PROBES = 20


class Target:
    """A real HTTP server: ``/p/<name>`` answers 200 (503 for names in ``down``); hits recorded."""

    def __init__(self):
        self.hits: dict[str, list[float]] = defaultdict(list)
        self.down: set[str] = set()
        self.lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's API
                name = self.path.rsplit("/", 1)[-1]
                with target.lock:
                    target.hits[name].append(time.monotonic())
                    status = 503 if name in target.down else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/p/{name}"

    def between(self, name: str, start: float, end: float) -> int:
        with self.lock:
            return sum(1 for t in self.hits[name] if start <= t < end)

    def first_after(self, name: str, moment: float) -> float | None:
        with self.lock:
            return next((t for t in self.hits[name] if t > moment), None)

    def __enter__(self) -> Target:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def scrape(op: Operator) -> str:
    try:
        return op.metrics()
    except OSError:
        return ""


def leading(op: Operator) -> bool:
    return bool(re.search(r"^pitwall_leader 1\.0$", scrape(op), re.M))


def shards_held(op: Operator) -> int:
    found = re.search(r"^pitwall_probe_shards_held (\S+)$", scrape(op), re.M)
    return int(float(found.group(1))) if found else 0


def running(op: Operator) -> set[str]:
    """The probes this replica runs: those with a run counter in its /metrics."""
    return set(re.findall(r'^pitwall_probe_runs_total{[^}]*name="([^"]+)"', scrape(op), re.M))


def test_probes_split_over_replicas_and_move_when_one_dies(cluster, namespace, kubectl, tmp_path):
    env = {
        "PITWALL_LEASE_DURATION": str(LEASE_SECONDS),
        "PITWALL_DELIVERY_BASE_DELAY": "0.05",
        "POD_NAMESPACE": namespace,
    }
    args = ["--leader-elect", "--probe-shards", str(SHARDS)]
    first = Operator(cluster, tmp_path, namespace, env, args).start()
    second = Operator(cluster, tmp_path, namespace, env, args).start()
    replicas = [first, second]
    names = [f"p{i:02d}" for i in range(PROBES)]
    try:
        with Target() as target, Recorder() as rec:
            for name in names:
                body = probe(name, {"url": target.url(name)}, interval=f"{INTERVAL}s", failureThreshold=2)
                if name == "p00":
                    body["metadata"]["labels"] = {"tier": "revenue-critical"}
                kubectl.apply(body)
            kubectl.apply(rule("p00-down", [{"name": "hook", "type": "webhook", "url": rec.url + "/hook"}]))

            # Split: each replica holds one shard and runs its probes, together all of them, none twice.
            eventually(
                lambda: [shards_held(op) for op in replicas] == [1, 1], timeout=30, message="one shard each"
            )
            eventually(
                lambda: running(first) | running(second) == set(names),
                timeout=30,
                message="every probe runs on some replica",
            )
            split = [running(op) for op in replicas]
            print(f"split: {len(split[0])} + {len(split[1])} of {PROBES} probes")
            assert not split[0] & split[1]
            assert all(len(part) >= 2 for part in split)
            for lease in (kubectl.get("lease", f"pitwall-shard-{i}") for i in range(SHARDS)):
                assert lease["spec"]["holderIdentity"]

            # Once per interval, from the target's side: over 5 intervals, 5 hits per probe (+-1 for
            # where the window cuts the grid); two owners would show as 10.
            start = time.monotonic()
            time.sleep(5 * INTERVAL)
            counts = {name: target.between(name, start, start + 5 * INTERVAL) for name in names}
            print(f"hits per probe in {5 * INTERVAL}s: {sorted(counts.values())}")
            assert all(4 <= count <= 6 for count in counts.values()), counts

            # An alert on p00 fires once.
            with target.lock:
                target.down.add("p00")
            eventually(lambda: len(rec.paths("/hook")) == 1, timeout=30, message="fired once")

            # SIGKILL the leader: the other replica takes the leadership and the dead one's shard.
            leader = eventually(lambda: first if leading(first) else (second if leading(second) else None))
            survivor = second if leader is first else first
            orphaned = running(leader)
            killed_at = time.monotonic()
            leader.stop(kill=True)
            eventually(
                lambda: shards_held(survivor) == SHARDS,
                timeout=LEASE_SECONDS * 5,
                message="survivor holds every shard",
            )
            eventually(lambda: leading(survivor), timeout=LEASE_SECONDS * 5, message="survivor leads")
            eventually(
                lambda: all(target.first_after(name, killed_at + 0.5) for name in orphaned),
                timeout=INTERVAL + LEASE_SECONDS * 5,
                message="the dead replica's probes run again",
            )
            gaps = [target.first_after(name, killed_at + 0.5) - killed_at for name in orphaned]
            print(
                f"{len(orphaned)} probes taken over; first run {min(gaps):.1f}-{max(gaps):.1f}s after the kill "
                f"(interval {INTERVAL}s + lease {LEASE_SECONDS}s)"
            )
            # The bound is the interval plus the lease; a loaded test machine gets 3 s of slack.
            assert max(gaps) <= INTERVAL + LEASE_SECONDS + 3

            # One owner now: over 3 intervals, at most 4 hits per probe.
            start = time.monotonic()
            time.sleep(3 * INTERVAL)
            assert all(target.between(name, start, start + 3 * INTERVAL) <= 4 for name in names)
            assert running(survivor) == set(names)

            assert len(rec.paths("/hook")) == 1  # no duplicate firing from the new leader
            with target.lock:
                target.down.discard("p00")
            eventually(lambda: len(rec.paths("/hook")) == 2, timeout=30, message="resolved once")
            assert rec.paths("/hook")[1]["body"]["status"] == "resolved"
            assert alerts(kubectl, "p00-down")[0]["state"] == "resolved"
            time.sleep(2)
            assert len(rec.paths("/hook")) == 2
    finally:
        first.stop()
        second.stop()
