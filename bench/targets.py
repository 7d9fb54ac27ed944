"""HTTP targets for the probe benchmark, in their own process so the operator's CPU is measured alone.

    python -m bench.targets --servers 4

serves plain aiohttp apps on 127.0.0.1 (free ports), prints ``{"ports": [...]}`` as one line
on stdout, and runs until SIGTERM. Each app answers ``GET /isUp`` with 200 ``{"status": "up"}``
(like pitwall.demo's isUp) and ``GET /_count`` with how many /isUp requests it has answered,
so a checker's work can be counted on the target side, the same way for Pitwall and Gatus.

A URL may carry its probe's tag (``/isUp?p=00042``, :meth:`Targets.url` with ``tagged=True``,
the scale benchmark): ``GET /_mark?t=<CLOCK_MONOTONIC seconds>`` starts recording, per tag,
the first request answered after that moment, and ``GET /_first`` returns them (one JSON
object for all servers of the process). That is how the takeover gap is seen from the
target's side: when each probe of a killed replica was checked again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request

from aiohttp import web

from .common import ROOT, stop_group

UP = web.json_response({"status": "up"}).body


# Shared by every server of the process: first answer per tag after the mark.
_FIRST: dict[str, float] = {}
_MARK = [float("inf")]


def make_app() -> web.Application:
    app = web.Application()
    count = [0]

    async def is_up(request: web.Request) -> web.Response:
        count[0] += 1
        tag = request.query_string
        if tag:
            now = time.monotonic()
            if now > _MARK[0] and tag not in _FIRST:
                _FIRST[tag] = now
        return web.Response(body=UP, content_type="application/json")

    async def answered(request: web.Request) -> web.Response:
        return web.json_response({"count": count[0]})

    async def mark(request: web.Request) -> web.Response:
        _FIRST.clear()
        _MARK[0] = float(request.query["t"])
        return web.json_response({"mark": _MARK[0]})

    async def first(request: web.Request) -> web.Response:
        return web.json_response(_FIRST)

    app.add_routes(
        [
            web.get("/isUp", is_up),
            web.get("/_count", answered),
            web.get("/_mark", mark),
            web.get("/_first", first),
        ]
    )
    return app


async def serve(servers: int) -> None:
    runners, ports = [], []
    for _ in range(servers):
        runner = web.AppRunner(make_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        runners.append(runner)
        ports.append(runner.addresses[0][1])
    print(json.dumps({"ports": ports}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


def tag(index: int) -> str:
    return f"p={index:05d}"


class Targets:
    """The target process, seen from the benchmark: its URLs and how many checks it answered."""

    def __init__(self, servers: int):
        self.servers = servers
        self.proc: subprocess.Popen | None = None
        self.ports: list[int] = []

    def __enter__(self) -> Targets:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.targets", "--servers", str(self.servers)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            cwd=ROOT,
        )
        line = self.proc.stdout.readline()
        if not line:
            stop_group(self.proc)
            raise RuntimeError("target servers did not start")
        self.ports = json.loads(line)["ports"]
        return self

    def __exit__(self, *exc) -> None:
        stop_group(self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, index: int, tagged: bool = False) -> str:
        url = f"http://127.0.0.1:{self.ports[index % len(self.ports)]}/isUp"
        return f"{url}?{tag(index)}" if tagged else url

    def _get(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[0]}{path}", timeout=30) as response:
            return json.loads(response.read())

    def mark(self, moment: float) -> None:
        """Record from ``moment`` (``time.monotonic()``, the same clock in every process) the
        first answer per tagged probe."""
        self._get(f"/_mark?t={moment!r}")

    def first(self) -> dict[str, float]:
        """Tag -> when it was first answered after the mark."""
        return self._get("/_first")

    def answered(self) -> int:
        total = 0
        for port in self.ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_count", timeout=10) as response:
                total += json.loads(response.read())["count"]
        return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.targets", description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=4)
    asyncio.run(serve(parser.parse_args(argv).servers))


if __name__ == "__main__":
    main()
