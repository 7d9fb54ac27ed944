"""The status page servers: a public app and an internal app, on two ports.

Both read the operator's watch caches (``rt.stores``) and nothing else: a page view costs no
API call, so a flood of visitors during an outage cannot load the API server. Models are
built at most once a second per view and environment and shared by every request in that
second (HTML and JSON alike, so the two always agree).

Public (``settings.statuspage_port``, default 8081): ``/`` (HTML), ``/api/v1/status``,
``/api/v1/products/{name}``, ``/api/v1/incidents`` (90 days), ``/feed.atom`` (the same
incidents), ``/badge/{name}.svg``, ``/healthz``. ``?env=live|sandbox`` filters
``/`` and ``/api/v1/status``. Internal (``settings.internal_port``, default 8082): ``/`` and
``/api/v1/internal``; when ``settings.internal_token`` is set every path but ``/healthz`` needs
``Authorization: Bearer <token>`` or ``?token=<token>``. The internal view names backends,
hosts, consumers' e-mail addresses and correlation ids of every namespace, so it is never
served on the public port, and without a token it listens on 127.0.0.1 only (reachable with
``kubectl port-forward``, not from other pods): secure by default.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from . import internal, model
from .badge import badge
from .feed import atom
from .page import HEADERS
from .relations import Snapshot
from .render import render_public
from .render_internal import render_internal

log = logging.getLogger("pitwall.statuspage")

CACHE_SECONDS = 1.0
LOCAL_ONLY = "127.0.0.1"
DEFAULT_REFRESH = 15


class StatusPage:
    """``rt.statuspage``: started and stopped with the operator's other services."""

    def __init__(
        self,
        rt,
        *,
        refresh: int | None = None,
        title: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        self.rt = rt
        settings = rt.settings
        self.host = settings.statuspage_host
        self.public_port = settings.statuspage_port
        self.internal_port = settings.internal_port
        self.token = settings.internal_token
        self.refresh = max(1, int(refresh or os.environ.get("PITWALL_STATUSPAGE_REFRESH") or DEFAULT_REFRESH))
        self.title = title or os.environ.get("PITWALL_STATUSPAGE_TITLE") or "API status"
        self.clock = clock or (lambda: datetime.now(UTC))
        self.runners: dict[str, web.AppRunner] = {}
        self._cache: dict[tuple, tuple[float, object]] = {}

    # -- models ----------------------------------------------------------------------------
    def _cached(self, ident: tuple, build: Callable[[Snapshot, datetime], object]):
        now = time.monotonic()
        hit = self._cache.get(ident)
        if hit and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        value = build(Snapshot.from_stores(self.rt.stores), self.clock())
        self._cache[ident] = (now, value)
        return value

    def public_model(self, env: str | None = None) -> dict:
        return self._cached(("public", env), lambda snap, now: model.public_status(snap, now, env))

    def internal_model(self) -> dict:
        return self._cached(("internal",), internal.internal_status)

    # -- apps --------------------------------------------------------------------------------
    def public_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/api/v1/status", self._status)
        app.router.add_get("/api/v1/products/{name}", self._product)
        app.router.add_get("/badge/{name}.svg", self._badge)
        app.router.add_get("/api/v1/incidents", self._incidents)
        app.router.add_get("/feed.atom", self._feed)
        app.router.add_get("/healthz", _healthz)
        return app

    def internal_app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self._internal_index)
        app.router.add_get("/api/v1/internal", self._internal_json)
        app.router.add_get("/healthz", _healthz)
        return app

    @property
    def internal_host(self) -> str:
        """Where the internal view listens: never beyond this host without a token."""
        return self.host if self.token else LOCAL_ONLY

    async def start(self) -> None:
        for name, host, port, factory in (
            ("public", self.host, self.public_port, self.public_app),
            ("internal", self.internal_host, self.internal_port, self.internal_app),
        ):
            if not port:
                continue
            runner = web.AppRunner(factory(), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, host, port).start()
            self.runners[name] = runner
            log.info("%s status page on http://%s:%s/", name, host, port)
        if self.internal_port and not self.token:
            log.warning(
                "internal status view on port %s listens on %s only: it has no token "
                "(PITWALL_INTERNAL_TOKEN); use kubectl port-forward, or set a token to serve it further",
                self.internal_port,
                LOCAL_ONLY,
            )

    async def stop(self) -> None:
        for runner in self.runners.values():
            await runner.cleanup()
        self.runners.clear()

    # -- public handlers ---------------------------------------------------------------------
    def _env(self, request: web.Request) -> str | None:
        env = request.query.get("env") or None
        if env is not None and env not in model.ENVIRONMENTS:
            raise web.HTTPBadRequest(text=f"env must be one of {', '.join(model.ENVIRONMENTS)}")
        return env

    async def _index(self, request: web.Request) -> web.Response:
        body = render_public(self.public_model(self._env(request)), title=self.title, refresh=self.refresh)
        return web.Response(text=body, content_type="text/html", headers=HEADERS)

    async def _status(self, request: web.Request) -> web.Response:
        return _json(self.public_model(self._env(request)))

    async def _product(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        found = model.select_product(self.public_model(), name)  # names from the URL never key the cache
        if found is None:
            return _json({"error": f"no public API product {name!r}"}, status=404)
        return _json(found)

    async def _incidents(self, request: web.Request) -> web.Response:
        page = self.public_model(self._env(request))
        return _json({"generatedAt": page["generatedAt"], "incidents": page.get("history") or []})

    async def _feed(self, request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        body = atom(self.public_model(), title=self.title, base_url=base)
        return web.Response(
            text=body,
            content_type="application/atom+xml",
            headers={
                "Cache-Control": f"max-age={self.refresh}",
                "X-Content-Type-Options": "nosniff",
                "Access-Control-Allow-Origin": "*",
            },
        )

    async def _badge(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        product = next((p for p in self.public_model()["products"] if p["id"] == name), None)
        if product is None:
            body, status = badge("api", "unknown", "not found"), 404
        else:
            body, status = badge(product["displayName"], product["state"]), 200
        return web.Response(
            text=body,
            status=status,
            content_type="image/svg+xml",
            headers={
                "Cache-Control": f"max-age={self.refresh}",
                "X-Content-Type-Options": "nosniff",
                "Access-Control-Allow-Origin": "*",
            },
        )

    # -- internal ----------------------------------------------------------------------------
    @web.middleware
    async def _auth(self, request: web.Request, handler):
        if self.token and request.path != "/healthz":
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not presented:
                presented = request.query.get("token", "")
            if not hmac.compare_digest(presented.encode(), self.token.encode()):
                raise web.HTTPUnauthorized(
                    text="internal view: a token is required "
                    "(Authorization: Bearer <token> or ?token=<token>)",
                    headers={"WWW-Authenticate": 'Bearer realm="pitwall"'},
                )
        return await handler(request)

    async def _internal_index(self, _request: web.Request) -> web.Response:
        body = render_internal(self.internal_model(), title=self.title, refresh=self.refresh)
        return web.Response(text=body, content_type="text/html", headers=HEADERS)

    async def _internal_json(self, _request: web.Request) -> web.Response:
        return _json(self.internal_model(), cors=False)


def _json(data, status: int = 200, cors: bool = True) -> web.Response:
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if cors:
        headers["Access-Control-Allow-Origin"] = "*"  # public data, readable by any developer portal
    return web.json_response(data, status=status, headers=headers)


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
