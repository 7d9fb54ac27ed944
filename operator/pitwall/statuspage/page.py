"""What both views' templates share (templates/base.html is the shell): the inline stylesheet,
the refresh script and its CSP, icons, times.

Everything a page needs is in the one response (CSS inlined from ``assets/``, icons as inline
SVG, no web font), so the page works behind the strictest proxy and never calls a CDN. The
response carries a Content-Security-Policy that allows only that inline CSS and, by its
SHA-256 hash, the one inline script below.

Auto-refresh: the script fetches the same URL every ``refresh`` seconds and swaps in the new
``<main>`` only when it changed (so focus, scroll and screen readers are left alone when
nothing happened), updates the "last updated" time and counts refreshes in
``body[data-refreshes]``. Without JavaScript a ``<noscript>`` meta refresh reloads the page.
If a refresh fails, a notice says the page may be out of date until the next one succeeds.
"""

from __future__ import annotations

import base64
import hashlib
import html
from datetime import UTC, datetime
from importlib import resources

from ..durations import parse_time

CSS = resources.files(__package__).joinpath("assets/statuspage.css").read_text(encoding="utf-8")

SCRIPT = """(function () {
  var body = document.body, every = (+body.dataset.refresh || 15) * 1000, count = 0;
  function tick() {
    fetch(location.href, {cache: "no-store", headers: {"Accept": "text/html"}}).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text();
    }).then(function (text) {
      var next = new DOMParser().parseFromString(text, "text/html");
      var main = document.querySelector("main"), fresh = next.querySelector("main");
      if (fresh && main && fresh.innerHTML !== main.innerHTML) { main.replaceWith(fresh); }
      var stamp = next.getElementById("updated"), mine = document.getElementById("updated");
      if (stamp && mine) { mine.replaceWith(stamp); }
      document.title = next.title;
      document.getElementById("stale").hidden = true;
      body.dataset.refreshes = String(++count);
    }).catch(function () {
      document.getElementById("stale").hidden = false;
    }).then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();"""

SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    f"script-src '{SCRIPT_HASH}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_ICONS = {  # 16x16 outlines, drawn in currentColor: the state is also always written in words
    "operational": '<circle cx="8" cy="8" r="7"/><path d="M4.5 8.2l2.3 2.3 4.7-4.9"/>',
    "degraded": '<path d="M8 1.5l7 12.5H1z"/><path d="M8 6v3.5M8 11.5v.5"/>',
    "outage": '<circle cx="8" cy="8" r="7"/><path d="M5.2 5.2l5.6 5.6M10.8 5.2l-5.6 5.6"/>',
    "maintenance": '<circle cx="8" cy="8" r="7"/><path d="M8 4v4.3l2.8 1.7"/>',
    "unknown": '<circle cx="8" cy="8" r="7"/><path d="M6 6.2a2 2 0 1 1 2.6 1.9c-.4.2-.6.5-.6.9v.6M8 11.6v.4"/>',
}


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def icon(state: str) -> str:
    shape = _ICONS.get(state, _ICONS["unknown"])
    return (
        '<svg viewBox="0 0 16 16" fill="none" stroke="currentColor" stroke-width="1.6" '
        f'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">{shape}</svg>'
    )


def when(value: str | None, *, date_only: bool = False) -> str:
    """``<time>`` in UTC, e.g. "Sat 8 Nov 2026, 20:00 UTC"; empty for no value."""
    if not value:
        return ""
    try:
        moment = parse_time(value).astimezone(UTC)
    except (TypeError, ValueError):
        return esc(value)
    text = (
        f"{moment:%a} {moment.day} {moment:%b %Y}"
        if date_only
        else f"{moment:%a} {moment.day} {moment:%b %Y}, {moment:%H:%M} UTC"
    )
    return f'<time datetime="{esc(value)}">{text}</time>'


def ago(value: str | None, now: datetime) -> str:
    """How long since ``value``: "12 min", "3 h 5 min", "2 days"."""
    if not value:
        return ""
    try:
        seconds = max(0, int((now - parse_time(value)).total_seconds()))
    except (TypeError, ValueError):
        return ""
    if seconds < 60:
        return "under a minute"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"
