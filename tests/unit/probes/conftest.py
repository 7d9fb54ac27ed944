"""Real local servers on 127.0.0.1 (the demo API and small purpose-built apps) and a probe client."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from aiohttp import web

from pitwall.demo import STATE, DemoState, start_demo
from pitwall.egress import Policy as AddressPolicy
from pitwall.probes.client import make_client
from pitwall.probes.spec import parse_check

SECRETS = {
    ("homer", "password"): "d0nut",
    ("api", "key"): "s3cr3t-api-key-value",
    ("odd", "value"): "p@ss w/rd&x=1",
}


async def secrets(name: str, key: str) -> str | None:
    return SECRETS.get((name, key))


@dataclass
class Demo:
    url: str
    state: DemoState


@pytest.fixture
async def demo():
    runner = await start_demo("127.0.0.1", 0)
    yield Demo(f"http://127.0.0.1:{runner.addresses[0][1]}", runner.app[STATE])
    await runner.cleanup()


@pytest.fixture
async def serve():
    """Start an aiohttp app on 127.0.0.1:0 and return its base URL."""
    runners = []

    async def start(app: web.Application, *, ssl_context=None) -> str:
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        runners.append(runner)
        scheme = "https" if ssl_context else "http"
        return f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def client():
    """The client the operator uses for checks without TLS options, under the default policy."""
    http = await make_client(
        parse_check({"target": {"url": "http://127.0.0.1"}}), secrets=secrets, policy=AddressPolicy()
    )
    yield http
    await http.aclose()


async def wait_until(condition, *, limit: float = 1.5) -> None:
    """Poll ``condition`` until true; fails the test (not flakily tight: a generous cap) otherwise."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)
