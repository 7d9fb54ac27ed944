"""Two operator replicas against the real control plane: one leads, the other takes over."""

from __future__ import annotations

import re
import time

from tests.conftest import Operator, eventually
from tests.helpers.demo import DemoAPI
from tests.helpers.receiver import Recorder
from tests.integration.test_alerts import alerts, labelled_probe, rule

LEASE_SECONDS = 4


def leading(op: Operator) -> bool:
    try:
        return bool(re.search(r"^pitwall_leader 1\.0$", op.metrics(), re.M))
    except OSError:
        return False


def runs(op: Operator, probe: str) -> float:
    pattern = rf'^pitwall_probe_runs_total{{[^}}]*name="{probe}"[^}}]*}} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, op.metrics(), re.M))


def test_takeover_without_duplicates_or_lost_schedule(cluster, namespace, kubectl, tmp_path):
    env = {
        "PITWALL_LEASE_DURATION": str(LEASE_SECONDS),
        "PITWALL_DELIVERY_BASE_DELAY": "0.05",
        "POD_NAMESPACE": namespace,
    }
    first = Operator(cluster, tmp_path, namespace, env, ["--leader-elect"]).start()
    second = Operator(cluster, tmp_path, namespace, env, ["--leader-elect"]).start()
    try:
        with DemoAPI() as demo, Recorder() as rec:
            leader = eventually(lambda: first if leading(first) else (second if leading(second) else None))
            standby = second if leader is first else first
            time.sleep(1)
            assert not leading(standby)  # exactly one active
            lease = kubectl.get("lease", "pitwall-operator")
            assert lease["spec"]["holderIdentity"]

            kubectl.apply(labelled_probe("checkout", demo.url + "/isUp"))
            kubectl.apply(
                rule("checkout-down", [{"name": "hook", "type": "webhook", "url": rec.url + "/hook"}])
            )
            eventually(lambda: (kubectl.get("probe", "checkout").get("status") or {}).get("state") == "Up")
            demo.admin("down", what="isUp")
            eventually(lambda: len(rec.paths("/hook")) == 1, message="fired once")

            killed_at = time.monotonic()
            leader.stop(kill=True)
            eventually(lambda: leading(standby), timeout=LEASE_SECONDS * 5, message="standby takes over")
            took = time.monotonic() - killed_at
            print(f"takeover after {took:.1f}s (lease {LEASE_SECONDS}s)")
            # the schedule goes on under the new leader
            # (status is coalesced while the state holds; the run counter shows every run)
            eventually(lambda: runs(standby, "checkout") >= 2, message="probe runs under the new leader")
            assert len(rec.paths("/hook")) == 1  # no duplicate firing from the new leader
            demo.admin("up")
            eventually(
                lambda: len(rec.paths("/hook")) == 2, timeout=20, message="resolve from the new leader"
            )
            assert rec.paths("/hook")[1]["body"]["status"] == "resolved"
            assert alerts(kubectl, "checkout-down")[0]["state"] == "resolved"
    finally:
        first.stop()
        second.stop()
