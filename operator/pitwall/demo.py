"""A small marketplace API to point probes at, in ``make dev`` and in tests.

It answers the calls the example probes make (an ``isUp`` check and a three-step OAuth flow:
token, profile, balance) and can be told to fail, so outages are one ``curl`` away::

    python -m pitwall.demo --host 127.0.0.1 --port 18080
    curl -X POST 'localhost:18080/_admin/down?what=token&status=401'   # or &hang=true
    curl -X POST 'localhost:18080/_admin/up'                           # everything back up

``what`` is ``isUp``, ``token``, ``accounts`` or ``backend:<name>``. Every request's
``X-Correlation-ID`` is logged (as an API's own logs would be) and the last ones are listed at
``GET /_admin/requests``, so a probe failure's id can be found on the API side.

``GET /metrics`` counts its requests by consumer (``X-Consumer``), route template and status
code (:mod:`pitwall.traffic.exporter`), and :func:`generate_load` plays its consumers: a steady
mix of calls with a few client errors (a wrong password, an unknown account) and a rare server
error (account ``acc-13``, whose core-banking lookup fails), so a Prometheus scraping it has
real traffic to show (``make dev``).

It lives in the runtime package (unlike ``pitwall_testing``) because the image serves it: the
kind end-to-end runs ``pitwall demo-api`` from the operator image as the probed API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from aiohttp import ClientSession, ClientTimeout, web

from .traffic.exporter import instrument

log = logging.getLogger("pitwall.demo")

USERNAME, PASSWORD = "homer", "d0nut"
TOKEN_TTL = 300
ACCOUNTS = {"acc-42": {"id": "acc-42", "name": "Homer", "currency": "ZAR", "amount": 1234.56}}
FAILING_ACCOUNT = "acc-13"  # its balance lookup answers 503: the load's rare server error
HANG = 0  # an outage "status" meaning: never answer
SERVICES = ("isUp", "token", "accounts")


@dataclass
class DemoState:
    down: dict[str, int] = field(default_factory=dict)  # what -> status to answer (or HANG)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    requests: deque = field(default_factory=lambda: deque(maxlen=1000))


STATE = web.AppKey("state", DemoState)


def make_app(product: str = "demo", version: str = "v1") -> web.Application:
    """The demo API; its ``/metrics`` series carry ``product`` and ``version`` (a pod of an
    ApiProduct version serves it as that product and version)."""
    app = web.Application(middlewares=[_record])
    app[STATE] = DemoState()
    app.add_routes(
        [
            web.get("/isUp", is_up),
            web.post("/oauth/token", token),
            web.get("/accounts/me", me),
            web.get("/accounts/{id}/balance", balance),
            web.get("/backends/{name}/health", backend_health),
            web.post("/_admin/down", admin_down),
            web.post("/_admin/up", admin_up),
            web.get("/_admin/requests", admin_requests),
        ]
    )
    # GET /metrics: requests by consumer (X-Consumer), route template and status code, durations.
    instrument(app, product, version)
    return app


async def start_demo(host: str = "127.0.0.1", port: int = 0) -> web.AppRunner:
    """Serve the demo API; the bound port is ``runner.addresses[0][1]``. Stop with ``runner.cleanup()``."""
    # A client that gives up on a hanging endpoint cancels its handler, and shutdown does not
    # wait for hung handlers.
    runner = web.AppRunner(make_app(), handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


@web.middleware
async def _record(request: web.Request, handler) -> web.StreamResponse:
    correlation_id = request.headers.get("X-Correlation-ID", "")
    request.app[STATE].requests.append(
        {
            "method": request.method,
            "path": request.path,
            "correlationId": correlation_id,
            "traceparent": request.headers.get("traceparent", ""),
        }
    )
    response = await handler(request)
    log.info(
        "%s %s -> %s correlation_id=%s", request.method, request.path, response.status, correlation_id or "-"
    )
    return response


async def _outage(request: web.Request, what: str) -> web.Response | None:
    status = request.app[STATE].down.get(what)
    if status is None:
        return None
    if status == HANG:
        await asyncio.Event().wait()  # until the client gives up
    if what == "token" and status == 401:
        return web.json_response({"error": "invalid_grant"}, status=401)
    return web.json_response({"error": f"{what} is down (simulated)"}, status=status)


async def is_up(request: web.Request) -> web.Response:
    return await _outage(request, "isUp") or web.json_response({"status": "up"})


async def token(request: web.Request) -> web.Response:
    if outage := await _outage(request, "token"):
        return outage
    form = await request.post()
    if (form.get("grant_type"), form.get("username"), form.get("password")) != (
        "password",
        USERNAME,
        PASSWORD,
    ):
        return web.json_response({"error": "invalid_grant"}, status=401)
    state = request.app[STATE]
    now = time.monotonic()
    state.tokens = {t: exp for t, exp in state.tokens.items() if exp > now}  # keep the map bounded
    issued = secrets.token_urlsafe(24)
    state.tokens[issued] = now + TOKEN_TTL
    return web.json_response({"access_token": issued, "token_type": "Bearer", "expires_in": TOKEN_TTL})


async def me(request: web.Request) -> web.Response:
    if refused := await _outage(request, "accounts") or _unauthorized(request):
        return refused
    account = ACCOUNTS["acc-42"]
    return web.json_response({"id": account["id"], "name": account["name"]})


async def balance(request: web.Request) -> web.Response:
    if refused := await _outage(request, "accounts") or _unauthorized(request):
        return refused
    if request.match_info["id"] == FAILING_ACCOUNT:
        return web.json_response({"error": "core banking did not answer"}, status=503)
    account = ACCOUNTS.get(request.match_info["id"])
    if account is None:
        return web.json_response({"error": "no such account"}, status=404)
    return web.json_response({"currency": account["currency"], "amount": account["amount"]})


async def backend_health(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return await _outage(request, f"backend:{name}") or web.json_response({"status": "up", "backend": name})


async def admin_down(request: web.Request) -> web.Response:
    what = _what(request)
    hang = request.query.get("hang", "").lower() in ("1", "true", "yes")
    try:
        status = HANG if hang else int(request.query.get("status", "503"))
    except ValueError:
        raise web.HTTPBadRequest(text="status must be an HTTP status code") from None
    if not hang and not 400 <= status <= 599:
        raise web.HTTPBadRequest(text="status must be 400..599")
    request.app[STATE].down[what] = status
    return web.json_response({"down": request.app[STATE].down})


async def admin_up(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if "what" in request.query:
        state.down.pop(_what(request), None)
    else:
        state.down.clear()
    return web.json_response({"down": state.down})


async def admin_requests(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[STATE].requests))


def _what(request: web.Request) -> str:
    what = request.query.get("what", "")
    if what not in SERVICES and not (what.startswith("backend:") and len(what) > len("backend:")):
        raise web.HTTPBadRequest(text=f"what must be one of {', '.join(SERVICES)} or backend:<name>")
    return what


def _unauthorized(request: web.Request) -> web.Response | None:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    expiry = request.app[STATE].tokens.get(presented)
    if scheme.lower() == "bearer" and expiry is not None and expiry > time.monotonic():
        return None
    return web.json_response(
        {"error": "invalid_token"}, status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


# -- consumers calling it: the demo's real traffic ----------------------------------------------------
# The examples' consumers (examples/30-apiproducts.yaml), as an API gateway names them in X-Consumer.
CONSUMERS = ("acme-fintech", "globex-wallet", "umbrella-retail", "initech-insurance")


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    consumer: str
    form: dict | None = None
    authorized: bool = True  # sends the target's current token


# The failing calls of every 100 (by n % 100), early and spread, so they show within a minute.
LOAD_ERRORS = {7: "server", 17: "password", 37: "account", 57: "token", 77: "password", 97: "account"}


def load_call(n: int) -> Call:
    """The ``n``-th call a target gets from :func:`generate_load` (pure, so it is unit tested).

    Of every 10: a token request, 3 ``isUp``, 2 ``/accounts/me`` and 4 balances; of every 100,
    six of these fail instead (:data:`LOAD_ERRORS`): a wrong password twice (401), a call
    without a token (401), an unknown account twice (404) and ``acc-13`` once (503). So 5%
    client errors and 1% server errors: visible in ``pitwall traffic``, below the examples'
    traffic alert (2% failed) and war room thresholds.
    """
    consumer = CONSUMERS[(n // 7) % len(CONSUMERS)]
    error, step = LOAD_ERRORS.get(n % 100), n % 10
    if error == "server":
        return Call("GET", f"/accounts/{FAILING_ACCOUNT}/balance", consumer)
    if error == "account":
        return Call("GET", "/accounts/acc-7/balance", consumer)
    if error == "token":
        return Call("GET", "/accounts/me", consumer, authorized=False)
    if step == 0 or error == "password":
        password = "wrong" if error else PASSWORD
        form = {"grant_type": "password", "username": USERNAME, "password": password}
        return Call("POST", "/oauth/token", consumer, form)
    if step <= 3:
        return Call("GET", "/isUp", consumer)
    if step <= 5:
        return Call("GET", "/accounts/me", consumer)
    return Call("GET", "/accounts/acc-42/balance", consumer)


async def generate_load(targets, rps: float, stop: asyncio.Event) -> None:
    """Call every base URL ``targets()`` returns ``rps`` times a second until ``stop`` is set.

    ``targets`` is asked every round (pods come and go). Each target keeps the token its last
    good token request got; a call that fails or times out is only a lost call.
    """
    tokens: dict[str, str] = {}
    counts: dict[str, int] = {}

    async def one(http: ClientSession, base: str) -> None:
        n = counts.get(base, 0)
        counts[base] = n + 1
        call = load_call(n)
        headers = {"X-Consumer": call.consumer}
        if call.authorized and base in tokens and call.form is None:
            headers["Authorization"] = f"Bearer {tokens[base]}"
        try:
            async with http.request(call.method, base + call.path, data=call.form, headers=headers) as answer:
                body = await answer.json(content_type=None) if answer.status == 200 else None
            if call.form is not None and isinstance(body, dict) and "access_token" in body:
                tokens[base] = body["access_token"]
        except Exception:  # noqa: BLE001 - a lost call is only a lost call
            pass

    interval = 1.0 / rps if rps > 0 else 1.0
    async with ClientSession(timeout=ClientTimeout(total=5)) as http:
        while not stop.is_set():
            started = time.monotonic()
            if rps > 0:
                await asyncio.gather(*(one(http, base) for base in targets()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.monotonic() - started)))


# -- the examples, pointed at this demo ---------------------------------------------------------------
# The addresses examples/ is written with (the defaults of `make dev`).
EXAMPLE_ADDRESSES = {"demo": "127.0.0.1:18080", "receiver": "127.0.0.1:18081", "smtp": "127.0.0.1:2525"}


def example_manifests(directory, **addresses: str) -> str:
    """Every ``*.yaml`` of ``directory`` as one stream, with the demo, receiver and SMTP
    addresses replaced by ``addresses`` (``demo="127.0.0.1:41234"``): ``make dev`` and the tests
    take free ports, so the examples cannot hard-wire theirs."""
    from pathlib import Path

    unknown = set(addresses) - set(EXAMPLE_ADDRESSES)
    if unknown:
        raise ValueError(f"unknown example addresses: {', '.join(sorted(unknown))}")
    texts = []
    for path in sorted(Path(directory).glob("*.yaml")):
        text = path.read_text()
        for what, address in addresses.items():
            text = text.replace(EXAMPLE_ADDRESSES[what], address)
        texts.append(text)
    return "\n---\n".join(texts)


# -- what the demo's stand-in receivers print -----------------------------------------------------
def describe_notification(body: object, limit: int = 12) -> list[str]:
    """What a person would read in a Teams card, a Slack message, a PagerDuty event or a webhook.

    ``make dev``'s receiver prints these lines instead of a raw payload (or a blank line): the
    title first, then the facts, at most ``limit`` lines. Pure, so it is unit tested.
    """
    if not isinstance(body, dict):
        return [str(body)[:200]]
    lines: list[str] = []
    if body.get("type") == "message" and body.get("attachments"):  # Teams Workflows
        for attachment in body["attachments"]:
            _card_lines((attachment.get("content") or {}).get("body") or [], lines)
    elif "subject" in body:  # notices, digests
        lines.append(str(body["subject"]))
        lines.extend("  " + line for line in str(body.get("text", "")).splitlines() if line.strip())
    elif "blocks" in body or "text" in body:  # Slack
        lines.append(str(body.get("text", "")))
        for block in body.get("blocks") or []:
            text = (block.get("text") or {}).get("text") if isinstance(block.get("text"), dict) else None
            if block.get("type") == "section" and text:
                lines.extend("  " + line.replace("*", "") for line in text.splitlines() if line.strip())
    elif "event_action" in body:  # PagerDuty Events v2
        payload = body.get("payload") or {}
        lines.append(
            f"PagerDuty {body['event_action']} {body.get('dedup_key', '')}: "
            f"{payload.get('summary', '')}".rstrip(": ")
        )
        lines.extend(f"  {k}: {v}" for k, v in (payload.get("custom_details") or {}).items())
    elif body.get("version") == "4" and "alerts" in body:  # Alertmanager webhook
        lines.append(
            f"{str(body.get('status', '')).upper()} {len(body['alerts'])} alert(s) "
            f"of {body.get('groupLabels', {}).get('alertname', '?')}"
        )
        for alert in body["alerts"]:
            annotations = alert.get("annotations") or {}
            lines.append(
                f"  {annotations.get('summary', '')}: {annotations.get('description', '')}".rstrip(": ")
            )
            if annotations.get("acknowledge"):
                lines.append(f"    acknowledge: {annotations['acknowledge']}")
    else:
        lines.append(str(body.get("summary") or body.get("message") or body)[:200])
    lines = [line for line in lines if line.strip()] or ["(empty message)"]
    return lines[:limit] + ([f"  ... {len(lines) - limit} more lines"] if len(lines) > limit else [])


def _card_lines(elements: list, lines: list[str], depth: int = 0) -> None:
    """Adaptive Card elements -> text lines (TextBlocks, FactSets, Containers)."""
    for element in elements:
        kind = element.get("type")
        if kind == "TextBlock" and element.get("text"):
            lines.append("  " * depth + str(element["text"]))
        elif kind == "FactSet":
            lines.extend(
                "  " * (depth + 1) + f"{f.get('title')}: {f.get('value')}" for f in element.get("facts") or []
            )
        elif kind == "Container":
            _card_lines(element.get("items") or [], lines, depth)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pitwall.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument(
        "--load", type=float, default=0.0, metavar="RPS", help="play its consumers: RPS calls a second"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def serve() -> None:
        runner = await start_demo(args.host, args.port)
        base = f"http://{args.host}:{runner.addresses[0][1]}"
        log.info("demo API on %s", base)
        try:
            await generate_load(lambda: [base], args.load, asyncio.Event()) if args.load > 0 else None
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
