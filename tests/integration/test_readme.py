"""README examples cannot rot: every ```sh block marked ``<!-- readme-test -->`` runs here.

Each block runs as one bash script (``set -euo pipefail``), in order, the way a reader would
paste it: with the examples applied, ``pitwall`` and ``kubectl`` on the PATH, and a kubeconfig
whose context namespace holds the examples (so commands need no ``-n``, as in ``make dev``).
The commands the marked blocks do not cover are run elsewhere: ``make dev`` by test_dev.py,
the install by test_install.py, ``pitwall ack`` by test_cli.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pitwall.demo import example_manifests
from pitwall_testing.cluster import free_port
from tests.conftest import Operator, eventually
from tests.helpers.demo import DemoAPI

ROOT = Path(__file__).resolve().parents[2]
MARK = "<!-- readme-test -->"


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [m.group(1) for m in re.finditer(re.escape(MARK) + r"\s*```sh\n(.*?)```", text, re.DOTALL)]


def test_the_readme_marks_its_runnable_blocks():
    blocks = readme_blocks()
    assert len(blocks) >= 3
    joined = "\n".join(blocks)
    for command in (
        "pitwall status",
        "pitwall backend down",
        "pitwall scale",
        "kubectl patch apiproduct",
        "kubectl apply --server-side",
    ):
        assert command in joined
    assert "--type merge" not in joined


@pytest.fixture
def readers_shell(cluster, namespace, tmp_path):
    """The examples in ``namespace`` (a kubeconfig whose context points there) and an operator."""
    with DemoAPI() as demo:
        manifests = example_manifests(
            ROOT / "examples",
            demo=f"127.0.0.1:{demo.port}",
            receiver=f"127.0.0.1:{free_port()}",
            smtp=f"127.0.0.1:{free_port()}",
        )
        manifests = manifests.replace("namespace: marketplace", f"namespace: {namespace}")
        docs = [d for d in manifests.split("\n---\n")]
        kept = "\n---\n".join(d for d in docs if "kind: Namespace" not in d)
        cluster.kubectl("apply", "--server-side", "-f", "-", input=kept)
        config = json.loads(cluster.kubeconfig.read_text())
        config["contexts"][0]["context"]["namespace"] = namespace
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(json.dumps(config))
        op = Operator(cluster, tmp_path, namespace=namespace).start()
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "NO_COLOR": "1",
            "PATH": os.pathsep.join(
                [str(cluster.bindir), str(Path(sys.executable).parent), os.environ["PATH"]]
            ),
        }
        try:
            yield env, cluster, namespace
        finally:
            op.stop()


def test_every_marked_readme_block_runs(readers_shell):
    env, cluster, namespace = readers_shell

    def deployment_replicas(name: str) -> int | None:
        proc = cluster.kubectl(
            "get", "deployment", name, "-n", namespace, "-o", "jsonpath={.spec.replicas}", check=False
        )
        return int(proc.stdout) if proc.returncode == 0 and proc.stdout else None

    eventually(lambda: deployment_replicas("payments-v2"), timeout=60, message="the example product runs")
    for index, block in enumerate(readme_blocks()):
        proc = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + block],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert proc.returncode == 0, (
            f"README block {index + 1} failed:\n{block}\n{proc.stdout}\n{proc.stderr}"
        )
        if "pitwall status -A" in block:
            assert namespace in proc.stdout and "payments-oauth-flow" in proc.stdout
        if "pitwall probe run" in block:
            assert "3. balance: GET" in proc.stdout
        if "backend down" in block:
            assert "declared down by marge" in proc.stdout
        if "kubectl patch apiproduct" in block:
            eventually(
                lambda: deployment_replicas("payments-v2") == 3,
                timeout=30,
                message="the runtime edits reach the Deployment",
            )
            product = json.loads(
                cluster.kubectl("get", "apiproduct", "payments", "-n", namespace, "-o", "json").stdout
            )
            assert [v["name"] for v in product["spec"]["versions"]] == ["v1", "v2"]  # v1 kept
            v2 = product["spec"]["versions"][1]
            assert {"name": "LOG_LEVEL", "value": "debug"} in v2["env"]
