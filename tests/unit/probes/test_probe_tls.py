"""TLS options against a local HTTPS server with a throwaway CA (made with the openssl CLI)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from pitwall.egress import Policy as AddressPolicy
from pitwall.errors import InvalidSpec
from pitwall.probes.client import client_key, make_client
from pitwall.probes.engine import run_check
from pitwall.probes.spec import parse_check

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    for name in ("ca", "server", "client"):
        run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key")
    run(
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=pitwall-test-ca",
        "-days",
        "1",
        "-out",
        "ca.crt",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(ext)
        run("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={name}", "-out", f"{name}.csr")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.crt",
        )
    return d


@pytest.fixture
def tls_secrets(pki):
    values = {
        ("ca", "ca.crt"): (pki / "ca.crt").read_text(),
        ("probe-client", "tls.crt"): (pki / "client.crt").read_text(),
        ("probe-client", "tls.key"): (pki / "client.key").read_text(),
    }

    async def lookup(name, key):
        return values.get((name, key))

    return lookup


async def https_server(serve, pki: Path, *, client_certs: bool) -> str:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.crt", pki / "server.key")
    if client_certs:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki / "ca.crt")

    async def is_up(request):
        return web.json_response({"status": "up"})

    app = web.Application()
    app.add_routes([web.get("/isUp", is_up)])
    return await serve(app, ssl_context=context) + "/isUp"


async def probe_once(url: str, tls: dict | None, secrets):
    check = parse_check({"target": {"url": url}, "tls": tls or {}})
    async with await make_client(check, secrets=secrets, policy=AddressPolicy()) as http:
        return await run_check(check, client=http, secrets=secrets)


async def test_verification_is_on_by_default(serve, pki, tls_secrets):
    url = await https_server(serve, pki, client_certs=False)

    result = await probe_once(url, None, tls_secrets)

    assert not result.ok
    assert "CERTIFICATE_VERIFY_FAILED" in result.failure.reason


@pytest.mark.parametrize(
    "tls", [{"caSecretRef": {"name": "ca", "key": "ca.crt"}}, {"insecureSkipVerify": True}]
)
async def test_custom_ca_or_skip_verify(serve, pki, tls_secrets, tls):
    url = await https_server(serve, pki, client_certs=False)

    assert (await probe_once(url, tls, tls_secrets)).ok


async def test_client_certificate(serve, pki, tls_secrets):
    url = await https_server(serve, pki, client_certs=True)
    ca = {"caSecretRef": {"name": "ca", "key": "ca.crt"}}

    without = await probe_once(url, ca, tls_secrets)
    with_cert = await probe_once(url, {**ca, "clientCertSecretRef": {"name": "probe-client"}}, tls_secrets)

    assert not without.ok
    assert with_cert.ok


async def test_missing_tls_secret_is_invalid_spec(tls_secrets):
    check = parse_check(
        {"target": {"url": "https://127.0.0.1/"}, "tls": {"clientCertSecretRef": {"name": "gone"}}}
    )

    with pytest.raises(InvalidSpec) as err:
        await make_client(check, secrets=tls_secrets, policy=AddressPolicy())

    assert err.value.reason == "SecretNotFound"


def test_checks_with_the_same_tls_and_proxy_share_a_client():
    def key(**spec):
        return client_key(parse_check({"target": {"url": "https://a.example"}, **spec}))

    assert key(interval="10s") == key(steps=[{"name": "x", "request": {"path": "/y"}}])
    assert key() != key(tls={"insecureSkipVerify": True})
    assert key() != key(proxy="http://proxy.example:3128")
