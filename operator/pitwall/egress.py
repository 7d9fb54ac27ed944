"""Where Pitwall may send a request: one address policy for every outbound connection.

Probes, proxies, alert receivers (webhook, Teams, Slack, Opsgenie, PagerDuty, SMTP),
MaintenanceWindow receivers and consumer notices are all written by tenants and all leave from
the operator's network position, so each of them is a server-side request forgery waiting to
happen: cloud metadata services hand out credentials to whoever asks from inside the node, and
the operator's own ports (the internal view lists every team's probes) and the API server sit
next to it. Every request therefore goes through :func:`client` (HTTP) or :func:`open_socket`
(SMTP), which judge each address under one :class:`Policy`.

The API, in short::

    policy = Policy.for_operator(settings, api_server="https://10.96.0.1:443")
    http = client(policy, verify=ssl_context, proxy="http://proxy:3128")   # an httpx.AsyncClient
    sock = await open_socket(policy, "smtp.example.com", 587, timeout=10)  # a connected socket

A refused request raises :class:`Denied` (an ``InvalidSpec``: the spec's fault, so a Probe is
Stalled, a delivery recorded as refused and not retried) before any packet is sent.

When the decision is made: on the *resolved* addresses at connect time (``GuardedBackend``
resolves, judges every answer, then dials the address it judged), so a name that resolves to a
metadata address, or re-resolves to one later (DNS rebinding), is refused too, and so is every
redirect hop. With a ``proxy`` the proxy's own address is judged at connect time the same way,
and the target (which the proxy dials) is judged by its name or literal before the request, and
by what the name resolves to here when it resolves at all.

Order of the decision, per address: the operator's denylist wins; the operator's own listening
ports on any local address and the API server's address:port are refused; then the allowlist
(which may re-allow part of the built-in defaults, e.g. one link-local service an operator really
needs); then the built-in defaults (link-local and cloud-metadata addresses); then, when an
allowlist is configured, anything not on it is denied. Loopback is allowed by default because
development and tests probe 127.0.0.1.

Addresses are judged in every spelling the kernel or a gateway would turn into another address:
inet_aton forms (``http://0/``, ``0x7f.1``, ``2130706433``), "this host" (``0.0.0.0/8``, ``::``,
judged as loopback too), and IPv6 forms that embed an IPv4 address (mapped ``::ffff:a.b.c.d``,
compatible ``::a.b.c.d``, SIIT ``::ffff:0:a.b.c.d``, NAT64 ``64:ff9b::/96`` and
``64:ff9b:1::/48``, 6to4 ``2002::/16``, Teredo ``2001::/32``), which are judged as the IPv4
address they embed as well as themselves.

Why a transport of our own: httpx has no public way to hand httpcore a network backend, while
httpcore's pools take ``network_backend=``. ``GuardedTransport`` therefore builds the httpcore
pool itself (as ``httpx.AsyncHTTPTransport`` does, ~40 lines) instead of reaching into httpx's
private ``_pool._network_backend``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from http.cookiejar import CookieJar
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpcore
import httpx

from .errors import Denied, InvalidSpec

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


METADATA_NETWORKS: tuple[IPNetwork, ...] = _nets(
    "169.254.0.0/16",  # IPv4 link-local: AWS, GCP, Azure, OCI, OpenStack metadata at 169.254.169.254
    "fe80::/10",  # IPv6 link-local
    "fd00:ec2::254/128",  # AWS metadata over IPv6
    "fd20:ce::254/128",  # GCP metadata over IPv6
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "168.63.129.16/32",  # Azure wireserver (platform agent endpoint)
)
METADATA_HOSTS = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
    }
)
# Names that always mean the local host, even when a proxy (not us) would resolve them.
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
# The API server's in-cluster names: refused on every port.
API_SERVER_NAMES = frozenset(
    {"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
)

_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # "this host on this network": the kernel dials itself
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")
_NAT64 = _nets("64:ff9b::/96", "64:ff9b:1::/48")
_LOOPBACK_V4, _LOOPBACK_V6 = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")
_NUMERIC = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)


class OperatorSettings(Protocol):
    """What :meth:`Policy.for_operator` reads from ``runtime.Settings``."""

    allow_networks: str | None
    deny_networks: str | None
    metrics_port: int
    statuspage_port: int
    internal_port: int
    webhook_port: int
    endpoint_rewrite: str | None


@dataclass(frozen=True, slots=True)
class Policy:
    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: frozenset[str] = frozenset()
    deny_networks: tuple[IPNetwork, ...] = ()
    deny_hosts: frozenset[str] = frozenset()
    local_ports: frozenset[int] = frozenset()  # the operator's own ports, on any local address
    endpoints: frozenset[tuple[IPAddress, int]] = frozenset()  # the API server's address:port
    endpoint_names: frozenset[tuple[str, int]] = frozenset()  # ... and its name:port
    # Local addresses that stand for pods (the endpoint rewrite's targets, e.g. 127.244.0.0/16
    # out of the cluster): another listener's, not the operator's, whatever their port.
    pod_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_lists(
        cls,
        allow: Iterable[str] = (),
        deny: Iterable[str] = (),
        *,
        local_ports: Iterable[int] = (),
        api_server: str | None = None,
        pod_networks: Iterable[str] = (),
    ) -> Policy:
        """Entries are CIDRs, addresses or host names (e.g. from a comma-separated setting).

        ``local_ports`` are refused on every address of this host (and every spelling of it)
        but ``pod_networks``; ``api_server`` is the API server's URL, whose address:port is
        refused (a name is resolved once, here, and refused by name as well).
        """
        allow_nets, allow_hosts = _split(allow)
        deny_nets, deny_hosts = _split(deny)
        ports = {p for p in local_ports if p}
        endpoints: set[tuple[IPAddress, int]] = set()
        names: set[tuple[str, int]] = set()
        if api_server:
            host, port = _host_port(api_server)
            literal = _literal(host)
            addresses = [literal] if literal else _resolve_now(host, port)
            if literal is None:
                names.add((host, port))
            for address in addresses:
                endpoints.add((address, port))
                if _is_local(address):
                    ports.add(port)  # on this host: every local spelling reaches it
        pods = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in pod_networks if n.strip())
        return cls(
            allow_nets,
            allow_hosts,
            deny_nets,
            deny_hosts,
            frozenset(ports),
            frozenset(endpoints),
            frozenset(names),
            pods,
        )

    @classmethod
    def for_operator(cls, settings: OperatorSettings, api_server: str | None = None) -> Policy:
        """The policy from the operator's settings (``PITWALL_PROBE_ALLOW``/``PITWALL_PROBE_DENY``,
        ``--allow-networks``/``--deny-networks``), its listening ports and the API server URL."""
        return cls.from_lists(
            allow=(settings.allow_networks or "").split(","),
            deny=(settings.deny_networks or "").split(","),
            local_ports=(
                settings.metrics_port,
                settings.statuspage_port,
                settings.internal_port,
                settings.webhook_port,
            ),
            api_server=api_server,
            pod_networks=[rule.partition("=")[2] for rule in (settings.endpoint_rewrite or "").split(",")],
        )

    def verdict(self, host: str, addresses: Iterable[IPAddress] = (), port: int | None = None) -> str | None:
        """Why ``host`` (resolved to ``addresses``) on ``port`` is denied, or None when allowed.

        With no addresses only the name is judged (and the host itself when it is an IP literal
        in any spelling): that is all that can be known before connecting, or when a proxy
        connects.
        """
        name = _normalise(host)
        literal = _literal(name)
        shown = f"{name}:{port}" if port else name
        if literal is None:
            if name in self.deny_hosts:
                return f"{name} is denied by the operator's address policy (denylist)"
            if name in METADATA_HOSTS and name not in self.allow_hosts:
                return f"{name} is a cloud-metadata host and is denied by policy"
            if name in API_SERVER_NAMES or (port and (name, port) in self.endpoint_names):
                return f"{shown} is the Kubernetes API server and is denied by policy"
        candidates = [literal] if literal is not None else list(addresses)
        if literal is None and (name in LOCAL_NAMES or name.endswith(".localhost")):
            candidates += [_LOOPBACK_V4, _LOOPBACK_V6]
        for address in candidates:
            judged = self._judge(address, port, name_allowed=name in self.allow_hosts)
            if judged:
                text, on_port = judged
                where = f"{address}:{port}" if on_port else str(address)
                return (
                    f"{where} {text}" if literal is not None else f"{name} resolves to {where}, which {text}"
                )
        return None

    def _judge(self, address: IPAddress, port: int | None, *, name_allowed: bool) -> tuple[str, bool] | None:
        """(why, whether the reason is about the port) or None."""
        forms = embedded(address)

        def shown(form: IPAddress) -> str:
            return "" if form == address else f"(that is {form}) "

        for form in forms:
            if any(form in net for net in self.deny_networks):
                return f"{shown(form)}is denied by the operator's address policy (denylist)", False
        if port:
            for form in forms:
                if (form, port) in self.endpoints:
                    return f"{shown(form)}is the Kubernetes API server and is denied by policy", True
            if port in self.local_ports:
                for form in forms:
                    if _is_local(form) and not any(form in net for net in self.pod_networks):
                        return (
                            f"{shown(form)}is one of the operator's own ports (metrics, status page, "
                            "internal view, webhook) and is denied by policy"
                        ), True
        allowed = [form for form in forms if any(form in net for net in self.allow_networks)]
        for form in forms:
            if form not in allowed and any(form in net for net in METADATA_NETWORKS):
                return f"{shown(form)}is a link-local/cloud-metadata address and is denied by policy", False
        if self.restrictive and not allowed and not name_allowed:
            return "is not in the operator's allowlist", False
        return None

    def enforce(self, host: str, addresses: Iterable[IPAddress] = (), port: int | None = None) -> None:
        """Raise :class:`Denied` when ``verdict`` says why not."""
        reason = self.verdict(host, addresses, port)
        if reason:
            raise Denied(reason)

    @property
    def restrictive(self) -> bool:
        return bool(self.allow_networks or self.allow_hosts)


def embedded(address: IPAddress) -> list[IPAddress]:
    """``address`` and every address it stands for: the IPv4 address an IPv6 form embeds
    (mapped, compatible, SIIT, NAT64, 6to4, Teredo), and loopback for "this host"."""
    forms: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.ipv4_mapped:
            forms.append(address.ipv4_mapped)
        elif address in _V4_COMPATIBLE and int(address) > 1:
            forms.append(low32)
        elif address in _SIIT:
            forms.append(low32)
        if any(address in net for net in _NAT64):
            forms.append(low32)
        if address.sixtofour:
            forms.append(address.sixtofour)
        if address.teredo:
            forms.extend(address.teredo)
        if address.is_unspecified:
            forms.append(_LOOPBACK_V6)
    for form in list(forms):
        if isinstance(form, ipaddress.IPv4Address) and form in _THIS_NETWORK:
            forms.append(_LOOPBACK_V4)
    return list(dict.fromkeys(forms))


@functools.lru_cache(maxsize=4096)
def _is_local(address: IPAddress) -> bool:
    """Whether ``address`` is one of this host's: the kernel lets a socket bind only to those
    (no packet is sent)."""
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET6 if isinstance(address, ipaddress.IPv6Address) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


def _split(entries: Iterable[str]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    networks, hosts = [], set()
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(_normalise(entry))
    return tuple(networks), frozenset(hosts)


def _normalise(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _literal(text: str) -> IPAddress | None:
    """An IP address in any spelling the resolver accepts as one: ``ipaddress`` forms, and the
    inet_aton forms (``0``, ``127.1``, ``0x7f.0.0.1``, ``0177.0.0.1``, ``2130706433``)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _NUMERIC.fullmatch(text) and any(c.isdigit() for c in text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    return _normalise(parts.hostname or ""), parts.port or (80 if parts.scheme == "http" else 443)


def _resolve_now(host: str, port: int) -> list[IPAddress]:
    """Blocking resolution, used once when the policy is built (start-up)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` stands for (a literal in any spelling: itself, no lookup)."""
    literal = _literal(_normalise(host))
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    # Scope ids (fe80::1%eth0) are not part of the address the policy judges.
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


async def judged(policy: Policy, host: str, port: int) -> list[IPAddress]:
    """``host``'s addresses, every one judged by ``policy`` (raises :class:`Denied`): the only
    addresses any client here may then dial."""
    addresses = await resolve(host, port)
    policy.enforce(host, addresses, port)
    return addresses


async def dial(
    policy: Policy,
    host: str,
    port: int,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    *,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> tuple[asyncio.BaseTransport, Any]:
    """``loop.create_connection`` to a judged address of ``host`` (the first that answers), for
    clients built on asyncio protocols (``transport``). TLS is verified against
    ``server_hostname`` (the name the request was for), not the address dialled."""
    loop = asyncio.get_running_loop()
    try:
        addresses = await judged(policy, host, port)
    except httpcore.ConnectError as exc:
        raise OSError(str(exc)) from None
    error: OSError | None = None
    for address in addresses:
        try:
            return await loop.create_connection(
                protocol_factory, str(address), port, ssl=tls, server_hostname=server_hostname
            )
        except OSError as exc:
            error = exc
    raise error or OSError(f"{host} has no address")


# -- HTTP ------------------------------------------------------------------------------------------
class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, judge every resolved address, then dial the address that was judged."""

    def __init__(self, policy: Policy, backend: httpcore.AsyncNetworkBackend | None = None):
        self._policy = policy
        self._backend = backend or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore API)
        local_address: str | None = None,
        socket_options: Iterable | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await judged(self._policy, host, port)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")

    async def connect_unix_socket(self, *args, **kwargs):
        raise httpcore.ConnectError("unix sockets are not allowed by the egress policy")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    # Most specific first: the first match wins.
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


def _httpx_error(exc: Exception) -> Exception:
    """httpcore's exception as the httpx exception callers catch (what httpx's transport does)."""
    for source, target in _EXCEPTIONS:
        if isinstance(exc, source):
            error = target(str(exc))
            error.__cause__ = exc
            return error
    return exc


class _Body(httpx.AsyncByteStream):
    def __init__(self, stream):
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except Exception as exc:
            error = _httpx_error(exc)
            if error is exc:
                raise
            raise error from exc

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            await self._stream.aclose()


class _LeanAssignment:
    """httpcore's pool bookkeeping, in linear time and without a syscall per pooled connection.

    ``AsyncConnectionPool._assign_requests_to_connections`` runs when every request starts and
    every response closes. In httpcore 1.0 it asks each pooled connection ``has_expired()`` (a
    ``poll`` of its socket and two ``get_extra_info`` lookups) and, for each idle connection,
    counts the whole pool again: with 100 pooled connections that was ~45% of the CPU of a plain
    check (issue 18; bench/probe_cpu.py). This does the same assignment with the same outcomes:
    closed connections leave the pool at once; an idle connection is checked for expiry (keep-alive
    timeout, or a server that hung up) right before it is handed a request, so a dead one is never
    reused; and the whole pool is swept for expired connections at most every ``SWEEP`` seconds
    instead of on every request, so hung-up sockets do not linger.
    """

    SWEEP = 1.0
    _next_sweep = 0.0

    def _assign_requests_to_connections(self) -> list:
        pool: Any = self
        connections: list = pool._connections
        closing: list = []
        now = time.monotonic()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + self.SWEEP
        for connection in list(connections):
            if connection.is_closed():
                connections.remove(connection)
            elif sweep and connection.has_expired():
                connections.remove(connection)
                closing.append(connection)
        if len(connections) > pool._max_keepalive_connections:  # surplus idle connections
            for connection in [c for c in connections if c.is_idle()]:
                if len(connections) <= pool._max_keepalive_connections:
                    break
                connections.remove(connection)
                closing.append(connection)
        for pool_request in [r for r in pool._requests if r.is_queued()]:
            origin = pool_request.request.url.origin
            chosen = None
            for connection in list(connections):
                if connection.can_handle_request(origin) and connection.is_available():
                    if connection.is_idle() and connection.has_expired():
                        connections.remove(connection)
                        closing.append(connection)
                        continue
                    chosen = connection
                    break
            if chosen is None and len(connections) >= pool._max_connections:
                idle = next((c for c in connections if c.is_idle()), None)
                if idle is None:
                    continue  # stays queued until a connection frees up
                connections.remove(idle)
                closing.append(idle)
            if chosen is None:
                chosen = pool.create_connection(origin)
                connections.append(chosen)
            pool_request.assign_to_connection(chosen)
        return closing


class _Pool(_LeanAssignment, httpcore.AsyncConnectionPool):
    pass


class _HTTPProxy(_LeanAssignment, httpcore.AsyncHTTPProxy):
    pass


class _SOCKSProxy(_LeanAssignment, httpcore.AsyncSOCKSProxy):
    pass


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over an httpcore pool whose every connection goes through
    ``GuardedBackend``: the target's (or the proxy's) resolved addresses are judged when dialled.

    The request-level check judges the target's name or literal before anything else; with a
    proxy that is the only look at the target Pitwall gets, so the name is also resolved here
    (best effort: the proxy may resolve differently, or only it may resolve at all).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        verify: ssl.SSLContext | None = None,
        proxy: str | httpx.Proxy | None = None,
        limits: httpx.Limits = httpx.Limits(),
        http2: bool = False,
    ):
        self.policy = policy
        self.proxied = proxy is not None
        backend = GuardedBackend(policy)
        context = verify or httpx.create_ssl_context(trust_env=False)
        common: dict[str, Any] = dict(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http2=http2,
            network_backend=backend,
        )
        if proxy is None:
            self._pool: httpcore.AsyncConnectionPool = _Pool(**common)
            return
        if not isinstance(proxy, httpx.Proxy):
            scheme = urlsplit(proxy).scheme
            if scheme not in ("http", "https", "socks5", "socks5h"):
                raise InvalidSpec(
                    "UnsupportedProxy",
                    f"proxy scheme {scheme!r} is not supported (http, https, socks5, socks5h)",
                )
            proxy = httpx.Proxy(proxy)
        url = httpcore.URL(
            scheme=proxy.url.raw_scheme,
            host=proxy.url.raw_host,
            port=proxy.url.port,
            target=proxy.url.raw_path,
        )
        if proxy.url.scheme in ("http", "https"):
            self._pool = _HTTPProxy(
                proxy_url=url,
                proxy_auth=proxy.raw_auth,
                proxy_headers=proxy.headers.raw,
                proxy_ssl_context=proxy.ssl_context,
                **common,
            )
        else:
            try:
                import socksio  # noqa: F401  (httpcore's SOCKS support needs it)
            except ImportError:
                raise InvalidSpec(
                    "UnsupportedProxy",
                    "socks5 proxies need the socksio package, which "
                    "this build of Pitwall does not include; use an http:// proxy",
                ) from None
            self._pool = _SOCKSProxy(proxy_url=url, proxy_auth=proxy.raw_auth, **common)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host, port = request.url.host, request.url.port or (443 if request.url.scheme == "https" else 80)
        self.policy.enforce(host, (), port)
        if self.proxied and _literal(_normalise(host)) is None:
            try:
                self.policy.enforce(host, await resolve(host, port), port)
            except httpcore.ConnectError:
                pass  # only the proxy can resolve it: judged by name above
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core)
        except Exception as exc:
            error = _httpx_error(exc)
            if error is exc:
                raise
            raise error from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _NoCookies(CookieJar):
    """A jar that keeps nothing: one client serves many tenants, whose sessions must not mix."""

    def extract_cookies(self, response, request) -> None:
        pass

    def set_cookie(self, cookie) -> None:
        pass


class _Jarless(httpx.Cookies):
    """No cookies, and no work to keep none: httpx offers every response to the jar through
    urllib request/response adapters (8% of a probe check's CPU, for a jar that drops them)."""

    def __init__(self) -> None:
        super().__init__(_NoCookies())

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


_DONE = httpx.ByteStream(b"")


def unbind(response: httpx.Response) -> None:
    """Break the reference cycle httpx leaves on every response it sends, once it is closed.

    httpx's client wraps each response's stream in a ``BoundAsyncStream`` that holds the
    response, and the response holds that stream: a cycle, so neither the response nor its
    request, URL and headers (21 objects a check) is freed when the last reference goes, only by
    the garbage collector. At 500 checks a second that was ~10,000 objects a second for young
    collections to walk (issue 18, bench/results/probes.md). A closed response never reads its
    stream again (httpx raises ``StreamClosed`` first), so an empty one takes its place.
    """
    for each in (*response.history, response):
        if each.is_closed:
            each.stream = _DONE


class Client(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that never keeps or sends cookies (see ``client``), and whose
    responses, once read, are freed by reference counting (:func:`unbind`)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._no_cookies = _Jarless()

    async def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        response = await super().send(request, stream=stream, **kwargs)
        if not stream:
            unbind(response)
        return response

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise TypeError("a Pitwall client keeps no cookies: one client serves many tenants")


def client(
    policy: Policy,
    *,
    verify: ssl.SSLContext | None = None,
    proxy: str | None = None,
    max_connections: int = 100,
    follow_redirects: bool = False,
    timeout: float | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every connection obeys ``policy``.

    ``verify`` is the TLS context (default: the system's CAs with certifi, no env overrides);
    ``proxy`` an ``http(s)://`` or ``socks5://`` URL. Environment proxies and cookies are never
    used: a request goes where its spec says, and one tenant's session never reaches another's
    request. Redirects are off unless asked for; each hop is judged again when it is dialled.
    """
    transport = GuardedTransport(
        policy,
        verify=verify,
        proxy=proxy,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )
    return Client(transport=transport, trust_env=False, timeout=timeout, follow_redirects=follow_redirects)


# -- other protocols (SMTP) ------------------------------------------------------------------------
async def open_socket(policy: Policy, host: str, port: int, timeout: float) -> socket.socket:  # noqa: ASYNC109
    """A TCP socket connected to ``host:port`` after judging every address it resolves to.

    For clients that take a connected socket (aiosmtplib's ``sock=``): the address dialled is
    the one judged. Raises :class:`Denied`, or ``OSError`` when nothing answers.
    """
    try:
        addresses = await judged(policy, host, port)
    except httpcore.ConnectError as exc:
        raise OSError(str(exc)) from None
    loop = asyncio.get_running_loop()
    error: OSError | None = None
    for address in addresses:
        family = socket.AF_INET6 if isinstance(address, ipaddress.IPv6Address) else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (str(address), port))
            return sock
        except (OSError, TimeoutError) as exc:
            sock.close()
            error = exc if isinstance(exc, OSError) else OSError(f"connecting to {address}:{port} timed out")
    raise error or OSError(f"{host} has no address")
