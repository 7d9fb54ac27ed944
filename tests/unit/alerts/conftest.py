"""Real local receivers for delivery tests: an HTTP server and an SMTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult

from pitwall import egress


@dataclass
class Seen:
    method: str
    path: str
    query: dict
    headers: dict
    body: object


@dataclass
class HttpReceiver:
    """Answers with the scripted responses in order, then ``default``; records every request."""

    base: str = ""
    script: list[tuple[int, dict]] = field(default_factory=list)
    default: tuple[int, dict] = (202, {})
    requests: list[Seen] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.requests.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        status, headers = self.script.pop(0) if self.script else self.default
        # Errors echo the request path, as some services do: delivery must mask it.
        return web.Response(
            status=status, headers=headers, text="ok" if status < 400 else f"no such hook {request.path_qs}"
        )


@pytest.fixture
async def http_receiver():
    receiver = HttpReceiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    receiver.base = f"http://{host}:{port}"
    yield receiver
    await runner.cleanup()


@pytest.fixture
async def client():
    """The receivers' client as the operator builds it, under the default egress policy."""
    async with egress.client(egress.Policy()) as c:
        yield c


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SmtpReceiver:
    port: int = 0
    messages: list = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    rcpt_replies: list[str] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    data_calls: int = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd hook
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        self.data_calls += 1
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append(envelope)
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        ok = (auth_data.login, auth_data.password) == (b"pitwall", b"p@ss:word")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture
async def smtp_receiver():
    receiver = SmtpReceiver()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            receiver, hostname="mail.test", auth_require_tls=False, authenticator=receiver.authenticate
        ),
        "127.0.0.1",
        0,
    )
    receiver.port = server.sockets[0].getsockname()[1]
    yield receiver
    server.close()
    await server.wait_closed()


class FakeClock:
    """Stands in for sleeping: records the delays asked for and moves time on instantly."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
