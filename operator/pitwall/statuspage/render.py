"""The public page as server-rendered HTML, from the dict :func:`.model.public_status` returns.

It renders only that dict (never the objects), so the page shows exactly what the JSON API
returns, and nothing the model left out can slip into it. Elements carry ``data-product``,
``data-version`` and ``data-state`` so the page can be checked against the JSON by a browser.
Order follows what a visitor asks first: is it up (banner), what is wrong (incidents), what is
planned (maintenance), then each API with its versions and 90-day uptime.
"""

from __future__ import annotations

from urllib.parse import quote

from ..api.apiproduct import ENVIRONMENTS
from ..durations import parse_time
from .history import by_product_day
from .jinja_env import TEMPLATES
from .uptime import percent

ENV_LABELS: dict[str | None, str] = {None: "All", **{e: e.capitalize() for e in ENVIRONMENTS}}


def render_public(model: dict, *, title: str = "API status", refresh: int = 15) -> str:
    """templates/public.html, with what is easier said in Python: the environment choices and
    each product's uptime bar labels."""
    env = model.get("environment")
    history = model.get("history") or []
    current = [i for i in history if not i["resolved"]]
    # A product with a firing alert keeps its alert card (the JSON's "incidents", one card each);
    # its open Incident's status, updates and report are shown in that card, not in a second one.
    alerted = {i["product"] for i in model["incidents"]}
    merged = {
        i["products"][0]["id"]: i
        for i in current
        if i["kind"] == "incident" and len(i["products"]) == 1 and i["products"][0]["id"] in alerted
    }
    past: dict[str, list[dict]] = {}  # product id -> its resolved incidents, newest first
    for incident in history:
        if incident["resolved"]:
            for product in incident["products"]:
                past.setdefault(product["id"], []).append(incident)
    links: dict[str, dict[str, str]] = {}  # product id -> day -> incident id
    for (product_id, day), incident_id in by_product_day(history).items():
        links.setdefault(product_id, {})[day] = incident_id
    return TEMPLATES.get_template("public.html").render(
        open_incidents=[i for i in current if i not in merged.values()],
        open_ids={i["id"] for i in current},
        alert_incidents=model["incidents"],
        merged=merged,
        past=past,
        model=model,
        title=title,
        heading=title,
        refresh=refresh,
        wide=False,
        env=env,
        now=parse_time(model["generatedAt"]),
        env_labels=ENV_LABELS,
        env_query=_env_query,
        choices=_choices(env, model.get("environments") or []),
        uptimes=[_uptime(p["uptime"], p["displayName"], links.get(p["id"])) for p in model["products"]],
    )


def _env_query(env: str | None) -> str:
    return f"?env={quote(env)}" if env else ""


def _choices(env: str | None, present: list[str]) -> list[str | None]:
    """The environment filter's entries; none when there is only one environment."""
    choices: list[str | None] = [None, *[e for e in ENVIRONMENTS if e in present or e == env]]
    return [] if len(choices) <= 2 and env is None else choices


def _uptime(uptime: dict, name: str, incidents: dict[str, str] | None = None) -> dict:
    """Bar labels; a day with an incident links to it (``incidents``: day -> incident id)."""
    bars = []
    for bar in uptime["bars"]:
        moment = parse_time(bar["day"] + "T00:00:00Z")
        label = f"{moment:%a} {moment.day} {moment:%b}: " + (
            "no data"
            if bar["percent"] is None
            else f"{bar['percent']:g}% ({bar['ok']}/{bar['total']} checks passed)"
        )
        incident = (incidents or {}).get(bar["day"])
        if incident:
            label += "; incident: see below"
        bars.append({"level": bar["level"], "label": label, "incident": incident})
    total = "no data yet" if uptime["percent"] is None else f"{uptime['percent']:g}% uptime"
    recent = uptime["bars"][-30:]
    ok30, all30 = sum(b["ok"] for b in recent), sum(b["total"] for b in recent)
    return {
        "bars": bars,
        "total": total,
        "summary": f"{name}: {total} over the last {uptime['days']} days",
        "total30": "no data yet" if not all30 else f"{percent(ok30, all30):g}% uptime",
    }
