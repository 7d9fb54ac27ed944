"""The address policy: pure verdicts, and enforcement inside the probe client."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from aiohttp import web

from pitwall.egress import Policy as AddressPolicy
from pitwall.errors import InvalidSpec
from pitwall.probes.client import make_client
from pitwall.probes.engine import run_check
from pitwall.probes.spec import parse_check

from .conftest import secrets


def ip(text: str):
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("host", "addresses", "reason"),
    [
        (
            "169.254.169.254",
            [],
            "169.254.169.254 is a link-local/cloud-metadata address and is denied by policy",
        ),
        (
            "[fd00:ec2::254]",
            [],
            "fd00:ec2::254 is a link-local/cloud-metadata address and is denied by policy",
        ),
        ("fe80::1", [], "fe80::1 is a link-local/cloud-metadata address and is denied by policy"),
        (
            "::ffff:169.254.169.254",
            [],
            "::ffff:a9fe:a9fe (that is 169.254.169.254) is a link-local/cloud-metadata address and is denied by policy",
        ),
        (
            "Metadata.Google.Internal.",
            [],
            "metadata.google.internal is a cloud-metadata host and is denied by policy",
        ),
        (
            "evil.example",
            [ip("203.0.113.7"), ip("169.254.169.254")],
            "evil.example resolves to 169.254.169.254, which is a link-local/cloud-metadata address and is denied by policy",
        ),
        ("127.0.0.1", [], None),
        ("localhost", [ip("127.0.0.1"), ip("::1")], None),
        ("api.example.com", [ip("203.0.113.7")], None),
    ],
)
def test_default_policy(host, addresses, reason):
    assert AddressPolicy().verdict(host, addresses) == reason


def test_allowlist_and_denylist():
    policy = AddressPolicy.from_lists(
        allow=["10.0.0.0/8", "api.example.com", "169.254.10.5"], deny=["10.9.0.0/16", "blocked.example"]
    )

    assert policy.verdict("10.1.2.3") is None
    assert policy.verdict("169.254.10.5") is None  # an allowlist entry may re-allow one default
    assert (
        policy.verdict("169.254.169.254")
        == "169.254.169.254 is a link-local/cloud-metadata address and is denied by policy"
    )
    assert policy.verdict("10.9.1.1") == "10.9.1.1 is denied by the operator's address policy (denylist)"
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
    assert "link-local/cloud-metadata" in policy.verdict("api.example.com", [ip("169.254.169.254")])


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/computeMetadata/v1/"]
)
async def test_probe_to_metadata_is_refused(client, url):
    with pytest.raises(InvalidSpec) as err:
        await run_check(parse_check({"target": {"url": url}}), client=client, secrets=secrets)

    assert err.value.reason == "TargetDenied"
    assert "denied by policy" in err.value.message


async def test_resolved_addresses_are_judged_at_connect(demo):
    """A name is judged by what it resolves to, when the connection is made."""
    port = demo.url.rsplit(":", 1)[1]
    check = parse_check({"target": {"url": f"http://localhost:{port}/isUp"}})
    policy = AddressPolicy.from_lists(deny=["127.0.0.0/8", "::1"])
    async with await make_client(check, secrets=secrets, policy=policy) as http:
        with pytest.raises(InvalidSpec) as err:
            await run_check(check, client=http, secrets=secrets)

    assert err.value.reason == "TargetDenied"
    assert err.value.message.startswith("localhost resolves to ")


async def test_redirect_to_metadata_is_refused(serve, client):
    async def bounce(request):
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    app = web.Application()
    app.add_routes([web.get("/bounce", bounce)])
    url = await serve(app)

    with pytest.raises(InvalidSpec) as err:
        await run_check(
            parse_check({"target": {"url": url + "/bounce"}, "followRedirects": True}),
            client=client,
            secrets=secrets,
        )

    assert err.value.reason == "TargetDenied"


async def test_proxy_is_used_and_the_target_still_judged():
    """The proxy dials the target, so the target's name or literal address is judged up front."""
    lines = []

    async def proxy(reader, writer):
        lines.append((await reader.readline()).decode().strip())
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    proxy_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        allowed = parse_check({"target": {"url": "http://api.example.test/isUp"}, "proxy": proxy_url})
        denied = parse_check({"target": {"url": "http://169.254.169.254/"}, "proxy": proxy_url})
        async with await make_client(allowed, secrets=secrets, policy=AddressPolicy()) as http:
            result = await run_check(allowed, client=http, secrets=secrets)
            with pytest.raises(InvalidSpec):
                await run_check(denied, client=http, secrets=secrets)
    finally:
        server.close()
        await server.wait_closed()

    assert result.ok
    assert lines == ["GET http://api.example.test/isUp HTTP/1.1"]
