"""Shared fixtures. Integration tests get one real control plane per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.journeys import condition, eventually  # noqa: F401 - one definition, shared with the kind e2e

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/integration" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)
            # Real processes on a shared 2-core machine: a test that fails once is run once more
            # (pytest-rerunfailures) and reported as R; failing twice fails the run. Unit tests
            # get no second chance.
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=2))


_RERUNS: list[str] = []


def pytest_runtest_logreport(report):
    """Keep why a test needed its rerun: a flake that passes the second time leaves its reason
    in the run's summary (CI's log), not only an R."""
    if report.outcome == "rerun":
        crash = getattr(report.longrepr, "reprcrash", None)
        reason = crash.message if crash is not None else str(report.longrepr)
        _RERUNS.append(f"{report.nodeid} ({report.when}): {reason.splitlines()[0] if reason else '?'}")


def pytest_terminal_summary(terminalreporter):
    if _RERUNS:
        terminalreporter.section("why tests were rerun")
        for line in _RERUNS:
            terminalreporter.line(line[:1000])


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    from pitwall_testing.cluster import Cluster

    workdir = tmp_path_factory.mktemp("cluster")
    with Cluster.start(workdir) as running:
        running.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
        running.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=pitwall",
        )
        yield running


class Operator:
    """``pitwall run`` as a real subprocess against the test control plane."""

    def __init__(
        self,
        cluster,
        workdir: Path,
        namespace: str | None = None,
        extra_env: dict | None = None,
        extra_args: list[str] | None = None,
    ):
        from pitwall_testing.cluster import POD_ADDRESS_REWRITE, free_port

        self.cluster = cluster
        self.workdir = workdir
        self.namespace = namespace
        self.metrics_port = free_port()
        self.statuspage_port = free_port()
        self.internal_port = free_port()
        self.env = {
            **cluster.env,
            "PITWALL_ENDPOINT_REWRITE": POD_ADDRESS_REWRITE,
            "PITWALL_RESYNC_SECONDS": "30",
            **(extra_env or {}),
        }
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / f"operator-{uuid.uuid4().hex[:6]}.log"

    def start(self) -> Operator:
        args = [
            sys.executable,
            "-m",
            "pitwall",
            "run",
            "--metrics-port",
            str(self.metrics_port),
            "--statuspage-port",
            str(self.statuspage_port),
            "--internal-port",
            str(self.internal_port),
        ]
        if self.namespace:
            args += ["--namespace", self.namespace]
        args += self.extra_args
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 30
        import urllib.request

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited: {self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"operator not ready: {self.log()[-3000:]}")

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            import signal

            os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()


@pytest.fixture
def namespace(cluster):
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
    release_finalizers(cluster, name)


PITWALL_KINDS = (
    "apiproducts.pitwall.dev,probes.pitwall.dev,backends.pitwall.dev,alertrules.pitwall.dev,"
    "maintenancewindows.pitwall.dev"
)


def release_finalizers(cluster, namespace: str) -> None:
    """The test's operator is stopped by now, so nothing would remove Pitwall's finalizer
    (pitwall.dev/cleanup) and the namespace would stay Terminating: do what an uninstall does."""
    proc = cluster.kubectl("get", PITWALL_KINDS, "-n", namespace, "-o", "name", check=False)
    for ref in proc.stdout.split():
        cluster.kubectl(
            "patch",
            ref,
            "-n",
            namespace,
            "--type",
            "merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )


@pytest.fixture
def operator(cluster, namespace, tmp_path):
    op = Operator(cluster, tmp_path, namespace=namespace).start()
    yield op
    op.stop()
    if os.environ.get("PITWALL_TEST_SHOW_LOGS"):
        print(op.log())


class Kubectl:
    """Small conveniences over ``kubectl`` for assertions."""

    def __init__(self, cluster, namespace):
        self.cluster = cluster
        self.namespace = namespace

    def __call__(self, *args, **kwargs):
        return self.cluster.kubectl(*args, "-n", self.namespace, **kwargs)

    def apply(self, manifest: dict | str):
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.cluster.kubectl("apply", "--server-side", "-n", self.namespace, "-f", "-", input=text)

    def get(self, kind: str, name: str) -> dict | None:
        proc = self(("get"), kind, name, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def list(self, kind: str, selector: str | None = None) -> list[dict]:
        args = ["get", kind, "-o", "json"]
        if selector:
            args += ["-l", selector]
        return json.loads(self(*args).stdout)["items"]

    def patch(self, kind: str, name: str, patch: dict, patch_type: str = "merge", subresource=None):
        args = ["patch", kind, name, "--type", patch_type, "-p", json.dumps(patch)]
        if subresource:
            args += ["--subresource", subresource]
        return self(*args)

    def events(self, name: str) -> list[dict]:
        items = self.list("events")
        return [e for e in items if e.get("involvedObject", {}).get("name") == name]


@pytest.fixture
def kubectl(cluster, namespace):
    return Kubectl(cluster, namespace)
