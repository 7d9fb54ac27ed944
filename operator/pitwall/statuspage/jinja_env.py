"""The status page's Jinja2 environment (templates/): the shared shell, both views, their macros.

The helpers the templates call return markup (``icon`` an inline SVG, ``when`` a ``<time>``
element): they are wrapped in ``Markup`` here, once, and escape their own inputs (page.py).
"""

from __future__ import annotations

from jinja2 import Environment

from ..templating import Markup, environment
from .health import LABELS
from .page import CSS, SCRIPT, ago, icon, when


def _when(value: str | None, date_only: bool = False) -> Markup:
    return Markup(when(value, date_only=date_only))


def _environment() -> Environment:
    env = environment(__package__ or "pitwall.statuspage")
    env.globals.update(
        icon=lambda state: Markup(icon(state)), labels=LABELS, css=Markup(CSS), script=Markup(SCRIPT)
    )
    env.filters.update(when=_when, ago=ago)
    return env


TEMPLATES = _environment()
