"""The maintenance page: a tiny server, and the Kubernetes pieces that put it in front of a product.

While a window is active, each affected product version's Service selects the pods of a small
Deployment of the Pitwall image running ``pitwall maintenance-page`` instead of the product's
own pods (which keep running untouched). Switching is one Service write each way, because the
two selectors differ only in ``pitwall.dev/role``.

The server answers every path with ``503`` and ``Retry-After``: JSON for API clients, a small
accessible HTML page for browsers (chosen by ``Accept``). ``/healthz`` answers 200 so the pods
become Ready before the Service is switched to them. It is configured from environment
variables, so the Deployment needs nothing but env:

    PITWALL_MAINTENANCE_TITLE, PITWALL_MAINTENANCE_MESSAGE,
    PITWALL_MAINTENANCE_RETRY_AFTER (seconds or a duration, default 30m),
    PITWALL_MAINTENANCE_UNTIL (RFC 3339, optional), PITWALL_MAINTENANCE_HOST (default: all
    interfaces), PITWALL_MAINTENANCE_PORT (default 8080).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from .. import durations
from ..api.apiproduct import MaintenancePage, Version
from ..api.base import default_of
from ..errors import InvalidSpec
from ..templating import environment
from ..vocabulary import (
    LABEL_PRODUCT,
    LABEL_ROLE,
    LABEL_VERSION,
    LABEL_WINDOW,
    MANAGED_BY,
    ROLE_MAINTENANCE,
    owner_reference,
    workload_name,
)

log = logging.getLogger("pitwall.maintenance.page")


DEFAULT_TITLE = "Down for maintenance"
DEFAULT_MESSAGE = "This API is undergoing planned maintenance. Please try again later."
DEFAULT_RETRY_AFTER = int(durations.parse(default_of(MaintenancePage, "retry_after")))  # 30m
DEFAULT_PORT = default_of(Version, "port")
ENV = "PITWALL_MAINTENANCE_"


@dataclass(frozen=True)
class PageConfig:
    title: str = DEFAULT_TITLE
    message: str = DEFAULT_MESSAGE
    retry_after: int = DEFAULT_RETRY_AFTER  # seconds
    until: datetime | None = None  # when the window is planned to end

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> PageConfig:
        """Read the PITWALL_MAINTENANCE_* variables; raises ValueError naming a bad one."""
        retry = environ.get(ENV + "RETRY_AFTER", "").strip()
        until = environ.get(ENV + "UNTIL", "").strip()
        try:
            seconds = int(retry) if retry.isdigit() else int(durations.parse(retry, DEFAULT_RETRY_AFTER))
        except ValueError as exc:
            raise ValueError(f"{ENV}RETRY_AFTER: {exc}") from exc
        try:
            end = durations.parse_time(until) if until else None
        except ValueError as exc:
            raise ValueError(f"{ENV}UNTIL: {until!r} is not an RFC 3339 time") from exc
        return cls(
            title=environ.get(ENV + "TITLE") or DEFAULT_TITLE,
            message=environ.get(ENV + "MESSAGE") or DEFAULT_MESSAGE,
            retry_after=max(1, seconds),
            until=end,
        )

    def retry_after_at(self, now: datetime) -> int:
        """Seconds to wait: the configured value, but no later than the planned end, so clients
        come back as soon as the window is over."""
        if self.until and self.until > now:
            return max(1, min(self.retry_after, math.ceil((self.until - now).total_seconds())))
        return self.retry_after


def wants_html(accept: str | None) -> bool:
    """True when the client prefers HTML to JSON (browsers). ``*/*``, no Accept or a JSON
    preference get JSON: most callers of an API are programs."""
    best = {"html": 0.0, "json": 0.0}
    for part in (accept or "").split(","):
        media, *params = [piece.strip() for piece in part.split(";")]
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        kind = (
            "html"
            if media in ("text/html", "application/xhtml+xml")
            else "json"
            if media == "application/json" or media.endswith("+json")
            else None
        )
        if kind:
            best[kind] = max(best[kind], quality)
    return best["html"] > 0 and best["html"] >= best["json"]


_TEMPLATES = environment(__package__ or "pitwall.maintenance")


def render_page(config: PageConfig) -> str:
    """The HTML answer (templates/page.html): title, message and, when known, the planned end."""
    until = config.until.astimezone(UTC) if config.until else None
    return _TEMPLATES.get_template("page.html").render(
        title=config.title,
        message=config.message,
        until=durations.rfc3339(until) if until else None,
        until_text=f"{until:%Y-%m-%d %H:%M} UTC" if until else "",
    )


def make_app(config: PageConfig) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def maintenance(request: web.Request) -> web.Response:
        headers = {
            "Retry-After": str(config.retry_after_at(durations.now())),
            "Cache-Control": "no-store",
            "Vary": "Accept",
        }
        until = durations.rfc3339(config.until) if config.until else None
        if wants_html(request.headers.get("Accept")):
            return web.Response(
                status=503, text=render_page(config), content_type="text/html", headers=headers
            )
        return web.json_response(
            {
                "status": "maintenance",
                "title": config.title,
                "message": config.message,
                "until": until,
                "retryAfter": int(headers["Retry-After"]),
            },
            status=503,
            headers=headers,
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/{tail:.*}", maintenance)
    return app


async def start_page(host: str | None, port: int, config: PageConfig) -> web.AppRunner:
    """Serve the page until ``await runner.cleanup()``; with port 0 the bound port is
    ``runner.addresses[0][1]``. ``host`` None listens on all interfaces."""
    runner = web.AppRunner(make_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def main(argv: list[str] | None = None) -> int:
    """``pitwall maintenance-page``: serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="pitwall maintenance-page", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host",
        default=os.environ.get(ENV + "HOST") or None,
        help="address to listen on (default: all interfaces)",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get(ENV + "PORT") or DEFAULT_PORT))
    args = parser.parse_args(argv)
    try:
        config = PageConfig.from_env()
    except ValueError as exc:
        print(f"pitwall maintenance-page: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(args.host, args.port, config))
    return 0


async def _serve(host: str | None, port: int, config: PageConfig) -> None:
    runner = await start_page(host, port, config)
    log.info("serving the maintenance page on %s", ", ".join(map(str, runner.addresses)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def page_labels(product: str, version: str) -> dict[str, str]:
    """Labels (and Deployment selector) of a product version's maintenance page pods."""
    return {LABEL_PRODUCT: product, LABEL_VERSION: version, LABEL_ROLE: ROLE_MAINTENANCE}


def page_name(product: str, version: str) -> str:
    return f"{workload_name(product, version)}-maintenance"


def page_deployment(
    product: dict, version: str, window: dict, image: str, namespace: str, *, until: datetime | None = None
) -> dict:
    """The maintenance page Deployment for one product version, ready for server-side apply.

    It listens on the version's own port (named ``http`` like the product's), so the Service
    needs no port change, only the selector switch. Owned (not controlled) by the window, so it
    is garbage-collected with the last window using it. ``until`` is the occurrence's end.
    """
    name = product["metadata"]["name"]
    spec = product.get("spec") or {}
    page = spec.get("maintenancePage") or {}
    try:
        retry_after = int(durations.parse(page.get("retryAfter"), DEFAULT_RETRY_AFTER))
    except ValueError as exc:
        raise InvalidSpec("InvalidMaintenancePage", f"maintenancePage.retryAfter: {exc}") from exc
    port = next(
        (v.get("port", DEFAULT_PORT) for v in spec.get("versions") or [] if v.get("name") == version),
        DEFAULT_PORT,
    )
    env = {
        "TITLE": page.get("title") or f"{spec.get('displayName') or name} is down for maintenance",
        "MESSAGE": page.get("message") or DEFAULT_MESSAGE,
        "RETRY_AFTER": str(max(1, retry_after)),
        "PORT": str(port),
    }
    if until:
        env["UNTIL"] = durations.rfc3339(until)
    labels = {**page_labels(name, version), **MANAGED_BY, LABEL_WINDOW: window["metadata"]["name"]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": page_name(name, version),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(window, controller=False)],
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": page_labels(name, version)},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "maintenance-page",
                            "image": image,
                            "command": ["pitwall", "maintenance-page"],
                            "env": [{"name": ENV + key, "value": value} for key, value in env.items()],
                            "ports": [{"name": "http", "containerPort": port}],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 2,
                            },
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "48Mi"},
                                "limits": {"memory": "96Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }
