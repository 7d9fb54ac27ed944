"""Notices owed to several recipients, recorded in an object's status: one delivery round
settled (who was reached, who is retried and when, who refused) and which entries are due.

Pure bookkeeping, no I/O: the pure decision modules (``incidents.notify``, ``products.sunset``)
use it, and :mod:`pitwall.outbox` delivers what it says is due.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from .durations import parse_time, rfc3339

# -- owed to several recipients: one entry, retried for those it has not reached -------------------
MAX_TRIES = 8  # rounds that failed for a reason a retry may fix, before giving up (~25 min)
RETRY_BASE = 15.0  # seconds before the 2nd round, doubling ...
RETRY_CAP = 600.0  # ... up to 10 minutes


def settle_round(
    entry: dict,
    *,
    at: datetime,
    reached: list[str],
    failed: list[str],
    refused: list[str],
    retry_base: float = RETRY_BASE,
) -> tuple[dict, bool]:
    """``entry`` (a notice owed to several recipients, recorded in an object's status) with one
    delivery round recorded, and whether it is finished.

    ``reached`` join ``recipients``; ``failed`` (a retry may fix it: 5xx, a timeout, a Secret not
    there yet) stay ``pending``, due again after a growing delay (``tries``, ``due``) until
    ``MAX_TRIES`` rounds failed; ``refused`` (4xx, no usable contact) are recorded as failed at
    once. Incident notices and sunset notices share it (the shapes of their status entries do).
    """
    recipients = list(dict.fromkeys([*(entry.get("recipients") or []), *reached]))
    tries = int(entry.get("tries") or 0) + (1 if failed else 0)
    open_ = [n for n in failed if n not in recipients]
    retry = open_ if tries < MAX_TRIES else []
    out = {k: v for k, v in entry.items() if k not in ("pending", "tries", "due", "failed", "error")}
    out["recipients"] = recipients[:500]
    out["failed"] = list(
        dict.fromkeys([*(entry.get("failed") or []), *refused, *(open_ if not retry else [])])
    )[:500]
    if retry:
        out["pending"] = retry[:500]
        out["due"] = rfc3339(at + timedelta(seconds=min(RETRY_CAP, retry_base * 2 ** (tries - 1))))
    if tries:
        out["tries"] = tries
    return out, not retry


def due_entries(
    entries: Iterable[dict] | None, now: datetime, is_owed: Callable[[dict], bool]
) -> tuple[list[dict], datetime | None]:
    """The entries owed (``is_owed(entry)``) and due now, and when the next one falls due."""
    due: list[dict] = []
    later: list[datetime] = []
    for entry in entries or []:
        if not is_owed(entry):
            continue
        when = None
        if entry.get("due"):
            try:
                when = parse_time(entry["due"])
            except ValueError:
                when = None
        (later.append(when) if when is not None and when > now else due.append(entry))
    return due, min(later, default=None)
