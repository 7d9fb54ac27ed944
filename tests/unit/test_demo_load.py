"""The demo's consumers (``pitwall.demo.generate_load``), as ``make dev`` runs them against the
demo API: what its /metrics shows after a known number of calls."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

from aiohttp import ClientSession

from pitwall.demo import CONSUMERS, generate_load, load_call, start_demo


def test_every_hundred_calls_hold_a_few_client_errors_and_one_server_error():
    calls = [load_call(n) for n in range(100)]
    assert Counter(c.path for c in calls)["/isUp"] == 30
    assert calls[0].form and calls[0].form["password"] == "d0nut"  # a token before any account call
    assert {c.consumer for c in calls} == set(CONSUMERS)
    assert sum(1 for c in calls if c.form and c.form["password"] != "d0nut") == 2


def test_the_load_served_by_the_demo_api_shows_in_its_metrics():
    async def scenario() -> str:
        runner = await start_demo("127.0.0.1", 0)
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        stop = asyncio.Event()
        rounds = 0

        def targets() -> list[str]:
            nonlocal rounds
            rounds += 1
            if rounds == 200:
                stop.set()
            return [] if rounds > 200 else [base]

        try:
            await asyncio.wait_for(generate_load(targets, 500, stop), 60)
            async with ClientSession() as http, http.get(base + "/metrics") as answer:
                return await answer.text()
        finally:
            await runner.cleanup()

    metrics = asyncio.run(scenario())
    codes: Counter = Counter()
    routes: set[str] = set()
    for line in metrics.splitlines():
        found = re.match(r"http_requests_total\{(.*)\} ([0-9.e+]+)$", line)
        if found:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
            codes[labels["code"][0] + "xx"] += float(found.group(2))
            routes.add(labels["route"])
    # 200 calls: 2 x (2 wrong passwords + 1 call without a token + 2 unknown accounts) and 2 x acc-13
    assert codes == {"2xx": 188, "4xx": 10, "5xx": 2}
    assert routes == {"/isUp", "/oauth/token", "/accounts/me", "/accounts/{id}/balance"}
