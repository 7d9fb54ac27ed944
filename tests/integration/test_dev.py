"""`make dev`, unchanged, twice side by side: it starts clean and stays quiet.

Two `hack/dev.py` (each with its own state directory, as two checkouts have) run at once,
beside this session's test control plane. For a while (2 minutes; 10 with PITWALL_SOAK=1)
nothing may page anyone, nothing may fail to bind, every example must be Ready, and the
demo's mail path must work (the deprecated payments v1's consumers get their notice through
the dev relay, with the example Secret's login), and the payments product must show real
traffic: a real Prometheus (Debian's) scrapes the example pods, which the demo's consumers call,
and the operator reads it. Then, in the first one, an emergency window shows the maintenance
page on the addresses behind payments-v2's Service.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pitwall.runtime import parse_rewrite, rewrite_address
from pitwall_testing.cluster import stop_pids
from tests.conftest import eventually

ROOT = Path(__file__).resolve().parents[2]
SOAK = os.environ.get("PITWALL_SOAK") == "1"
QUIET_FOR = 600 if SOAK else 120
HAVE_PROMETHEUS = os.access(shutil.which("prometheus") or "/usr/bin/prometheus", os.X_OK)
KINDS = ["apiproducts", "probes", "backends", "alertrules", "maintenancewindows"]
BAD_LINES = re.compile(
    r"cannot bind|address already in use|Traceback|FIRING|ESCALATED|the operator exited|"
    r"mail relay refused",
    re.IGNORECASE,
)


class Dev:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.log_path = workdir.parent / f"{workdir.name}.log"
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    def start(self) -> Dev:
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "hack" / "dev.py"), "--dir", str(self.workdir)],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 240) -> Dev:
        info = self.workdir / "dev.json"
        deadline = time.monotonic() + timeout
        while not info.exists() or "export PATH=" not in self.log():
            assert self.proc.poll() is None, f"make dev exited:\n{self.log()[-3000:]}"
            assert time.monotonic() < deadline, f"make dev not up in {timeout}s:\n{self.log()[-3000:]}"
            time.sleep(1)
        self.info = json.loads(info.read_text())
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess:
        kubectl = shutil.which("kubectl", path=self.path()) or "kubectl"
        proc = subprocess.run(
            [kubectl, f"--kubeconfig={self.info['kubeconfig']}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            input=input,
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    def path(self) -> str:
        """The PATH the banner tells the user to export."""
        line = next(line for line in self.log().splitlines() if "export PATH=" in line)
        return line.split("export PATH=", 1)[1].replace(":$PATH", "")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        stop_pids(self.workdir)  # whatever a killed dev.py left


@pytest.fixture
def two_devs(tmp_path):
    devs = [Dev(tmp_path / "checkout-a").start(), Dev(tmp_path / "checkout-b").start()]
    try:
        yield [d.wait_ready() for d in devs]
    finally:
        for dev in devs:
            dev.stop()
        if os.environ.get("PITWALL_TEST_SHOW_LOGS"):
            for dev in devs:
                print(dev.log())


def assert_real_traffic(dev: Dev) -> None:
    """payments' status.traffic, from the pods' own /metrics through Prometheus: both versions,
    route templates and consumers of the load, a few client and server errors, below the
    examples' 2% traffic alert (which the quiet loop saw stay silent)."""

    def figures():
        product = json.loads(
            dev.kubectl("get", "apiproduct", "payments", "-n", "marketplace", "-o", "json").stdout
        )
        traffic = (product.get("status") or {}).get("traffic") or {}
        versions = {v["name"]: v for v in traffic.get("versions") or []}
        settled = set(versions) == {"v1", "v2"} and all(
            v.get("rps", 0) > 0 and v.get("clientErrorRatio", 0) > 0 and v.get("serverErrorRatio", 0) > 0
            for v in versions.values()
        )
        return versions if settled else None

    versions = eventually(figures, timeout=150, interval=5, message=f"payments traffic in {dev.workdir.name}")
    for version in versions.values():
        assert "/accounts/{id}/balance" in {r["name"] for r in version["topRoutes"]}  # a template
        assert {"acme-fintech", "umbrella-retail"} <= {c["name"] for c in version["topConsumers"]}
        assert version["errorRatio"] < 0.02
        assert 0 < version["p50Ms"] <= version["p99Ms"]
    shown = subprocess.run(
        ["pitwall", "traffic", "--wide"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PATH": dev.path() + os.pathsep + os.environ["PATH"],
            "KUBECONFIG": dev.info["kubeconfig"],
        },
    )
    assert re.search(r"^payments\s+v2\s+ok\s", shown.stdout, re.MULTILINE), shown.stdout + shown.stderr
    internal = json.loads(
        urllib.request.urlopen(dev.info["internalView"] + "api/v1/internal", timeout=10).read()
    )
    payments = next(p for p in internal["products"] if p["name"] == "payments")
    assert {v["name"] for v in payments["traffic"]["versions"]} == {"v1", "v2"}
    assert payments["trafficSummary"], payments


def firing(dev: Dev) -> list[str]:
    rules = json.loads(dev.kubectl("get", "alertrules", "-A", "-o", "json").stdout)["items"]
    return [
        f"{r['metadata']['name']}: {a.get('key')} {a.get('state')}"
        for r in rules
        for a in (r.get("status") or {}).get("alerts") or []
        if a.get("state") == "firing"
    ]


def test_two_make_devs_start_clean_and_stay_quiet(two_devs):
    a, b = two_devs
    assert a.info["podAddresses"] != b.info["podAddresses"]
    served = ["statusPage", "demoApi", "receiver", "smtp", "metrics"]
    if HAVE_PROMETHEUS:
        served.append("prometheus")
    assert len({a.info[k] for k in served} | {b.info[k] for k in served}) == 2 * len(served)
    for dev in two_devs:
        for kind in KINDS:
            eventually(
                lambda d=dev, k=kind: (
                    d.kubectl(
                        "wait",
                        "--for=condition=Ready",
                        k,
                        "--all",
                        "-n",
                        "marketplace",
                        "--timeout=5s",
                        check=False,
                    ).returncode
                    == 0
                ),
                timeout=180,
                interval=5,
                message=f"{kind} Ready in {dev.workdir.name}",
            )
        assert shutil.which("pitwall", path=dev.path()), "the PATH make dev prints has no pitwall"
        status = subprocess.run(
            ["pitwall", "status"],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                **os.environ,
                "PATH": dev.path() + os.pathsep + os.environ["PATH"],
                "KUBECONFIG": dev.info["kubeconfig"],
            },
        )
        assert "payments-v2-isup" in status.stdout, (
            status.stdout + status.stderr
        )  # context namespace: marketplace

    started = time.monotonic()
    while time.monotonic() - started < QUIET_FOR:
        for dev in two_devs:
            assert firing(dev) == [], f"{dev.workdir.name} alerts: {firing(dev)}"
            bad = [line for line in dev.log().splitlines() if BAD_LINES.search(line)]
            assert bad == [], f"{dev.workdir.name}:\n" + "\n".join(bad[:20])
        time.sleep(15)
    for dev in two_devs:
        for kind in KINDS:
            proc = dev.kubectl(
                "wait",
                "--for=condition=Ready",
                kind,
                "--all",
                "-n",
                "marketplace",
                "--timeout=30s",
                check=False,
            )
            assert proc.returncode == 0, f"{dev.workdir.name} {kind}: {proc.stderr}{proc.stdout}"
        page = json.loads(urllib.request.urlopen(dev.info["statusPage"] + "api/v1/status", timeout=10).read())
        assert page["overall"]["headline"] == "All APIs operational", page["overall"]
        # the demo's mail path, end to end: v1's consumers got the deprecation notice via the relay
        assert "mail to api-support@globex.example: Payments API v1 is deprecated" in dev.log()
        if HAVE_PROMETHEUS:
            assert_real_traffic(dev)
        else:
            assert dev.info["prometheus"] is None and "apt-get install prometheus" in dev.log()

    # -- the maintenance page, seen through the addresses behind payments-v2's Service ------------
    start = datetime.now(UTC) + timedelta(seconds=5)
    a.kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "pitwall.dev/v1alpha1",
                "kind": "MaintenanceWindow",
                "metadata": {"name": "hotfix", "namespace": "marketplace"},
                "spec": {
                    "reason": "Emergency hotfix",
                    "emergency": True,
                    "emergencyReason": "a hotfix that cannot wait",
                    "schedule": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": "3m"},
                    "targets": {"apiProducts": {"names": ["payments"]}},
                    "maintenancePage": True,
                    "suppressAlerts": True,
                    "notice": {"notifyConsumers": False},
                },
            }
        ),
    )
    rules = parse_rewrite(f"10.244.0.0/16={a.info['podAddresses']}")

    def page_answers():
        slices = json.loads(
            a.kubectl(
                "get",
                "endpointslices",
                "-n",
                "marketplace",
                "-l",
                "kubernetes.io/service-name=payments-v2",
                "-o",
                "json",
            ).stdout
        )["items"]
        addresses = [
            addr
            for s in slices
            for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")
            for addr in e["addresses"]
        ]
        if not addresses:
            return None
        url = f"http://{rewrite_address(addresses[0], rules)}:8080/isUp"
        try:
            urllib.request.urlopen(
                urllib.request.Request(url, headers={"Accept": "application/json"}), timeout=5
            )
        except urllib.error.HTTPError as err:
            body = json.loads(err.read())
            return (err.code, err.headers.get("Retry-After"), body) if err.code == 503 else None
        except OSError:
            return None
        return None

    code, retry_after, body = eventually(
        page_answers,
        timeout=120,
        interval=2,
        message="the Service's addresses answer with the maintenance page",
    )
    assert retry_after and "Payments API maintenance" in json.dumps(body)
