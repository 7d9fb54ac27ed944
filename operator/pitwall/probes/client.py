"""HTTP clients for probes: TLS options and proxy, over the operator's egress policy.

Checks with the same TLS and proxy settings share one client (``client_key``), so thousands of
probes share a few connection pools. The address policy is enforced inside the client
(``egress.client``) rather than before each request, because only the connection knows the
address it really dials: a redirect hop, or a name that re-resolves to 169.254.169.254 between a
check and the connect (DNS rebinding), is refused all the same.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Hashable

import httpx

from .. import egress, transport
from ..errors import InvalidSpec
from .spec import Check, Tls

Secrets = Callable[[str, str], Awaitable[str | None]]


def client_key(check: Check) -> Hashable:
    """Checks with equal keys can share a client (the Secrets' contents aside: re-create the
    client when a TLS Secret changes)."""
    return check.tls, check.proxy


async def make_client(
    check: Check,
    *,
    secrets: Secrets,
    policy: egress.Policy,
    max_connections: int = 100,
    lean: bool = True,
) -> httpx.AsyncClient:
    """A client for ``check``'s TLS and proxy settings (see ``egress.client``: no cookies, no
    environment proxies, the address policy at connect time). Timeouts are set per request by
    the engine. Raises ``InvalidSpec`` when a TLS Secret is missing or not opted in.

    Without a proxy, requests go over ``transport.LeanTransport`` (HTTP/1.1 on asyncio and
    llhttp, about a quarter of the CPU per check); with one, or ``lean=False`` (the benchmark's
    comparison), over httpcore as every other outbound client does.
    """
    context = await _ssl_context(check.tls, secrets)
    if check.proxy is not None or not lean:
        return egress.client(policy, verify=context, proxy=check.proxy, max_connections=max_connections)
    return transport.client(policy, verify=context, max_connections=max_connections)


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
