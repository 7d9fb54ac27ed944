"""HTTP clients for probes: TLS options, proxy, and the address policy enforced at connect time.

Checks with the same TLS and proxy settings share one client (``client_key``), so thousands of
probes share a few connection pools. The address policy is enforced inside the client rather
than before each request, because only the connection knows the address it really dials: a
redirect hop, or a name that re-resolves to 169.254.169.254 between a check and the connect
(DNS rebinding), is refused all the same.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Hashable, Iterable
from http.cookiejar import CookieJar

import httpcore
import httpx

from ..errors import InvalidSpec
from .policy import AddressPolicy, IPAddress
from .spec import Check, Tls

Secrets = Callable[[str, str], Awaitable[str | None]]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, judge every resolved address, then dial the address that was judged."""

    def __init__(self, policy: AddressPolicy, backend: httpcore.AsyncNetworkBackend):
        self._policy = policy
        self._backend = backend

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 (httpcore API)
                          local_address: str | None = None,
                          socket_options: Iterable | None = None) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        self._policy.enforce(host, addresses)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with a ``GuardedBackend`` under its connection pool.

    httpx has no public way to pass httpcore a network backend, so the pool's backend is
    wrapped after construction (httpx is pinned below 1.0). The request-level check also
    covers proxied requests, where the connection goes to the proxy and only the target's name
    (or IP literal) can be judged.
    """

    def __init__(self, policy: AddressPolicy, **kwargs):
        super().__init__(**kwargs)
        self._policy = policy
        self._pool._network_backend = GuardedBackend(policy, self._pool._network_backend)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._policy.enforce(request.url.host)
        return await super().handle_async_request(request)


class _NoCookies(CookieJar):
    """A jar that keeps nothing."""

    def extract_cookies(self, response, request) -> None:
        pass

    def set_cookie(self, cookie) -> None:
        pass


def client_key(check: Check) -> Hashable:
    """Checks with equal keys can share a client (the Secrets' contents aside: re-create the
    client when a TLS Secret changes)."""
    return check.tls, check.proxy


async def make_client(check: Check, *, secrets: Secrets, policy: AddressPolicy,
                      max_connections: int = 100) -> httpx.AsyncClient:
    """A client for ``check``'s TLS and proxy settings.

    Cookies are never kept: one client serves many probes, and one probe's session must not
    leak into another's requests. Environment proxies are ignored so a probe goes where its
    spec says. Timeouts are set per request by the engine. Raises ``InvalidSpec`` when a TLS
    Secret is missing.
    """
    transport = GuardedTransport(
        policy,
        verify=await _ssl_context(check.tls, secrets),
        proxy=check.proxy,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )
    return httpx.AsyncClient(transport=transport, trust_env=False, timeout=None, cookies=_NoCookies())


async def _ssl_context(tls: Tls, secrets: Secrets) -> ssl.SSLContext:
    if tls.ca:
        ca = await _secret(secrets, tls.ca.name, tls.ca.key)
        context = ssl.create_default_context(cadata=ca)
    else:
        context = httpx.create_ssl_context(trust_env=False)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.client_cert:
        cert = await _secret(secrets, tls.client_cert, "tls.crt")
        key = await _secret(secrets, tls.client_cert, "tls.key")
        _load_cert_chain(context, cert, key)
    return context


def _load_cert_chain(context: ssl.SSLContext, cert: str, key: str) -> None:
    """``ssl`` loads client certificates only from files: write them to a private temporary
    directory for the duration of the call."""
    with tempfile.TemporaryDirectory(prefix="pitwall-tls-") as tmp:
        cert_file, key_file = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for path, text in ((cert_file, cert), (key_file, key)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as out:
                out.write(text)
        context.load_cert_chain(cert_file, key_file)


async def _secret(secrets: Secrets, name: str, key: str) -> str:
    value = await secrets(name, key)
    if value is None:
        raise InvalidSpec("SecretNotFound", f"Secret {name!r} has no key {key!r} (or does not exist)")
    return value


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    # Scope ids (fe80::1%eth0) are not part of the address the policy judges.
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
