"""HTML, SVG badge and graph: the page shows the model, escapes everything, loads nothing."""

from __future__ import annotations

import base64
import hashlib
import html as html_module
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from html.parser import HTMLParser

import pytest

from pitwall.statuspage.badge import badge
from pitwall.statuspage.graph_svg import layout, render_graph
from pitwall.statuspage.internal import internal_status
from pitwall.statuspage.model import public_status
from pitwall.statuspage.page import CSP, SCRIPT
from pitwall.statuspage.redact import Redactor
from pitwall.statuspage.render import render_public
from pitwall.statuspage.render_internal import render_internal

from .builders import CID_DOWN, INTERNAL, NOW, alert, marketplace, rule, window


class Elements(HTMLParser):
    """Tags with their attributes, in document order."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def having(self, attr: str) -> list[dict]:
        return [a for _, a in self.tags if attr in a]


def busy():
    return marketplace(
        payments_probe_state="Down",
        extra={
            "rules": [rule("revenue-critical-down", "critical", [alert("Probe", "payments-v2-isup")])],
            "windows": [
                window(
                    "core-banking-weekly",
                    "Scheduled",
                    [{"name": "payments", "versions": ["v1", "v2"], "effect": "Unavailable"}],
                    start=NOW + timedelta(days=2),
                    backends=["core-banking"],
                )
            ],
        },
    )


def test_page_shows_every_product_and_version_with_the_models_state():
    model = public_status(busy(), NOW)
    page = Elements(render_public(model))
    products = {a["data-product"]: a["data-state"] for a in page.having("data-product")}
    assert products == {p["id"]: p["state"] for p in model["products"]}
    versions = [(a["data-version"], a["data-state"]) for a in page.having("data-version")]
    assert versions == [(v["name"], v["state"]) for p in model["products"] for v in p["versions"]]
    assert [a["data-incident"] for a in page.having("data-incident")] == ["payments"]
    assert [a["data-window"] for a in page.having("data-window")] == ["scheduled"]


def test_page_is_semantic_and_self_contained():
    html = render_public(public_status(busy(), NOW), refresh=7)
    tags = [t for t, _ in Elements(html).tags]
    for tag in ("header", "nav", "main", "section", "article", "h1", "h2", "footer"):
        assert tag in tags, tag
    assert tags.count("h1") == 1
    assert '<html lang="en">' in html and 'name="viewport"' in html
    assert '<meta http-equiv="refresh" content="7">' in html and 'data-refresh="7"' in html
    # nothing is loaded from anywhere: no src, no stylesheet link, no URL but the SVG namespace
    assert not [a for _, a in Elements(html).tags if "src" in a]
    assert all(
        a["href"].startswith("data:") for t, a in Elements(html).tags if t == "link"
    )  # no favicon fetch
    assert "@import" not in html and "url(" not in html
    assert re.findall(r"https?://[^\s\"')]+", html) == []


def test_csp_allows_exactly_the_inline_script():
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in CSP and "default-src 'none'" in CSP
    assert f"<script>{SCRIPT}</script>" in render_public(public_status(busy(), NOW))


def test_text_is_escaped():
    snap = marketplace()
    snap.products[0]["spec"]["displayName"] = '<img src=x onerror="alert(1)">'
    html = render_public(public_status(snap, NOW))
    assert "<img" not in html
    shown = re.search(r'<span class="pname">([^<]*)</span>', html).group(1)
    assert html_module.unescape(shown) == '<img src=x onerror="alert(1)">'  # shown as text, once


def test_environment_navigation_marks_the_current_choice():
    snap = marketplace()
    nav = [
        a
        for t, a in Elements(render_public(public_status(snap, NOW, "sandbox"))).tags
        if t == "a" and a.get("href", "").startswith("/")
    ]
    assert [(a["href"], "aria-current" in a) for a in nav] == [
        ("/", False),
        ("/?env=live", False),
        ("/?env=sandbox", True),
        ("/api/v1/status?env=sandbox", False),
        ("/api/v1/incidents", False),
        ("/feed.atom", False),
    ]


def test_uptime_bars_have_a_text_alternative_and_a_tooltip_per_day():
    html = render_public(public_status(marketplace(), NOW))
    figures = re.findall(r'role="img" aria-label="([^"]+)"', html)
    assert figures[0].startswith("Payments API: 99.") and figures[0].endswith("over the last 90 days")
    assert "Thu 5 Nov: 100% (5760/5760 checks passed)" in html
    assert len(re.findall(r'class="bar l-', html)) == 2 * 90


def test_public_html_leaks_nothing_internal():
    html = render_public(public_status(busy(), NOW))
    assert [s for s in INTERNAL if s in html] == []


def test_internal_page_shows_what_support_needs():
    snap = busy()
    html = render_internal(internal_status(snap, NOW))
    for needle in (
        CID_DOWN,
        "core-banking",
        "reference-data-store",
        "payments-v2-isup",
        "revenue-critical-down",
        "http://payments-v2.marketplace.svc",
        "acme-fintech",
        "core-banking-weekly",
    ):
        assert needle in html, needle
    assert "<svg" in html and 'aria-labelledby="graph-title"' in html


def test_internal_page_escapes_each_text_once():
    model = internal_status(busy(), NOW)
    model["probes"][0].update(product="R&D", version="v<2>")
    html = render_internal(model)
    assert "R&amp;D v&lt;2&gt;" in html and "&amp;amp;" not in html


def test_internal_model_matrix_and_graph():
    model = internal_status(busy(), NOW)
    matrix = model["matrix"]
    assert matrix["columns"] == ["payments", "sandbox-payments", "reference-data"]  # by display name
    rows = {r["backend"]: r["cells"] for r in matrix["rows"]}
    assert rows["reference-data-store"][0] == {
        "criticality": "degradable",
        "effect": "Degraded",
        "active": False,
    }
    assert rows["identity"][2]["effect"] == "None" and rows["core-banking"][1] is None
    kinds = {n["id"]: n["kind"] for n in model["graph"]["nodes"]}
    assert kinds["consumer:marketplace/acme-fintech"] == "consumer"
    assert {(e["from"], e["to"], e["kind"]) for e in model["graph"]["edges"]} >= {
        ("product:marketplace/payments", "backend:marketplace/core-banking", "critical"),
        ("consumer:marketplace/globex-wallet", "product:marketplace/payments", "uses"),
    }
    [probe] = [p for p in model["probes"] if p["name"] == "payments-v2-isup"]
    assert probe["lastFailure"]["correlationId"] == CID_DOWN and probe["product"] == "payments"
    assert [a["key"] for a in model["alerts"]] == ["k-probe-payments-v2-isup"]


def test_graph_svg_is_well_formed_and_places_columns_left_to_right():
    graph = internal_status(busy(), NOW)["graph"]
    svg = render_graph(graph)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and root.get("role") == "img"
    where = layout(graph)
    assert (
        where["consumer:marketplace/acme-fintech"][0]
        < where["product:marketplace/payments"][0]
        < where["backend:marketplace/core-banking"][0]
    )
    assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) == len(graph["edges"])


def test_badge_is_an_accessible_svg():
    svg = badge("Payments <API>", "outage")
    root = ET.fromstring(svg)
    assert root.get("aria-label") == "Payments <API>: Outage"
    assert "#cf222e" in svg and int(root.get("width")) > 100


def test_redactor_replaces_whole_names_and_keeps_times():
    redact = Redactor(busy())
    text = "Saturday 22:00:00 to 23:30, identity verification for core banking; core-banking-weekly"
    assert redact(text) == (
        "Saturday 22:00:00 to 23:30, a provider system verification for a provider system; [internal]"
    )
    assert (
        redact("fd00::1 and 2001:db8:0:0:1:0:0:1 and localhost:8080")
        == "[address] and [address] and [internal host]"
    )


@pytest.mark.parametrize(
    "text, shown",
    [
        (
            "Core-Banking and CORE BANKING and core\nbanking down",
            "a provider system and a provider system and a provider system down",
        ),
        ("IDENTITY is slow", "a provider system is slow"),
        (
            "failover to db01.corp.acme.example:5432 and mainframe-gw.acme.com",
            "failover to [host] and [host]",
        ),
        (
            "built on Node.js, see config.yaml, v2.1.3 and e.g. i.e.",
            "built on Node.js, see config.yaml, v2.1.3 and e.g. i.e.",
        ),
        ("Payments API is back", "Payments API is back"),
    ],
)
def test_redactor_covers_display_names_case_variants_and_hosts(text, shown):
    assert Redactor(busy())(text) == shown
