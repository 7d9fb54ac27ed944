"""The demo API (pitwall.demo) as a real server on 127.0.0.1, in a background thread."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request

from pitwall.demo import start_demo


class DemoAPI:
    def __init__(self, port: int = 0):
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner = None

    def start(self) -> DemoAPI:
        self._thread.start()
        self._runner = asyncio.run_coroutine_threadsafe(
            start_demo("127.0.0.1", self.port), self._loop
        ).result(10)
        self.port = self._runner.addresses[0][1]
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self, action: str, **query) -> dict:
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        request = urllib.request.Request(f"{self.url}/_admin/{action}?{qs}", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def requests(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/_admin/requests", timeout=5) as response:
            return json.loads(response.read())

    def __enter__(self) -> DemoAPI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
