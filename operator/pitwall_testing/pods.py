"""Answer for kwok pods: bind a real HTTP app on each Ready pod's loopback twin address.

kwok pods run no process. The local control plane hands out pod IPs in 10.244.0.0/16 and
Pitwall, out of the cluster, rewrites them to 127.244.0.0/16 (``POD_ADDRESS_REWRITE``); this
binds an aiohttp app at that twin address and the container port of every Ready pod that
matches a label selector, and unbinds it when the pod goes away. So a probe on an ApiProduct
travels the real chain: Deployment -> Ready pods -> EndpointSlice -> HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from aiohttp import web

from pitwall.kube import Kube
from pitwall.runtime import parse_rewrite, rewrite_address

from .cluster import POD_ADDRESS_REWRITE

log = logging.getLogger("pitwall_testing.pods")


def _ready(pod: dict) -> bool:
    status = pod.get("status") or {}
    return bool(status.get("podIP")) and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )


class PodServers:
    """Keeps one server per Ready pod (matching ``selector``) until stopped."""

    def __init__(
        self,
        kubeconfig: str,
        app_factory: Callable[[dict], web.Application],
        *,
        selector: str = "app.kubernetes.io/managed-by=pitwall",
        namespace: str | None = None,
        rewrite: str = POD_ADDRESS_REWRITE,
        interval: float = 0.3,
    ):
        self.kubeconfig = kubeconfig
        self.app_factory = app_factory
        self.selector = selector
        self.namespace = namespace
        self.rules = parse_rewrite(rewrite)
        self.interval = interval
        self.runners: dict[tuple[str, int], web.AppRunner] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def bound(self) -> list[tuple[str, int]]:
        return sorted(self.runners)

    async def sync(self, kube: Kube) -> None:
        pods = await kube.list("Pod", self.namespace, label_selector=self.selector)
        wanted: dict[tuple[str, int], dict] = {}
        for pod in pods:
            if not _ready(pod):
                continue
            address = rewrite_address(pod["status"]["podIP"], self.rules)
            for container in pod["spec"].get("containers", []):
                for port in container.get("ports") or []:
                    wanted[(address, int(port["containerPort"]))] = pod
        for key in set(self.runners) - set(wanted):
            await self.runners.pop(key).cleanup()
        for key, pod in wanted.items():
            if key in self.runners:
                continue
            runner = web.AppRunner(self.app_factory(pod), access_log=None)
            await runner.setup()
            try:
                await web.TCPSite(runner, key[0], key[1]).start()
            except OSError as exc:
                log.warning("cannot bind %s:%s for pod %s: %s", key[0], key[1], pod["metadata"]["name"], exc)
                await runner.cleanup()
                continue
            self.runners[key] = runner

    async def run(self) -> None:
        async with Kube.from_env(self.kubeconfig) as kube:
            try:
                while not self._stop.is_set():
                    try:
                        await self.sync(kube)
                    except Exception as exc:  # the cluster may be restarting; keep going
                        log.warning("pod sync failed: %s", exc)
                    await asyncio.sleep(self.interval)
            finally:
                for runner in self.runners.values():
                    await runner.cleanup()
                self.runners.clear()

    # -- for synchronous callers (pytest) -------------------------------------------------------
    def start_thread(self) -> PodServers:
        self.error: Exception | None = None

        def target() -> None:
            try:
                asyncio.run(self.run())
            except Exception as exc:  # surfaced through ``error`` for the test that started it
                self.error = exc
                log.exception("pod servers stopped")

        self._thread = threading.Thread(target=target, daemon=True, name="pod-servers")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)
