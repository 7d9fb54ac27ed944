"""A lean HTTP/1.1 transport for probe checks: an asyncio protocol, llhttp's parser, keep-alive.

Why: a probe check is one small request on a kept-alive connection, thousands of times a
minute, and the operator must spend at most what Gatus and blackbox_exporter spend on one
(issue 18). Through httpx's default stack (httpcore, anyio, h11, all pure Python above the
socket) a plain check cost 0.7-1.1 CPU-ms in ``bench/probe_cpu.py``, two thirds of it in
httpcore's pool, h11 and anyio; this transport does the same request with one
``transport.write`` and a C parser, at 0.25-0.27 CPU-ms on the same machine (bench/results/
probes.md, 2026-11-29 18:10).
httpx's client stays on top: redirects, URL and header handling, the ``httpx.Response`` the
engine reads, and the exceptions it maps to reasons are unchanged, so every check runs on it
the same way.

Why httptools: it is llhttp (Node.js's parser, in C) for Python, small, MagicStack-maintained
and what uvicorn uses; the only alternative already installed, aiohttp's parser, is private API,
and h11 is the pure-Python parser this replaces. Why not aiohttp's whole client: a bare GET cost
0.052 CPU-ms there against 0.088 through httpx on this transport (same machine, 18:50), but
taking it would give the engine a second response type, exception family and redirect logic,
and the egress policy a second place to live (aiohttp's resolver is skipped for IP literals):
0.036 ms a check, ~2% of a core at 500 checks a second, is not worth two ways of sending one.

Egress: every connection is opened by ``egress.dial``, which resolves the name, judges every
address under the operator's one ``Policy`` and connects only to an address it judged; the name
or literal is judged again before each request (as ``GuardedTransport`` does), so a redirect
hop to a metadata address is refused before any packet. Proxies are not handled here:
``probes.client`` gives checks with a proxy the httpcore-based ``egress.client``.

What it guards like h11 does: header names and values are validated before sending (a value
with a line break is refused, never injected: "Illegal header value ..."), a response head is
capped at ``MAX_HEAD`` bytes, and body bytes are buffered at most ``HIGH_WATER`` before reading
pauses (the engine caps what it keeps). A connection goes back to the pool only after its
response was read to the end and both sides allow keep-alive; idle connections expire after
``KEEPALIVE`` seconds, and a peer's hang-up is seen by the protocol before a reuse.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httptools
import httpx

from . import egress

MAX_HEAD = 100 * 1024  # bytes of status line and headers (httpcore's h11 limit)
HIGH_WATER = 256 * 1024  # body bytes buffered before reading pauses
KEEPALIVE = 5.0  # seconds an idle connection is kept (httpx's default)
MAX_ALLOWED = 4096  # remembered name-only verdicts per transport
SWEEP = 1.0  # seconds between sweeps of expired idle connections

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")  # RFC 9110 field name (h11's rule)
_FIELD_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")  # h11's rule: no CR, LF, NUL
_DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one request at a time. Parser callbacks fill the response."""

    def __init__(self, origin: Origin):
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._error: Exception | None = None
        self._busy = False
        self._reset(head_only=False)

    def _reset(self, *, head_only: bool) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future | None = None
        self.head_only = head_only
        self.complete = False
        self.keep_alive = False  # both sides allow another request on this connection
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.received = 0
        self.headers_done = False
        self._waiter: asyncio.Future | None = None
        self._paused = False

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self._busy or self.complete:
            self._close()  # bytes nobody asked for: the connection cannot be trusted again
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            if not self.complete:  # a HEAD response's body, or bytes after the end: not ours
                self._fail(httpx.RemoteProtocolError(f"invalid HTTP response: {exc}"))
            else:
                self._close()
        if not self.headers_done:
            self.received += len(data)  # bytes of head so far (a read is at most 256 KiB)
            if self.received > MAX_HEAD:
                self._fail(httpx.RemoteProtocolError(f"response head larger than {MAX_HEAD // 1024} KiB"))
                return
        if self.buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        if self._busy and self.headers_done and not self.complete and not self._framed():
            self._on_done()  # a body delimited by the connection's end (no length, not chunked)
        self._close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._busy and not self.complete:
            if self.headers_done:
                error: Exception = httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            else:
                error = httpx.RemoteProtocolError("Server disconnected without sending a response.")
            if exc is not None:
                error = httpx.ReadError(str(exc) or type(exc).__name__)
            self._fail(error)

    # -- httptools callbacks ----------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if 100 <= self.status < 200:  # informational (100 Continue): the real response follows
            self.headers = []
            return
        self.headers_done = True
        if self.head is not None and not self.head.done():
            self.head.set_result(None)
        if self.head_only:
            self._on_done()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self.headers_done and not self.complete:
            self.keep_alive = self._parser.should_keep_alive()  # valid only inside this callback
            self._on_done()

    # -- for the transport ------------------------------------------------------------------------
    def start(self, data: bytes, head_only: bool) -> asyncio.Future:
        self._reset(head_only=head_only)
        self._busy = True
        self.head = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        return self.head

    def arrived(self) -> list[bytes] | None:
        """The whole body's chunks when all of it is here already (a small answer usually comes
        with its head), taken at once without a read loop; None when more is to come."""
        if not self.complete or self._error is not None or self._paused:
            return None
        chunks, self.chunks, self.buffered = self.chunks, [], 0
        return chunks

    async def chunks_of_body(self, read_timeout: float | None) -> AsyncIterator[bytes]:
        while True:
            if self.chunks:
                chunks, self.chunks, self.buffered = self.chunks, [], 0
                if self._paused and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                for chunk in chunks:
                    yield chunk
                continue
            if self._error is not None:
                raise self._error
            if self.complete:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            if read_timeout is None:
                await self._waiter
                continue
            try:
                async with asyncio.timeout(read_timeout):
                    await self._waiter
            except TimeoutError:
                raise httpx.ReadTimeout("timed out reading the response body") from None

    def reusable(self) -> bool:
        return (
            self.complete
            and not self.closed
            and not self.head_only
            and self._error is None
            and self.keep_alive
        )

    def release(self) -> None:
        self._busy = False

    def _framed(self) -> bool:
        return any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.headers
        ) or self.status in (204, 304)

    def _on_done(self) -> None:
        self.complete = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        if self.head is not None and not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved: the transport raises it, or it was cancelled
        self._wake()
        self._close()

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Body(httpx.AsyncByteStream):
    def __init__(self, owner: LeanTransport, connection: _Connection, read_timeout: float | None):
        self._owner = owner
        self._connection = connection
        self._read_timeout = read_timeout
        self._released = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._connection.chunks_of_body(self._read_timeout)  # no generator around it

    def arrived(self) -> list[bytes] | None:
        """The raw body when all of it has arrived (``_Connection.arrived``), else None: read it
        as a stream then. Probe checks take it this way (no async iteration per check)."""
        return self._connection.arrived()

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            self._owner._release(self._connection)


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over ``egress.dial``: the policy's client for probes without a proxy.

    ``policy=None`` dials without the egress policy: for the operator's own API server
    (``kube.Kube``), which the policy refuses to probes by design.
    """

    def __init__(
        self,
        policy: egress.Policy | None,
        *,
        verify: ssl.SSLContext | None = None,
        max_connections: int = 100,
        keepalive: float = KEEPALIVE,
    ):
        self.policy = policy
        self._ssl = verify or httpx.create_ssl_context(trust_env=False)
        self._keepalive = keepalive
        self._max = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[Origin, list[_Connection]] = {}
        # (host, port) the policy allowed by name: its name-only verdict depends on nothing else,
        # so it is not judged again on every request (an ipaddress parse and the rules: ~5% of
        # a check). Every new connection is still judged on its resolved addresses.
        self._allowed: set[tuple[str, int]] = set()
        self._open = 0
        self._closed = False
        self._next_sweep = 0.0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme}://'.")
        if self._closed:
            raise RuntimeError("the transport is closed")
        host, port = url.host, url.port or _DEFAULT_PORTS[scheme]
        if self.policy is not None and (host, port) not in self._allowed:
            self.policy.enforce(host, (), port)  # raises Denied; what it allows, it always allows
            if len(self._allowed) >= MAX_ALLOWED:
                self._allowed.clear()
            self._allowed.add((host, port))
        data = await _serialise(request)
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        await self._acquire(timeouts.get("pool"))
        connection = None
        try:
            connection = self._reuse((scheme, host, port)) or await self._connect(
                (scheme, host, port), timeouts.get("connect")
            )
            head = connection.start(data, head_only=request.method == "HEAD")
            read = timeouts.get("read")
            if read is None:  # the caller bounds the request itself (probe checks): no timer
                await head
            else:
                try:
                    async with asyncio.timeout(read):
                        await head
                except TimeoutError:
                    raise httpx.ReadTimeout("timed out waiting for the response") from None
        except BaseException:  # cancelled too: the slot and the connection must not leak
            if connection is None:
                self._slots.release()
            else:
                connection._close()
                self._release(connection)
            raise
        return httpx.Response(
            status_code=connection.status,
            headers=connection.headers,
            stream=_Body(self, connection, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _acquire(self, timeout: float | None) -> None:  # noqa: ASYNC109 (httpx's pool timeout)
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns without waiting
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection slot became free in time") from None

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < self._keepalive:
                return connection
            connection._close()
            self._open -= 1
        return None

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:  # noqa: ASYNC109
        self._make_room()
        scheme, host, port = origin
        context = self._ssl if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                if self.policy is None:
                    _, connection = await asyncio.get_running_loop().create_connection(
                        lambda: _Connection(origin),
                        host,
                        port,
                        ssl=context,
                        server_hostname=host if context else None,
                    )
                else:
                    _, connection = await egress.dial(
                        self.policy,
                        host,
                        port,
                        lambda: _Connection(origin),
                        tls=context,
                        server_hostname=host if context else None,
                    )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except egress.Denied:
            raise
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        self._open += 1
        return connection

    def _make_room(self) -> None:
        """At most ``max_connections`` open: close idle ones (of any origin) to make room."""
        if self._open < self._max:
            return
        oldest = min(
            (c for idle in self._idle.values() for c in idle), key=lambda c: c.idle_since, default=None
        )
        if oldest is not None:
            self._idle[oldest.origin].remove(oldest)
            oldest._close()
            self._open -= 1

    def _release(self, connection: _Connection) -> None:
        connection.release()
        now = time.monotonic()
        if connection.reusable() and not self._closed:
            connection.idle_since = now
            self._idle.setdefault(connection.origin, []).append(connection)
        else:
            connection._close()
            self._open -= 1
        self._slots.release()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Close idle connections past their keep-alive (or hung up), whichever origin they are
        for: reuse is last-in first-out, so the oldest would otherwise stay open unused."""
        for origin, idle in list(self._idle.items()):
            keep = [c for c in idle if not c.closed and now - c.idle_since < self._keepalive]
            for connection in idle:
                if connection not in keep:
                    connection._close()
                    self._open -= 1
            if keep:
                self._idle[origin] = keep
            else:
                del self._idle[origin]

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection._close()
        self._idle.clear()


class LeanClient(egress.Client):
    """``egress.Client`` over a ``LeanTransport``, with a direct path for the request a probe
    check sends most: no redirect to follow, no auth flow, no event hooks, no proxy mount.

    httpx's client wraps every request in its auth and redirect generators, then its response
    in a ``BoundAsyncStream`` (only to time ``response.elapsed``, which Pitwall never reads):
    at 500 checks a second those layers were ~7% of the operator's CPU (issue 18). On the
    direct path the transport's response is the response, with ``request`` and the client's
    default encoding set as httpx sets them; anything else goes through httpx as before.
    """

    async def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        auth = kwargs.get("auth", httpx.USE_CLIENT_DEFAULT)
        follow_redirects = kwargs.get("follow_redirects", httpx.USE_CLIENT_DEFAULT)
        redirects = (
            self.follow_redirects if follow_redirects is httpx.USE_CLIENT_DEFAULT else follow_redirects
        )
        if (
            redirects
            or self.is_closed
            or (auth is not httpx.USE_CLIENT_DEFAULT and auth is not None)
            or self.auth is not None
            or request.url.userinfo
            or self._mounts
            or self.event_hooks["request"]
            or self.event_hooks["response"]
            or "timeout" not in request.extensions
        ):
            return await super().send(request, stream=stream, **kwargs)
        response = await self._transport.handle_async_request(request)
        response.request = request
        response.default_encoding = self._default_encoding
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response


def client(
    policy: egress.Policy, *, verify: ssl.SSLContext | None = None, max_connections: int = 100
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` over ``LeanTransport``, set up as ``egress.client`` sets up its
    clients: no environment proxies, no cookies kept, redirects off unless a request asks."""
    return LeanClient(
        transport=LeanTransport(policy, verify=verify, max_connections=max_connections),
        trust_env=False,
        follow_redirects=False,
    )


async def _serialise(request: httpx.Request) -> bytes:
    """The request's bytes, with header names and values validated as h11 validates them."""
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), request.url.raw_path)]
    chunked = False
    for name, value in request.headers.raw:
        if not _TOKEN.fullmatch(name):
            raise httpx.LocalProtocolError(f"Illegal header name {name!r}")
        if not _FIELD_VALUE.fullmatch(value):
            raise httpx.LocalProtocolError(f"Illegal header value {value!r}")
        if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
            chunked = True
        lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"\r\n")
    body = await request.aread()
    if chunked:
        body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    lines.append(body)
    return b"".join(lines)
