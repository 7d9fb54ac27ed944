"""Correlation ids as links into the API's own logs (``--log-search-url``).

Every request a probe sends carries ``X-Correlation-ID``; the operator-level template (Kibana,
Grafana Explore, Loki ...) with a ``{correlationId}`` placeholder turns each id Pitwall shows
(probe status ``lastFailure.logsUrl``, conditions and therefore alerts, Events, the internal
view, the CLI) into a link. Set once at start-up (:func:`configure`); without a template the
ids are shown as they are.
"""

from __future__ import annotations

from urllib.parse import quote

PLACEHOLDER = "{correlationId}"
_template: str | None = None


def check(template: str | None) -> str | None:
    """The template, or ValueError naming what is wrong with it."""
    if template and PLACEHOLDER not in template:
        raise ValueError(f"--log-search-url {template!r} must contain {PLACEHOLDER}")
    if template and not template.startswith(("http://", "https://")):
        raise ValueError(f"--log-search-url {template!r} must be an http(s) URL")
    return template or None


def configure(template: str | None) -> None:
    global _template
    _template = check(template)


def link(correlation_id: str | None, template: str | None = None) -> str | None:
    """The log search URL for ``correlation_id`` (None without an id or a template)."""
    template = template or _template
    if not template or not correlation_id or correlation_id == "-":
        return None
    return template.replace(PLACEHOLDER, quote(correlation_id, safe=""))


def mention(correlation_id: str | None) -> str:
    """``abc123`` or ``abc123 (logs: https://...)``: how an id is written in messages."""
    url = link(correlation_id)
    return f"{correlation_id} (logs: {url})" if url else str(correlation_id)
