"""The internal view as HTML, from the dict :func:`.internal.internal_status` returns.

Support staff land here from an alert: open incidents and alerts first, then products (every
one, public or not, with the detail behind each verdict), backends with what their loss
does, the impact matrix, the dependency graph, probes with their last failure and its
correlation id, and windows. Tables scroll sideways on a phone instead of squeezing.
"""

from __future__ import annotations

from ..templating import Markup
from .graph_svg import render_graph
from .jinja_env import TEMPLATES

BACKEND_STATE = {"Available": "operational", "Unavailable": "outage", "Maintenance": "maintenance"}
PROBE_STATE = {"Up": "operational", "Down": "outage", "Maintenance": "maintenance"}


def render_internal(model: dict, *, title: str = "API status", refresh: int = 15) -> str:
    """templates/internal.html; the dependency graph is drawn here (graph_svg) and passed as markup."""
    return TEMPLATES.get_template("internal.html").render(
        model=model,
        title=title,
        heading=f"{title} (internal)",
        refresh=refresh,
        wide=True,
        graph=Markup(render_graph(model["graph"])),
        backend_state=BACKEND_STATE,
        probe_state=PROBE_STATE,
    )
