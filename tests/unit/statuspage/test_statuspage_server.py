"""Both apps over real watch caches (``Store``), served on 127.0.0.1 by aiohttp's test server."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pitwall.controller import Store
from pitwall.runtime import Settings
from pitwall.statuspage import setup
from pitwall.statuspage.server import StatusPage

from .builders import CID_DOWN, INTERNAL, NOW, alert, marketplace, rule, window


def runtime(token: str | None = None, **ports) -> SimpleNamespace:
    snap = marketplace(
        payments_probe_state="Down",
        extra={
            "rules": [rule("revenue-critical-down", "critical", [alert("Probe", "payments-v2-isup")])],
            "windows": [
                window(
                    "core-banking-weekly",
                    "Scheduled",
                    [{"name": "payments", "versions": ["v2"], "effect": "Unavailable"}],
                    start=NOW + timedelta(days=1),
                    backends=["core-banking"],
                )
            ],
        },
    )
    snap.probes[1]["metadata"]["labels"]["pitwall.dev/version"] = "v1"  # the OAuth flow checks v1
    stores = {
        kind: Store(kind) for kind in ("ApiProduct", "Probe", "Backend", "AlertRule", "MaintenanceWindow")
    }
    for kind, objects in (
        ("ApiProduct", snap.products),
        ("Probe", snap.probes),
        ("Backend", snap.backends),
        ("AlertRule", snap.rules),
        ("MaintenanceWindow", snap.windows),
    ):
        for obj in objects:
            stores[kind].update("ADDED", obj)
    return SimpleNamespace(stores=stores, statuspage=None, settings=Settings(internal_token=token, **ports))


async def client(app) -> TestClient:
    test_client = TestClient(TestServer(app, host="127.0.0.1"))
    await test_client.start_server()
    return test_client


@pytest.fixture
async def public():
    page = StatusPage(runtime(), refresh=5, clock=lambda: NOW)
    test_client = await client(page.public_app())
    yield test_client
    await test_client.close()


async def test_html_and_json_agree(public):
    html = await (await public.get("/")).text()
    data = await (await public.get("/api/v1/status")).json()
    assert data["overall"]["state"] == "outage"
    for product in data["products"]:
        assert f'data-product="{product["id"]}" data-state="{product["state"]}"' in html
    assert data["incidents"][0]["title"] in html


async def test_headers(public):
    response = await public.get("/")
    assert response.headers["Content-Type"].startswith("text/html")
    assert "script-src 'sha256-" in response.headers["Content-Security-Policy"]
    response = await public.get("/api/v1/status")
    assert (
        response.headers["Access-Control-Allow-Origin"] == "*"
        and response.headers["Cache-Control"] == "no-store"
    )


async def test_environment_filter_and_bad_value(public):
    live = await (await public.get("/api/v1/status?env=live")).json()
    assert [p["id"] for p in live["products"]] == ["payments"]
    assert (await public.get("/api/v1/status?env=prod")).status == 400
    assert (await public.get("/?env=prod")).status == 400
    assert 'data-product="sandbox-payments"' not in await (await public.get("/?env=live")).text()


async def test_product_endpoint(public):
    response = await public.get("/api/v1/products/payments")
    assert response.status == 200
    body = await response.json()
    assert body["id"] == "payments" and body["state"] == "outage" and len(body["incidents"]) == 1
    assert [w["products"][0]["versions"] for w in body["maintenance"]["upcoming"]] == [["v2"]]
    for name in ("reference-data", "nope"):
        response = await public.get(f"/api/v1/products/{name}")
        assert response.status == 404 and "error" in await response.json()


async def test_badges(public):
    response = await public.get("/badge/payments.svg")
    assert response.status == 200 and response.headers["Content-Type"].startswith("image/svg+xml")
    svg = await response.text()
    assert "Payments API: Outage" in svg
    for name in ("reference-data", "nope"):
        response = await public.get(f"/badge/{name}.svg")
        assert response.status == 404 and "not found" in await response.text()


async def test_no_internal_view_and_no_leaks_on_the_public_port(public):
    assert (await public.get("/api/v1/internal")).status == 404
    bodies = [
        await (await public.get(path)).text()
        for path in (
            "/",
            "/?env=live",
            "/?env=sandbox",
            "/api/v1/status",
            "/api/v1/status?env=live",
            "/api/v1/products/payments",
            "/badge/payments.svg",
            "/healthz",
        )
    ]
    everything = "\n".join(bodies)
    assert [s for s in INTERNAL if s in everything] == []


async def test_internal_view_needs_the_token():
    page = StatusPage(runtime(token="s3cret"), clock=lambda: NOW)
    internal = await client(page.internal_app())
    try:
        assert (await internal.get("/")).status == 401
        assert (
            await internal.get("/api/v1/internal", headers={"Authorization": "Bearer wrong"})
        ).status == 401
        assert (await internal.get("/healthz")).status == 200
        response = await internal.get("/api/v1/internal", headers={"Authorization": "Bearer s3cret"})
        assert response.status == 200
        assert json.dumps(await response.json()).count(CID_DOWN) >= 1
        html = await (await internal.get("/?token=s3cret")).text()
        assert CID_DOWN in html and "core-banking" in html
    finally:
        await internal.close()


async def test_internal_view_without_a_token_is_open_on_its_own_port():
    internal = await client(StatusPage(runtime(), clock=lambda: NOW).internal_app())
    try:
        assert (await internal.get("/api/v1/internal")).status == 200
    finally:
        await internal.close()


async def test_start_binds_both_ports_and_stop_releases_them():
    from pitwall_testing.cluster import free_port

    ports = {"statuspage_port": free_port(), "internal_port": free_port()}
    rt = runtime(statuspage_host="127.0.0.1", **ports)
    setup(rt)
    page = rt.statuspage
    await page.start()
    try:
        async with aiohttp.ClientSession() as session:
            for port in ports.values():
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
    finally:
        await page.stop()
    assert page.runners == {}


def test_setup_skips_when_both_ports_are_zero():
    rt = runtime(statuspage_port=0, internal_port=0)
    setup(rt)
    assert rt.statuspage is None


@pytest.mark.parametrize("token, internal_host", [(None, "127.0.0.1"), ("s3cret", "0.0.0.0")])
async def test_internal_view_leaves_this_host_only_with_a_token(token, internal_host):
    from pitwall_testing.cluster import free_port

    rt = runtime(
        token=token, statuspage_host="0.0.0.0", statuspage_port=free_port(), internal_port=free_port()
    )
    setup(rt)
    page = rt.statuspage
    await page.start()
    try:
        assert [a[0] for a in page.runners["public"].addresses] == ["0.0.0.0"]
        assert [a[0] for a in page.runners["internal"].addresses] == [internal_host]
    finally:
        await page.stop()
