"""Plays Prometheus for blackbox_exporter: scrape ``/probe`` for every target on its own phase.

    python -m bench.scraper --port 9115 --module http_200 --interval 10 --urls urls.txt

Target ``i`` of ``n`` is scraped at ``i / n * interval`` past each multiple of the interval,
so the load is spread evenly, as Prometheus spreads scrapes (and Pitwall its probes). Runs until
SIGTERM; on exit prints (one JSON line) how many answers had ``probe_success`` 1, how many 0, and how many
checks took blackbox_exporter over 100 ms (its ``probe_duration_seconds``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import time
from urllib.parse import quote

import aiohttp


async def scrape(port: int, module: str, interval: float, urls: list[str]) -> dict[str, int]:
    counts = {"success": 0, "failure": 0, "error": 0, "over_100ms": 0}
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    base = f"http://127.0.0.1:{port}/probe?module={module}&target="
    start = time.monotonic()

    async def one(session: aiohttp.ClientSession, index: int, url: str) -> None:
        due = start + index / len(urls) * interval
        while not stop.is_set():
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            try:
                async with session.get(base + quote(url, safe="")) as response:
                    body = await response.text()
                counts["success" if "\nprobe_success 1" in body else "failure"] += 1
                duration = re.search(r"^probe_duration_seconds (\S+)$", body, re.M)
                if duration and float(duration.group(1)) > 0.1:
                    counts["over_100ms"] += 1
            except aiohttp.ClientError:
                counts["error"] += 1
            due += interval

    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(one(session, i, url)) for i, url in enumerate(urls)]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--module", required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--urls", required=True, help="a file with one target URL per line")
    args = parser.parse_args()
    with open(args.urls) as f:
        urls = [line.strip() for line in f if line.strip()]
    print(json.dumps(asyncio.run(scrape(args.port, args.module, args.interval, urls))), flush=True)


if __name__ == "__main__":
    main()
