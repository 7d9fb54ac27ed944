"""The status page in a real headless Chromium, served by the real operator from its watch caches.

A small marketplace (three backends, a public live product with two versions, a public sandbox
product, an internal product, probes against the demo API, a critical alert rule, a scheduled
window) runs in the test namespace. The browser checks what a visitor sees, that it matches
the JSON API, that an outage appears at the page's next refresh without a reload, and that
nothing internal leaks; screenshots at desktop and phone widths go to ``artifacts/statuspage/``.

Debian's ``chromium`` (``/usr/bin/chromium``) is driven by Playwright for Python; Playwright's
own browser download is never used.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT, Operator, eventually
from tests.helpers.demo import DemoAPI
from tests.helpers.receiver import Recorder
from tests.integration.test_products import ready

ARTIFACTS = ROOT / "artifacts" / "statuspage"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "internal-view-token-for-tests"
REFRESH = 2
BACKENDS = ("core-banking", "identity", "reference-data-store")
CONSUMERS = ("acme-fintech", "globex-wallet", "initech-insurance")
API = "pitwall.dev/v1alpha1"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("PITWALL_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page_operator(cluster, namespace, tmp_path):
    op = Operator(
        cluster,
        tmp_path,
        namespace=namespace,
        extra_env={"PITWALL_STATUSPAGE_REFRESH": str(REFRESH), "PITWALL_INTERNAL_TOKEN": TOKEN},
    ).start()
    yield op
    op.stop()


@pytest.fixture
def demo():
    with DemoAPI() as api:
        yield api


# -- the marketplace --------------------------------------------------------------------------
def backend(name: str, demo: DemoAPI) -> dict:
    return {
        "apiVersion": API,
        "kind": "Backend",
        "metadata": {"name": name},
        "spec": {
            "displayName": name.replace("-", " ").title(),
            "owner": {"team": name, "contact": f"{name}-oncall@example.com"},
            "health": {"url": f"{demo.url}/backends/{name}/health", "interval": "1s", "timeout": "1s"},
        },
    }


def api_product(name: str, display: str, versions: list[dict], **spec) -> dict:
    return {
        "apiVersion": API,
        "kind": "ApiProduct",
        "metadata": {"name": name},
        "spec": {
            "displayName": display,
            "owner": {"team": "payments", "contact": "payments-oncall@example.com"},
            "versions": versions,
            **spec,
        },
    }


def probe(name: str, url: str, product: str, version: str) -> dict:
    return {
        "apiVersion": API,
        "kind": "Probe",
        "metadata": {
            "name": name,
            "labels": {
                "pitwall.dev/product": product,
                "pitwall.dev/version": version,
                "tier": "revenue-critical",
            },
        },
        "spec": {"target": {"url": url}, "interval": "1s", "timeout": "1s", "failureThreshold": 2},
    }


def build_marketplace(kubectl, demo: DemoAPI, receiver: Recorder) -> None:
    for name in BACKENDS:
        kubectl.apply(backend(name, demo))
    kubectl.apply(
        api_product(
            "payments",
            "Payments API",
            [
                {
                    "name": "v1",
                    "lifecycle": "deprecated",
                    "sunsetAt": "2027-03-01T00:00:00Z",
                    "image": "registry.example.com/payments:1.9.3",
                },
                {"name": "v2", "image": "registry.example.com/payments:2.3.0"},
            ],
            description="Initiate and track payments from customer accounts.",
            environment="live",
            public=True,
            backends=[
                {"name": "core-banking"},
                {"name": "identity"},
                {"name": "reference-data-store", "criticality": "degradable"},
            ],
            consumers=[
                {"name": "acme-fintech", "versions": ["v2"], "contact": {"email": "ops@acme.example"}},
                {"name": "globex-wallet", "versions": ["v1"], "contact": {"email": "api@globex.example"}},
            ],
        )
    )
    kubectl.apply(
        api_product(
            "payments-sandbox",
            "Payments API (sandbox)",
            [{"name": "v2", "image": "registry.example.com/payments:2.3.0"}],
            environment="sandbox",
            public=True,
            backends=[{"name": "identity", "criticality": "optional"}],
        )
    )
    kubectl.apply(
        api_product(
            "reference-data",
            "Reference Data API",
            [{"name": "v1", "image": "registry.example.com/refdata:1.4.0"}],
            public=False,
            backends=[{"name": "reference-data-store"}],
            consumers=[{"name": "initech-insurance", "contact": {"email": "platform@initech.example"}}],
        )
    )
    kubectl.apply(probe("payments-v2-isup", f"{demo.url}/isUp", "payments", "v2"))
    kubectl.apply(probe("payments-v1-health", f"{demo.url}/backends/payments-v1/health", "payments", "v1"))
    kubectl.apply(probe("sandbox-isup", f"{demo.url}/backends/sandbox/health", "payments-sandbox", "v2"))
    kubectl.apply(
        {
            "apiVersion": API,
            "kind": "AlertRule",
            "metadata": {"name": "revenue-critical-down"},
            "spec": {
                "severity": "critical",
                "summary": "{kind} {name} is failing",
                "selector": {"kinds": ["Probe"], "matchLabels": {"tier": "revenue-critical"}},
                "when": {"condition": "Ready", "status": "False", "for": "0s"},
                "receivers": [{"name": "ops", "type": "webhook", "url": receiver.url + "/ops"}],
            },
        }
    )
    start = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    kubectl.apply(
        {
            "apiVersion": API,
            "kind": "MaintenanceWindow",
            "metadata": {"name": "core-banking-upgrade"},
            "spec": {
                "reason": "Scheduled upgrade of the payment platform",
                "schedule": {"start": start, "duration": "2h"},
                "targets": {"backends": ["core-banking"]},
                "notice": {"leadTime": "1h", "notifyConsumers": False},
            },
        }
    )


# -- helpers ----------------------------------------------------------------------------------
def fetch(url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def status_json(base: str, query: str = "") -> dict:
    code, body = fetch(f"{base}/api/v1/status{query}")
    assert code == 200, body
    return json.loads(body)


def product_in(model: dict, product_id: str) -> dict:
    return next(p for p in model["products"] if p["id"] == product_id)


def version_state(model: dict, product_id: str, version: str) -> str:
    return next(v["state"] for v in product_in(model, product_id)["versions"] if v["name"] == version)


def page_states(page) -> dict:
    """What the browser shows: product and version states from the rendered DOM."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-product]')].map(p =>
        [p.dataset.product, {state: p.dataset.state, name: p.querySelector('.pname').textContent,
         versions: Object.fromEntries([...p.querySelectorAll('[data-version]')].map(v =>
             [v.dataset.version, v.dataset.state]))}]))""")


def json_states(model: dict) -> dict:
    return {
        p["id"]: {
            "state": p["state"],
            "name": p["displayName"],
            "versions": {v["name"]: v["state"] for v in p["versions"]},
        }
        for p in model["products"]
    }


def internal_strings(kubectl, demo: DemoAPI) -> list[str]:
    """Names, hosts and ids that must never reach the public page."""
    found = [
        *BACKENDS,
        *CONSUMERS,
        "ops@acme.example",
        "api@globex.example",
        "payments-oncall@example.com",
        "payments-v2-isup",
        "payments-v1-health",
        "sandbox-isup",
        "revenue-critical-down",
        "core-banking-upgrade",
        "reference-data",
        "registry.example.com",
        kubectl.namespace,
        "svc",
        "127.",
    ]
    for item in kubectl.list("probes"):
        status = item.get("status") or {}
        for entry in (status.get("lastRun"), status.get("lastFailure")):
            if entry and entry.get("correlationId"):
                found.append(entry["correlationId"])
    found += [r["correlationId"] for r in demo.requests() if r.get("correlationId")]
    return found


def assert_no_leaks(texts: list[str], forbidden: list[str]) -> None:
    everything = "\n".join(texts)
    leaked = sorted({s for s in forbidden if s and s in everything})
    assert not leaked, f"internal names on the public page: {leaked}"


def public_texts(base: str, page) -> list[str]:
    texts = [page.content()]
    for path in (
        "/",
        "/?env=live",
        "/?env=sandbox",
        "/api/v1/status",
        "/api/v1/status?env=sandbox",
        "/api/v1/products/payments",
        "/api/v1/products/payments-sandbox",
        "/badge/payments.svg",
    ):
        texts.append(fetch(base + path)[1])
    return texts


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


# -- the test ---------------------------------------------------------------------------------
def test_status_page_in_a_real_browser(page_operator, kubectl, demo, browser):
    base = f"http://127.0.0.1:{page_operator.statuspage_port}"
    eventually(
        lambda: fetch(base + "/healthz")[0] == 200,
        timeout=10,
        message="the operator serves the status page (statuspage.setup registered by wiring)",
    )
    with Recorder() as receiver:
        build_marketplace(kubectl, demo, receiver)
        for name in ("payments", "payments-sandbox", "reference-data"):
            eventually(lambda n=name: ready(kubectl, n), timeout=60, message=f"{name} Ready")
        healthy = eventually(
            lambda: (
                lambda m: (
                    m
                    if [p["state"] for p in m["products"]] == ["operational"] * 2
                    and m["maintenance"]["upcoming"]
                    else None
                )
            )(status_json(base)),
            timeout=60,
            message="every public product operational, the window listed",
        )

        # -- the example marketplace renders -----------------------------------------------------
        desktop = browser.new_page(viewport={"width": 1280, "height": 800})
        desktop.goto(base + "/")
        assert desktop.locator("h1").inner_text() == "All APIs operational"
        assert page_states(desktop) == json_states(healthy)
        assert set(page_states(desktop)) == {"payments", "payments-sandbox"}  # reference-data is internal
        assert page_states(desktop)["payments"]["versions"] == {"v1": "operational", "v2": "operational"}
        assert "Deprecated: sunset on" in desktop.locator('[data-version="v1"]').inner_text()
        # the scheduled window is listed under maintenance, with the product its backend serves
        scheduled = desktop.locator('section[aria-labelledby="h-maintenance"] [data-window="scheduled"]')
        assert scheduled.count() == 1
        assert "Scheduled upgrade of the payment platform" in scheduled.inner_text()
        assert "Payments API (v1, v2)" in scheduled.inner_text()
        window = healthy["maintenance"]["upcoming"][0]
        assert window["products"][0]["id"] == "payments" and window["start"] > healthy["generatedAt"]
        # the environment filter
        desktop.goto(base + "/?env=sandbox")
        assert set(page_states(desktop)) == {"payments-sandbox"}
        desktop.get_by_role("link", name="All", exact=True).click()
        desktop.wait_for_url(base + "/")
        assert set(page_states(desktop)) == {"payments", "payments-sandbox"}
        assert_no_leaks(public_texts(base, desktop), internal_strings(kubectl, demo))

        # -- an outage on a probe shows up at the next refresh, without a reload ----------------
        desktop.evaluate("window.__sameDocument = true")
        demo.admin("down", what="isUp")
        down = eventually(
            lambda: (
                lambda m: m if version_state(m, "payments", "v2") == "outage" and m["incidents"] else None
            )(status_json(base)),
            timeout=30,
            message="outage and incident in JSON",
        )
        refreshes = int(desktop.evaluate("document.body.dataset.refreshes"))
        desktop.wait_for_function(
            """() => {
            const v2 = document.querySelector('[data-product="payments"] [data-version="v2"]');
            return v2 && v2.dataset.state === 'outage' && document.querySelector('[data-incident="payments"]');
        }""",
            timeout=(3 * REFRESH + 5) * 1000,
        )
        assert int(desktop.evaluate("document.body.dataset.refreshes")) <= refreshes + 1  # within one refresh
        assert desktop.evaluate("window.__sameDocument === true")  # no reload
        assert desktop.locator("h1").inner_text() == "Partial outage"
        v2 = desktop.locator('[data-product="payments"] [data-version="v2"]').inner_text()
        assert "Outage" in v2 and "Not responding to our checks" in v2
        incident = desktop.locator('[data-incident="payments"]').inner_text()
        assert "Payments API: outage" in incident and "Our checks of Payments API v2 are failing" in incident
        assert down["incidents"][0]["title"] in incident

        # -- the JSON API matches the page ------------------------------------------------------
        now_json = status_json(base)
        assert page_states(desktop) == json_states(now_json)
        assert [i["title"] for i in now_json["incidents"]] == desktop.locator(
            "[data-incident] h3"
        ).all_inner_texts()
        code, one = fetch(base + "/api/v1/products/payments")
        assert code == 200 and json.loads(one)["state"] == "outage"
        assert fetch(base + "/api/v1/products/reference-data")[0] == 404
        code, svg = fetch(base + "/badge/payments.svg")
        assert code == 200 and "Payments API: Outage" in svg
        assert fetch(base + "/badge/reference-data.svg")[0] == 404

        # -- nothing internal on the public page, now that failures carry correlation ids --------
        failure = kubectl.get("probe", "payments-v2-isup")["status"]["lastFailure"]
        assert failure["correlationId"]
        forbidden = internal_strings(kubectl, demo)
        assert failure["correlationId"] in forbidden
        assert_no_leaks(public_texts(base, desktop), forbidden)

        # -- screenshots at desktop and phone widths -------------------------------------------
        screenshot(desktop, "status-desktop")
        phone = browser.new_page(
            viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
        )
        phone.goto(base + "/")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        assert page_states(phone) == json_states(status_json(base))
        screenshot(phone, "status-phone")

        # -- the internal view: its own port, behind the token ---------------------------------
        internal = f"http://127.0.0.1:{page_operator.internal_port}"
        assert fetch(internal + "/")[0] == 401
        assert fetch(internal + "/api/v1/internal", {"Authorization": "Bearer wrong"})[0] == 401
        code, body = fetch(internal + "/api/v1/internal", {"Authorization": f"Bearer {TOKEN}"})
        assert code == 200
        view = json.loads(body)
        assert {b["name"] for b in view["backends"]} == set(BACKENDS)
        [probe_row] = [p for p in view["probes"] if p["name"] == "payments-v2-isup"]
        assert probe_row["state"] == "Down" and probe_row["lastFailure"]["correlationId"]
        inside = browser.new_page(viewport={"width": 1280, "height": 800})
        inside.goto(f"{internal}/?token={TOKEN}")
        text = inside.locator("main").inner_text()
        assert probe_row["lastFailure"]["correlationId"] in text and "core-banking" in text
        assert inside.locator("#graph svg [data-node]").count() >= 3 + 3 + 3  # consumers, products, backends
        matrix = inside.locator("#matrix table").inner_text()
        assert "Unavailable" in matrix and "Degraded" in matrix
        screenshot(inside, "internal-desktop")

        demo.admin("up")
        eventually(
            lambda: version_state(status_json(base), "payments", "v2") == "operational",
            timeout=30,
            message="back to operational",
        )
