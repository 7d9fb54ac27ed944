"""A small SVG status badge per public product, for READMEs and developer portals.

Flat, shields.io-like (label on grey, state on its colour), self-contained (no font file, no
link), with ``role="img"`` and a ``<title>`` so screen readers say what it shows. Widths are
estimated from the text at 11px (about 6.5px per character), which is close enough for
Verdana/DejaVu and leaves a margin instead of clipping.
"""

from __future__ import annotations

from .health import LABELS
from .page import esc

COLOURS = {
    "operational": "#1a7f37",
    "degraded": "#9a6700",
    "outage": "#cf222e",
    "maintenance": "#0969da",
    "unknown": "#57606a",
}
LABEL_COLOUR = "#3d444d"


def _width(text: str) -> int:
    return int(len(text) * 6.5) + 12


def badge(label: str, state: str, text: str | None = None) -> str:
    """``label | state`` as an SVG document."""
    value = text or LABELS.get(state, state)
    left, right = _width(label), _width(value)
    total = left + right
    colour = COLOURS.get(state, COLOURS["unknown"])
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" viewBox="0 0 {total} 20" '
        f'role="img" aria-label="{esc(label)}: {esc(value)}"><title>{esc(label)}: {esc(value)}</title>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3"/></clipPath><g clip-path="url(#r)">'
        f'<rect width="{left}" height="20" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/></g>'
        f'<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle">'
        f'<text x="{left / 2:g}" y="14">{esc(label)}</text>'
        f'<text x="{left + right / 2:g}" y="14">{esc(value)}</text></g></svg>'
    )
