"""The status page: a public page of every public API product and an internal view.

Served by the operator itself from its watch caches (no API call per page view):
``model``/``internal`` build the data (pure), ``render``/``render_internal`` turn it into HTML
through the Jinja2 templates in ``templates/`` (autoescaped), ``badge``/``graph_svg`` into SVG,
``server`` serves both on their own ports.
"""

from __future__ import annotations


def setup(rt) -> None:
    """Register the status page with the operator's services (started by ``wiring.start``)
    unless both its ports are 0."""
    settings = rt.settings
    if settings.statuspage_port or settings.internal_port:
        from .server import StatusPage

        rt.statuspage = StatusPage(rt)
