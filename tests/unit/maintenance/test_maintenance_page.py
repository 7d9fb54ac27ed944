"""The maintenance page server (real, on 127.0.0.1) and the Deployment/Service builders."""

import asyncio
import os
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pitwall.maintenance.page import (
    PageConfig,
    main,
    page_deployment,
    start_page,
    wants_html,
)
from pitwall.products import desired
from pitwall.vocabulary import ROLE_MAINTENANCE

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
CONFIG = PageConfig(title="Payments API <maintenance>", message="Back soon & better.", retry_after=1800)


@pytest.fixture
async def page():
    runner = await start_page("127.0.0.1", 0, CONFIG)
    port = runner.addresses[0][1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        yield client
    await runner.cleanup()


async def test_api_clients_get_503_with_retry_after_and_a_json_body(page):
    for accept in ("application/json", "*/*", None):
        response = await page.get("/v2/payments/123", headers={"Accept": accept} if accept else {})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1800"
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json() == {
            "status": "maintenance",
            "title": "Payments API <maintenance>",
            "message": "Back soon & better.",
            "until": None,
            "retryAfter": 1800,
        }


async def test_every_method_and_path_is_in_maintenance(page):
    response = await page.post("/orders", json={"amount": 10})
    assert response.status_code == 503
    assert (await page.delete("/accounts/7")).status_code == 503


async def test_browsers_get_a_small_accessible_html_page(page):
    response = await page.get("/", headers={"Accept": BROWSER})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1800"
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Accept" in response.headers["Vary"]
    body = response.text
    assert '<html lang="en">' in body
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in body
    assert "<main>" in body and "<h1>Payments API &lt;maintenance&gt;</h1>" in body
    assert "<p>Back soon &amp; better.</p>" in body
    assert "http://" not in body and "https://" not in body  # no external assets


async def test_healthz_is_ok_so_the_page_pods_become_ready(page):
    response = await page.get("/healthz")
    assert response.status_code == 200


async def test_retry_after_never_points_past_the_planned_end():
    until = datetime.now(UTC) + timedelta(minutes=10)
    runner = await start_page("127.0.0.1", 0, PageConfig(retry_after=1800, until=until))
    try:
        port = runner.addresses[0][1]
        async with httpx.AsyncClient() as client:
            api = await client.get(f"http://127.0.0.1:{port}/")
            browser = await client.get(f"http://127.0.0.1:{port}/", headers={"Accept": BROWSER})
    finally:
        await runner.cleanup()
    assert 0 < int(api.headers["Retry-After"]) <= 600
    assert api.json()["until"] == until.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f'<time datetime="{api.json()["until"]}">' in browser.text


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER, True),
        ("text/html", True),
        ("application/json, text/html;q=0.5", False),
        ("application/problem+json", False),
        ("text/html;q=0, */*", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_content_negotiation(accept, html):
    assert wants_html(accept) is html


def test_config_comes_from_the_environment():
    config = PageConfig.from_env(
        {
            "PITWALL_MAINTENANCE_TITLE": "Down",
            "PITWALL_MAINTENANCE_MESSAGE": "Soon",
            "PITWALL_MAINTENANCE_RETRY_AFTER": "5m",
            "PITWALL_MAINTENANCE_UNTIL": "2026-12-05T22:00:00Z",
        }
    )
    assert config == PageConfig("Down", "Soon", 300, datetime(2026, 12, 5, 22, tzinfo=UTC))
    assert PageConfig.from_env({"PITWALL_MAINTENANCE_RETRY_AFTER": "120"}).retry_after == 120
    assert PageConfig.from_env({}) == PageConfig()
    with pytest.raises(ValueError, match="PITWALL_MAINTENANCE_RETRY_AFTER"):
        PageConfig.from_env({"PITWALL_MAINTENANCE_RETRY_AFTER": "later"})


def test_main_refuses_bad_configuration(monkeypatch, capsys):
    monkeypatch.setenv("PITWALL_MAINTENANCE_UNTIL", "tomorrow")
    assert main(["--port", "0"]) == 2
    assert "PITWALL_MAINTENANCE_UNTIL" in capsys.readouterr().err


async def test_the_subcommand_serves_until_sigterm():
    with socket.socket() as probe:  # a free port for the child process
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "PITWALL_MAINTENANCE_TITLE": "Payments API maintenance",
        "PITWALL_MAINTENANCE_PORT": str(port),
        "PITWALL_MAINTENANCE_HOST": "127.0.0.1",
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from pitwall.maintenance.page import main; sys.exit(main([]))",
        env=env,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                try:
                    ready = await client.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the maintenance page did not start")
            assert ready.status_code == 200
            page = await client.get("/")
            assert page.status_code == 503 and page.json()["title"] == "Payments API maintenance"
        child.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(child.wait(), 5) == 0
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


PRODUCT = {
    "apiVersion": "pitwall.dev/v1alpha1",
    "kind": "ApiProduct",
    "metadata": {"name": "payments", "namespace": "shop"},
    "spec": {
        "displayName": "Payments API",
        "versions": [{"name": "v1", "port": 9000}, {"name": "v2"}],
        "maintenancePage": {
            "title": "Payments API maintenance",
            "message": "Back at midnight.",
            "retryAfter": "10m",
        },
    },
}
WINDOW = {
    "apiVersion": "pitwall.dev/v1alpha1",
    "kind": "MaintenanceWindow",
    "metadata": {"name": "cb-upgrade", "namespace": "shop", "uid": "0000-1111"},
}


def test_page_deployment_is_labelled_configured_and_locked_down():
    deployment = page_deployment(
        PRODUCT,
        "v1",
        WINDOW,
        "ghcr.io/pitwall/pitwall:0.1.0",
        "shop",
        until=datetime(2026, 12, 5, 23, tzinfo=UTC),
    )
    meta, spec = deployment["metadata"], deployment["spec"]
    assert meta["name"] == "payments-v1-maintenance" and meta["namespace"] == "shop"
    assert meta["labels"] == {
        "pitwall.dev/product": "payments",
        "pitwall.dev/version": "v1",
        "pitwall.dev/role": "maintenance-page",
        "app.kubernetes.io/managed-by": "pitwall",
        "pitwall.dev/maintenance-window": "cb-upgrade",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "pitwall.dev/v1alpha1",
            "kind": "MaintenanceWindow",
            "name": "cb-upgrade",
            "uid": "0000-1111",
            "controller": False,
            "blockOwnerDeletion": True,
        }
    ]
    # the product's Service, switched to the page, selects exactly these pods
    assert spec["selector"]["matchLabels"] == desired.selector("payments", "v1", ROLE_MAINTENANCE)
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"] == meta["labels"]
    container = pod["containers"][0]
    assert container["command"] == ["pitwall", "maintenance-page"]
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "PITWALL_MAINTENANCE_TITLE": "Payments API maintenance",
        "PITWALL_MAINTENANCE_MESSAGE": "Back at midnight.",
        "PITWALL_MAINTENANCE_RETRY_AFTER": "600",
        "PITWALL_MAINTENANCE_PORT": "9000",
        "PITWALL_MAINTENANCE_UNTIL": "2026-12-05T23:00:00Z",
    }
    assert container["ports"] == [{"name": "http", "containerPort": 9000}]  # the version's own port
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["limits"] == {"memory": "96Mi"}


def test_page_deployment_defaults_and_env_round_trip():
    bare = {"metadata": {"name": "search"}, "spec": {"versions": [{"name": "v1"}]}}
    container = page_deployment(bare, "v1", WINDOW, "pitwall:dev", "shop")["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert "PITWALL_MAINTENANCE_UNTIL" not in env
    assert container["ports"][0]["containerPort"] == 8080
    assert PageConfig.from_env(env) == PageConfig(title="search is down for maintenance", retry_after=1800)


def test_service_selector_switch_changes_only_the_role():
    product = {"kind": "ApiProduct", "metadata": {"name": "payments", "namespace": "bank", "uid": "u"}}
    normal = desired.service(product, "v2")
    during = desired.service(product, "v2", role=ROLE_MAINTENANCE)
    assert normal["spec"]["selector"] == {
        "pitwall.dev/product": "payments",
        "pitwall.dev/version": "v2",
        "pitwall.dev/role": "api",
    }
    assert during == {
        **normal,
        "spec": {
            **normal["spec"],
            "selector": {**normal["spec"]["selector"], "pitwall.dev/role": "maintenance-page"},
        },
    }
