"""Durations as users write them: ``500ms``, ``30s``, ``5m``, ``2h``, ``3d``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# The same grammar the CRDs enforce with a CEL/pattern rule.
PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+$"


def parse(value: str | int | float | None, default: float | None = None) -> float:
    """Return seconds. Raises ValueError with a readable message on bad input."""
    if value is None or value == "":
        if default is None:
            raise ValueError("a duration is required")
        return default
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration (use e.g. 500ms, 30s, 5m, 2h, 3d)")
    return total


def format(seconds: float) -> str:  # noqa: A001 - mirrors parse
    """Short human form: 90 -> '1m30s', 0.25 -> '250ms'."""
    if seconds < 1:
        return f"{int(round(seconds * 1000))}ms"
    seconds = int(round(seconds))
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out) or "0s"


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime | None = None) -> str:
    moment = moment or now()
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z`` or an offset)."""
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone offset")
    return moment
