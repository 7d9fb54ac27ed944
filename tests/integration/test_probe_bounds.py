"""Issue 14, the probe engine's part, through the real operator and control plane: hostile
Probes in one namespace each end in a verdict with a reason, while a healthy Probe in another
namespace keeps its schedule and the operator counts no error inside a check."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid

import pytest
from aiohttp import web
from bench.hostile_target import app as hostile_app

from tests.conftest import Kubectl, Operator, condition, eventually
from tests.helpers.demo import DemoAPI


class HostileTarget:
    """``bench/hostile_target.py``'s responses (bomb, ReDoS bait, deep JSON ...) on 127.0.0.1, in a thread."""

    def __enter__(self) -> HostileTarget:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def start():
            runner = web.AppRunner(hostile_app(), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            return runner

        self._runner = asyncio.run_coroutine_threadsafe(start(), self._loop).result(60)
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def probe(name: str, url: str, expect: dict | None = None, **spec) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "Probe",
        "metadata": {"name": name},
        "spec": {
            "target": {"url": url},
            "interval": "1s",
            "timeout": "1s",
            "failureThreshold": 1,
            "steps": [{"name": "get", "request": {}, "expect": expect or {}}],
            **spec,
        },
    }


@pytest.fixture
def teams(cluster, tmp_path):
    names = [f"t-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for name in names:
        cluster.kubectl("create", "namespace", name)
    op = Operator(cluster, tmp_path, namespace=names[0], extra_args=["--namespace", names[1]]).start()
    yield op, Kubectl(cluster, names[0]), Kubectl(cluster, names[1])
    op.stop()
    for name in names:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


HOSTILE = [
    # name, path, expect, spec, (state or Stalled reason, the reason the user reads)
    ("bomb", "/bomb", {}, {}, ("Down", "response body decodes at more than 200 times its size")),
    ("redos", "/redos", {"body": {"regex": "^(a+)+$"}}, {}, ("Down", "body does not match '^(a+)+$'")),
    (
        "redos-header",
        "/redos",
        {"headers": [{"name": "X-Name", "matches": "^(a|aa)+$"}]},
        {},
        ("Down", "does not match '^(a|aa)+$'"),
    ),
    ("deep", "/deep", {"json": [{"path": "$.a"}]}, {}, ("Down", "response JSON is nested too deeply")),
    (
        "wide",
        "/catalog",
        {"json": [{"path": "$..*"}]},
        {},
        ("Down", "response JSON has more than 2000 values"),
    ),
    (
        "descents",
        "/items",
        {"json": [{"path": "$..*..*"}]},
        {},
        ("InvalidJSONPath", "use at most one recursive descent (..) per JSONPath"),
    ),
    ("backref", "/ok", {"body": {"regex": "(a)\\1"}}, {}, ("InvalidRegex", "is not a regex RE2 accepts")),
    (
        "jsonpath-regex",
        "/items",
        {"json": [{"path": "$[?(@.name =~ '(a+)+$')]"}]},
        {},
        ("InvalidJSONPath", "use `matches` (RE2) instead"),
    ),
]


def verdict(kubectl: Kubectl, name: str) -> tuple[str, str] | None:
    obj = kubectl.get("probe", name) or {}
    status = obj.get("status") or {}
    stalled = condition(obj, "Stalled") if status.get("conditions") else {}
    if stalled.get("status") == "True":
        return stalled["reason"], stalled["message"]
    if status.get("state") == "Down":
        return "Down", (status.get("lastFailure") or {}).get("reason", "")
    return None


def test_hostile_probes_end_in_verdicts_and_cost_another_team_nothing(teams):
    operator, hostile_ns, healthy_ns = teams
    with DemoAPI() as demo, HostileTarget() as target:
        healthy_ns.apply(probe("steady", demo.url + "/isUp"))
        eventually(
            lambda: (healthy_ns.get("probe", "steady") or {}).get("status", {}).get("state") == "Up",
            message="the healthy probe is Up",
        )
        for name, path, expect, spec, _ in HOSTILE:
            hostile_ns.apply(probe(name, target.url + path, expect, **spec))

        started = time.monotonic()
        before = sum(1 for r in demo.requests() if r["path"] == "/isUp")
        verdicts = {}
        for name, *_, (reason, text) in HOSTILE:
            got = eventually(lambda name=name: verdict(hostile_ns, name), message=f"{name} has a verdict")
            verdicts[name] = got
            assert got[0] == reason, (name, got)
            assert text in got[1], (name, got)
        time.sleep(max(0.0, 6.0 - (time.monotonic() - started)))  # every hostile probe ran several times
        elapsed = time.monotonic() - started
        runs = sum(1 for r in demo.requests() if r["path"] == "/isUp") - before

        # The healthy probe kept its 1 s schedule the whole time (a missed slot would show).
        assert runs >= int(elapsed) - 1, (runs, elapsed)
        assert healthy_ns.get("probe", "steady")["status"]["state"] == "Up"
        # No check ended in an unforeseen exception; the scheduler loop never failed.
        metrics = operator.metrics()
        for kind in ("check", "run", "scheduler"):
            found = re.search(rf'^pitwall_job_errors_total\{{kind="{kind}"\}} (\S+)$', metrics, re.M)
            assert found is None or float(found.group(1)) == 0, (kind, found.group(0))
