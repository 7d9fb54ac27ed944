"""The egress policy: every spelling of a denied address, the operator's own ports, the API
server, proxies, and the transport that enforces it before any dial (real sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx
import pytest

from pitwall import egress, transport
from pitwall.egress import Denied, Policy

METADATA = "is a link-local/cloud-metadata address and is denied by policy"


def ip(text: str):
    return ipaddress.ip_address(text)


# 169.254.169.254 in every spelling a URL host can carry (inet_aton forms, IPv6 forms that embed it).
METADATA_SPELLINGS = [
    "169.254.169.254",
    "169.254.169.254.",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "2852039166",
    "0xa9fea9fe",
    "0251.0376.0251.0376",
    "0xa9.0xfe.0xa9.0xfe",
    "169.254.43518",
    "169.16689662",
    "0251.254.169.254",
    "[0:0:0:0:0:ffff:a9fe:a9fe]",
    "[::169.254.169.254]",
    "[::ffff:0:169.254.169.254]",
    "[64:ff9b::169.254.169.254]",
    "[64:ff9b:1::a9fe:a9fe]",
    "[2002:a9fe:a9fe::1]",
    "[2001:0:4136:e378:8000:63bf:5601:5601]",  # Teredo client 169.254.169.254
    "[fe80::1]",
    "[fd00:ec2::254]",
    "[fd20:ce::254]",
    "100.100.100.200",
    "[::ffff:100.100.100.200]",
    "168.63.129.16",
    "[64:ff9b::100.100.100.200]",
    "[2002:6464:64c8::]",
]


@pytest.mark.parametrize("host", METADATA_SPELLINGS)
def test_metadata_is_refused_in_every_spelling(host):
    reason = Policy().verdict(host)
    assert reason is not None and METADATA in reason


@pytest.mark.parametrize(
    "host",
    [
        "metadata.google.internal",
        "Metadata.Google.Internal.",
        "metadata.goog",
        "instance-data.ec2.internal",
        "metadata",
    ],
)
def test_metadata_names_are_refused(host):
    assert "cloud-metadata host" in Policy().verdict(host)


def test_a_name_is_judged_by_what_it_resolves_to():
    assert (
        Policy().verdict("evil.example", [ip("203.0.113.7"), ip("64:ff9b::a9fe:a9fe")])
        == "evil.example resolves to 64:ff9b::a9fe:a9fe, which (that is 169.254.169.254) " + METADATA
    )
    assert Policy().verdict("api.example.com", [ip("203.0.113.7")]) is None


# "This host": the kernel dials itself for 0.0.0.0/8 and ::, so a deny of loopback must cover them.
THIS_HOST = [
    "0.0.0.0",
    "0",
    "0x0",
    "0.0",
    "000.000.000.000",
    "0.1.2.3",
    "[::]",
    "[0:0:0:0:0:0:0:0]",
    "[::ffff:0.0.0.0]",
    "[::ffff:127.0.0.1]",
    "127.1",
    "0x7f.1",
    "2130706433",
    "0177.0.0.1",
    "127.255.255.254",
    "[::1]",
    "[::ffff:7f00:1]",
    "[64:ff9b::127.0.0.1]",
    "[2002:7f00:1::]",
    "localhost",
    "LOCALHOST.",
    "api.localhost",
    "ip6-localhost",
]


@pytest.mark.parametrize("host", THIS_HOST)
def test_every_spelling_of_this_host_is_judged_as_loopback(host):
    denied = Policy.from_lists(deny=["127.0.0.0/8", "::1"])
    reason = denied.verdict(host)
    assert reason is not None and "denied by the operator's address policy (denylist)" in reason
    assert Policy().verdict(host) is None  # loopback stays allowed by default


@pytest.mark.parametrize("host", THIS_HOST)
def test_the_operators_own_ports_are_refused_on_every_local_spelling(host):
    policy = Policy.from_lists(local_ports=[8082, 0])
    reason = policy.verdict(host, port=8082)
    assert reason is not None and "one of the operator's own ports" in reason
    assert policy.verdict(host, port=8083) is None


def test_the_operators_ports_elsewhere_are_not_its_own():
    policy = Policy.from_lists(local_ports=[8082])
    assert policy.verdict("203.0.113.7", port=8082) is None
    assert policy.verdict("api.example.com", [ip("203.0.113.7")], port=8082) is None
    assert "own ports" in policy.verdict("api.example.com", [ip("203.0.113.7"), ip("127.0.0.1")], port=8082)


def test_the_api_server_is_refused():
    policy = Policy.from_lists(api_server="https://10.96.0.1:443")
    assert (
        policy.verdict("10.96.0.1", port=443)
        == "10.96.0.1:443 is the Kubernetes API server and is denied by policy"
    )
    assert "API server" in policy.verdict("[::ffff:10.96.0.1]", port=443)
    assert "API server" in policy.verdict("any.example", [ip("10.96.0.1")], port=443)
    assert policy.verdict("10.96.0.1", port=80) is None
    for name in ("kubernetes", "kubernetes.default.svc", "Kubernetes.Default.Svc.Cluster.Local."):
        assert "API server" in policy.verdict(name, port=8443)


def test_a_local_api_server_is_refused_on_every_local_address():
    policy = Policy.from_lists(api_server="https://127.0.0.1:6443")
    for host in ("127.0.0.1", "0", "[::]", "localhost", "127.0.0.2"):
        assert policy.verdict(host, port=6443) is not None, host


def test_a_named_api_server_is_refused_by_name_and_address():
    policy = Policy.from_lists(api_server="https://localhost:6443")
    assert "API server" in policy.verdict("localhost", port=6443)
    assert "API server" in policy.verdict("127.0.0.1", port=6443)


def test_allowlist_and_denylist():
    policy = Policy.from_lists(
        allow=["10.0.0.0/8", "api.example.com", "169.254.10.5"], deny=["10.9.0.0/16", "blocked.example"]
    )
    assert policy.verdict("10.1.2.3") is None
    assert policy.verdict("[::ffff:10.1.2.3]") is None  # the IPv4 it embeds is allowed
    assert policy.verdict("169.254.10.5") is None  # an allowlist entry may re-allow one default
    assert METADATA in policy.verdict("169.254.169.254")
    assert policy.verdict("10.9.1.1") == "10.9.1.1 is denied by the operator's address policy (denylist)"
    assert "denylist" in policy.verdict("[64:ff9b::10.9.1.1]")
    assert policy.verdict("8.8.8.8") == "8.8.8.8 is not in the operator's allowlist"
    assert policy.verdict("api.example.com", [ip("203.0.113.7")]) is None
    assert (
        policy.verdict("other.example", [ip("203.0.113.7")])
        == "other.example resolves to 203.0.113.7, which is not in the operator's allowlist"
    )
    assert (
        policy.verdict("blocked.example")
        == "blocked.example is denied by the operator's address policy (denylist)"
    )
    # An allowed name that resolves to a metadata address is still refused (DNS rebinding).
    assert METADATA in policy.verdict("api.example.com", [ip("169.254.169.254")])


def test_policy_from_the_operators_settings():
    from pitwall.runtime import Settings

    settings = Settings(
        allow_networks="10.0.0.0/8, 127.0.0.0/8",
        deny_networks="10.9.0.0/16",
        metrics_port=9100,
        statuspage_port=0,
        internal_port=9102,
        webhook_port=0,
    )
    policy = Policy.for_operator(settings, "https://127.0.0.1:6443")
    assert policy.local_ports == {9100, 9102, 6443}
    assert "denylist" in policy.verdict("10.9.0.1")
    assert "allowlist" in policy.verdict("8.8.8.8")
    assert "own ports" in policy.verdict("127.0.0.1", port=9102)


def test_pod_addresses_of_the_endpoint_rewrite_are_not_the_operators_ports():
    """Out of the cluster, pods are served on 127.244.0.0/16 on their container port (often 8080,
    like the operator's metrics): those are the pods', not the operator's."""
    from pitwall.runtime import Settings

    policy = Policy.for_operator(Settings(endpoint_rewrite="10.244.0.0/16=127.244.0.0/16"))
    assert policy.verdict("127.244.0.5", port=8080) is None
    assert "own ports" in policy.verdict("127.0.0.1", port=8080)
    assert "own ports" in policy.verdict("0", port=8080)


# -- enforcement: real sockets, and proof that nothing was dialled ---------------------------------
# Both HTTP clients: httpcore's (every outbound request, and probes through a proxy) and the
# probes' lean transport (checks without a proxy), each dialling through the one policy.
CLIENTS = pytest.mark.parametrize("make", [egress.client, transport.client], ids=["httpcore", "lean"])


class Listener:
    """A TCP server on 127.0.0.1 that counts connections and answers HTTP 200."""

    def __init__(self):
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self):
        async def handle(reader, writer):
            self.accepted += 1
            request = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            body = request.split(b" ")[1] if request else b""
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.parametrize("host", ["127.0.0.1", "0", "0.0.0.0", "127.1", "2130706433", "localhost"])
@CLIENTS
async def test_denied_spellings_are_refused_before_any_dial(make, host):
    async with Listener() as target:
        async with make(Policy.from_lists(deny=["127.0.0.0/8", "::1"])) as http:
            with pytest.raises(Denied) as err:
                await http.get(f"http://{host}:{target.port}/")
        assert target.accepted == 0
    assert err.value.reason == "TargetDenied"


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "[::ffff:127.0.0.1]", "localhost", "127.0.0.9"])
@CLIENTS
async def test_the_operators_ports_are_refused_before_any_dial(make, host):
    async with Listener() as own:
        async with make(Policy.from_lists(local_ports=[own.port])) as http:
            with pytest.raises(Denied, match="operator's own ports"):
                await http.get(f"http://{host}:{own.port}/internal")
        assert own.accepted == 0


@CLIENTS
async def test_an_allowed_target_is_reached_and_errors_are_httpx_errors(make):
    async with Listener() as target:
        async with make(Policy()) as http:
            response = await http.get(f"http://127.0.0.1:{target.port}/hello")
        assert (response.status_code, response.text) == (200, "/hello")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    async with make(Policy()) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{closed}/")


@CLIENTS
async def test_redirects_are_off_by_default_and_each_hop_is_judged(make):
    async def bounce(reader, writer):
        await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(
            b"HTTP/1.1 302 Found\r\nLocation: http://[::ffff:169.254.169.254]/latest\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(bounce, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    try:
        async with make(Policy()) as http:
            assert (await http.get(url)).status_code == 302
            with pytest.raises(Denied, match="169.254.169.254"):
                await http.get(url, follow_redirects=True)
    finally:
        server.close()
        await server.wait_closed()


async def test_with_a_proxy_the_proxys_own_address_is_judged_at_connect():
    async with Listener() as proxy:
        policy = Policy.from_lists(deny=["127.0.0.0/8"])
        async with egress.client(policy, proxy=f"http://127.0.0.1:{proxy.port}") as http:
            with pytest.raises(Denied, match="127.0.0.1"):
                await http.get("http://api.example.test/")
        assert proxy.accepted == 0
        async with egress.client(
            Policy.from_lists(local_ports=[proxy.port]), proxy=f"http://localhost:{proxy.port}"
        ) as http:
            with pytest.raises(Denied, match="own ports"):
                await http.get("http://api.example.test/")
        assert proxy.accepted == 0


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/",
        "http://0xa9fea9fe/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://metadata.google.internal/",
        "http://localhost:{own}/",
        "http://0:{own}/",
        "http://kubernetes.default.svc/",
    ],
)
async def test_with_a_proxy_the_target_is_judged_too(target):
    async with Listener() as proxy, Listener() as own:
        async with egress.client(
            Policy.from_lists(local_ports=[own.port]), proxy=f"http://127.0.0.1:{proxy.port}"
        ) as http:
            with pytest.raises(Denied):
                await http.get(target.format(own=own.port))
            response = await http.get("http://api.example.test/fine")
        assert proxy.accepted == 1 and own.accepted == 0
    assert response.text == "http://api.example.test/fine"


async def test_open_socket_judges_then_dials_the_judged_address():
    async with Listener() as target:
        sock = await egress.open_socket(Policy(), "localhost", target.port, timeout=5)
        for _ in range(200):  # the server sees the connection on its next turn
            if target.accepted:
                break
            await asyncio.sleep(0.01)
        sock.close()
        with pytest.raises(Denied):
            await egress.open_socket(
                Policy.from_lists(local_ports=[target.port]), "0", target.port, timeout=5
            )
        with pytest.raises(Denied):
            await egress.open_socket(Policy(), "169.254.169.254", 25, timeout=5)
        assert target.accepted == 1


def test_unsupported_proxy_is_a_spec_error():
    with pytest.raises(egress.InvalidSpec) as err:
        egress.client(Policy(), proxy="ftp://proxy.example:21")
    assert err.value.reason == "UnsupportedProxy"


# -- the pool (egress._LeanAssignment): keep-alive reuse, limits, hung-up connections -------------
class KeepAlive:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 that counts connections, answers each request
    after ``delay`` seconds, and hangs up a connection after ``hang_up_after`` requests on it."""

    def __init__(self, delay: float = 0.0, hang_up_after: int | None = None):
        self.accepted, self.open, self.most_open = 0, 0, 0
        self.delay, self.hang_up_after = delay, hang_up_after

    async def __aenter__(self):
        async def handle(reader, writer):
            self.accepted += 1
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            served = 0
            try:
                while request := await reader.readline():
                    while (await reader.readline()) not in (b"\r\n", b""):
                        pass
                    await asyncio.sleep(self.delay)
                    body = request.split(b" ")[1]
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                    await writer.drain()
                    served += 1
                    if self.hang_up_after is not None and served >= self.hang_up_after:
                        break
            finally:
                self.open -= 1
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()


@CLIENTS
async def test_connections_are_reused_and_the_pool_limit_holds(make):
    async with KeepAlive(delay=0.02) as target, make(Policy(), max_connections=3) as http:
        responses = await asyncio.gather(*(http.get(f"{target.url}/{i}") for i in range(30)))
        assert [r.text for r in responses] == [f"/{i}" for i in range(30)]
        assert target.accepted == 3 and target.most_open == 3


@CLIENTS
async def test_a_connection_the_server_hung_up_is_never_reused(make):
    async with KeepAlive(hang_up_after=1) as target, make(Policy()) as http:
        for i in range(5):
            await asyncio.sleep(0.05)  # the server's FIN arrives while the connection is idle
            assert (await http.get(f"{target.url}/{i}")).text == f"/{i}"
        assert target.accepted == 5


@CLIENTS
async def test_a_full_pool_closes_an_idle_connection_for_another_origin(make):
    async with KeepAlive() as a, KeepAlive() as b, make(Policy(), max_connections=1) as http:
        assert (await http.get(f"{a.url}/a")).text == "/a"
        assert (await http.get(f"{b.url}/b")).text == "/b"
        await asyncio.sleep(0.05)
        assert (a.open, b.open) == (0, 1)


async def test_a_read_response_is_freed_without_the_garbage_collector():
    # httpx leaves every response in a reference cycle with its stream; Pitwall's clients break
    # it once the response is read, so the status writes' and receivers' responses go at once.
    import gc
    import weakref

    from pitwall.egress import Client

    async with Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, json={}))) as http:
        gc.disable()
        try:
            response = await http.get("http://api.example/")
            assert response.json() == {}
            gone = weakref.ref(response)
            del response
            assert gone() is None
        finally:
            gc.enable()
