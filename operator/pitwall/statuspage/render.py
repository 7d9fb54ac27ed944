"""The public page as server-rendered HTML, from the dict :func:`.model.public_status` returns.

It renders only that dict (never the objects), so the page shows exactly what the JSON API
returns, and nothing the model left out can slip into it. Elements carry ``data-product``,
``data-version`` and ``data-state`` so the page can be checked against the JSON by a browser.
Order follows what a visitor asks first: is it up (banner), what is wrong (incidents), what is
planned (maintenance), then each API with its versions and 90-day uptime.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from ..durations import parse_time
from .page import ago, document, esc, icon, when
from .uptime import percent

ENV_LABELS = {None: "All", "live": "Live", "sandbox": "Sandbox"}


def render_public(model: dict, *, title: str = "API status", refresh: int = 15) -> str:
    now = parse_time(model["generatedAt"])
    env = model.get("environment")
    overall = model["overall"]
    main = "\n".join([
        f'<section class="overall s-{esc(overall["state"])}" aria-labelledby="h-overall">{icon(overall["state"])}'
        f'<div><h1 id="h-overall">{esc(overall["headline"])}</h1>'
        f'<p>{len(model["products"])} API{"" if len(model["products"]) == 1 else "s"}'
        f'{" in " + esc(ENV_LABELS.get(env, env)).lower() if env else ""}</p></div></section>',
        _incidents(model["incidents"], now),
        _maintenance(model["maintenance"]),
        _products(model["products"], now),
    ])
    footer = (f'<p>Last updated <time id="updated" datetime="{esc(model["generatedAt"])}">'
              f'{esc(now.strftime("%H:%M:%S"))} UTC</time>; this page refreshes every {refresh} seconds.</p>'
              f'<p>Machine-readable: <a href="/api/v1/status{_env_query(env)}">/api/v1/status</a>. '
              'Badges: <code>/badge/NAME.svg</code>.</p>')
    page_title = f"{overall['headline']} - {title}"
    return document(title=page_title, heading=title, nav=_nav(env, model.get("environments") or []), main=main,
                    footer=footer, refresh=refresh)


def _env_query(env: str | None) -> str:
    return f"?env={quote(env)}" if env else ""


def _nav(env: str | None, present: list[str]) -> str:
    choices = [None, *[e for e in ("live", "sandbox") if e in present or e == env]]
    if len(choices) <= 2 and env is None:
        return ""   # one environment only: nothing to filter
    items = []
    for choice in choices:
        current = ' aria-current="page"' if choice == env else ""
        items.append(f'<li><a href="/{_env_query(choice)}"{current}>{esc(ENV_LABELS[choice])}</a></li>')
    return f'<nav aria-label="Environment"><ul>{"".join(items)}</ul></nav>'


def _incidents(incidents: list[dict], now: datetime) -> str:
    if not incidents:
        body = '<p class="none">No current incidents.</p>'
    else:
        body = "\n".join(
            f'<article class="card incident sev-{esc(i["severity"])}" data-incident="{esc(i["product"])}">'
            f'<h3>{esc(i["title"])}</h3><p class="desc">{esc(i["summary"])}</p>'
            f'<p class="meta"><strong>{esc(i["statusText"])}</strong>'
            + (f' Since {when(i["since"])} ({esc(ago(i["since"], now))}).' if i.get("since") else "")
            + "</p></article>" for i in incidents)
    return f'<section aria-labelledby="h-incidents"><h2 id="h-incidents">Current incidents</h2>\n{body}</section>'


def _window(window: dict) -> str:
    products = ", ".join(esc(p["displayName"]) + (f' ({esc(", ".join(p["versions"]))})' if p["versions"] else "")
                         + (" - reduced service" if p["impact"] == "degraded" else "") for p in window["products"])
    timing = (f'Started {when(window["start"])}, until {when(window["end"])}' if window["phase"] == "active"
              else f'From {when(window["start"])} to {when(window["end"])}')
    emergency = '<span class="tag">emergency</span>' if window.get("emergency") else ""
    return (f'<article class="card window" data-window="{esc(window["phase"])}">'
            f'<h4>{esc(window["title"])}{emergency}</h4>'
            f'<p class="desc">{timing}.</p><p class="meta">Affects: {products}</p></article>')


def _maintenance(maintenance: dict) -> str:
    parts = []
    for group, heading in (("active", "In progress"), ("upcoming", "Scheduled")):
        windows = maintenance.get(group) or []
        if windows:
            parts.append(f'<h3 id="h-maintenance-{group}">{heading}</h3>'
                         f'<div class="windows" data-group="{group}">{"".join(_window(w) for w in windows)}</div>')
    body = "\n".join(parts) or '<p class="none">No maintenance scheduled.</p>'
    return f'<section aria-labelledby="h-maintenance"><h2 id="h-maintenance">Maintenance</h2>\n{body}</section>'


def _products(products: list[dict], now: datetime) -> str:
    if not products:
        return ('<section aria-labelledby="h-apis"><h2 id="h-apis">APIs</h2>'
                '<p class="none">No public APIs in this view.</p></section>')
    cards = "\n".join(_product(p, now) for p in products)
    return f'<section aria-labelledby="h-apis"><h2 id="h-apis">APIs</h2>\n{cards}</section>'


def _product(product: dict, now: datetime) -> str:
    anchor = f'p-{esc(product["id"])}'
    env = "" if product["environment"] == "live" else f'<span class="tag">{esc(product["environment"])}</span>'
    description = f'<p class="desc">{esc(product["description"])}</p>' if product.get("description") else ""
    versions = "".join(_version(v, now) for v in product["versions"])
    return (f'<article class="card product s-{esc(product["state"])}" id="{anchor}" '
            f'data-product="{esc(product["id"])}" data-state="{esc(product["state"])}" aria-labelledby="{anchor}-h">'
            f'<div class="card-head"><h3 id="{anchor}-h"><span class="pname">{esc(product["displayName"])}</span>{env}</h3>'
            f'<span class="pill">{icon(product["state"])}{esc(product["stateLabel"])}</span></div>'
            f'{description}<ul class="versions" aria-label="Versions">{versions}</ul>'
            f'{_uptime(product["uptime"], product["displayName"])}</article>')


def _version(version: dict, now: datetime) -> str:
    since = ""
    if version.get("since") and version["state"] != "operational":
        since = f' since {when(version["since"])} ({esc(ago(version["since"], now))})'
    lifecycle = ""
    if version["lifecycle"] == "deprecated":
        sunset = f': sunset on {when(version["sunsetAt"], date_only=True)}' if version.get("sunsetAt") else ""
        lifecycle = f'<span class="lifecycle">Deprecated{sunset}</span>'
    return (f'<li class="s-{esc(version["state"])}" data-version="{esc(version["name"])}" '
            f'data-state="{esc(version["state"])}"><span class="vname">{esc(version["name"])}</span>'
            f'<span class="reason">{esc(version["reason"])}{since}{lifecycle}</span>'
            f'<span class="vstate">{icon(version["state"])}{esc(version["stateLabel"])}</span></li>')


def _uptime(uptime: dict, name: str) -> str:
    bars = []
    for bar in uptime["bars"]:
        moment = parse_time(bar["day"] + "T00:00:00Z")
        label = f"{moment:%a} {moment.day} {moment:%b}: " + (
            "no data" if bar["percent"] is None else f'{bar["percent"]:g}% ({bar["ok"]}/{bar["total"]} checks passed)')
        bars.append(f'<span class="bar l-{esc(bar["level"])}" title="{esc(label)}"></span>')
    total = "no data yet" if uptime["percent"] is None else f'{uptime["percent"]:g}% uptime'
    recent = uptime["bars"][-30:]
    ok30, all30 = sum(b["ok"] for b in recent), sum(b["total"] for b in recent)
    total30 = "no data yet" if not all30 else f"{percent(ok30, all30):g}% uptime"
    summary = f"{name}: {total} over the last {uptime['days']} days"
    return (f'<figure class="uptime"><div class="bars" role="img" aria-label="{esc(summary)}">{"".join(bars)}</div>'
            f'<figcaption><span><span class="long">{uptime["days"]} days ago</span><span class="short">30 days ago'
            f'</span></span><span><span class="long">{esc(total)}</span><span class="short">{esc(total30)}</span>'
            f'</span><span>Today</span></figcaption></figure>')
