"""Which notices a window owes, and when a window gives consumers too little notice.

Every occurrence is announced three times: ``advance`` at ``notice.leadTime`` before the start
(default 72h), ``start`` and ``end``. Each (kind, occurrence) goes out once: what was sent is
recorded in ``status.notices`` and handed back as ``already_sent``, so restarts never repeat one.

- advance is due from start - leadTime until the start. A window created inside its lead time
  (only emergencies pass admission) therefore sends it at once.
- start is due while the occurrence runs; announcing a start after the end would only confuse.
- end is due once the occurrence is over, also when ``end`` was edited to the past or the window
  was deleted while running, and only if the start notice went out: nobody is told that a
  maintenance is over which they never heard had begun.
- cancelled is due when the window is deleted before its start and the advance notice went out.
- every notice of an ``emergency`` window is labelled as one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .. import durations
from ..api import maintenancewindow as model
from ..errors import InvalidSpec
from .schedule import Occurrence, Recurring, next_occurrence, occurrence_at, parse

ADVANCE, START, END, CANCELLED = "advance", "start", "end", "cancelled"
# status.notices keeps the most recent entries only: older occurrences can no longer be due.
KEEP = model.NOTICES_KEPT


@dataclass(frozen=True)
class Notice:
    kind: str  # advance | start | end
    occurrence: Occurrence
    emergency: bool = False


def lead_time(spec: model.MaintenanceWindowSpec) -> timedelta:
    """``notice.leadTime`` (the model's default when unset)."""
    return timedelta(seconds=durations.parse(spec.notice.lead_time))


def due_notices(
    spec: model.MaintenanceWindowSpec,
    occurrence: Occurrence,
    now: datetime,
    already_sent: Iterable[dict],
    *,
    cancelled: bool = False,
) -> list[Notice]:
    """The notices for ``occurrence`` that should go out now (at most one).

    ``already_sent`` is ``status.notices``. With ``cancelled`` (the window is being deleted)
    only the end notice of a running occurrence whose start was announced, or the cancellation
    of an announced one that has not begun, can be due.
    """
    start, end = occurrence
    sent = sent_keys(already_sent)
    if cancelled and now < start:
        # Deleted before it began: whoever was told it is coming is told it is off.
        kinds = [CANCELLED] if (ADVANCE, start) in sent else []
    elif cancelled or now >= end:
        kinds = [END] if now >= start and (START, start) in sent else []
    elif now >= start:
        kinds = [START]
    elif now >= start - lead_time(spec):
        kinds = [ADVANCE]
    else:
        kinds = []
    return [Notice(kind, occurrence, spec.emergency) for kind in kinds if (kind, start) not in sent]


def sent_keys(notices: Iterable[dict]) -> set[tuple[str, datetime]]:
    """(kind, occurrence start) of each recorded notice; unreadable entries are ignored."""
    keys = set()
    for entry in notices or ():
        try:
            keys.add((entry["kind"], durations.parse_time(entry["occurrence"])))
        except (KeyError, TypeError, ValueError):
            continue
    return keys


def record(
    notices: list[dict] | None,
    notice: Notice,
    *,
    at: datetime,
    delivered: bool,
    recipients: list[str],
    error: str | None = None,
) -> list[dict]:
    """``status.notices`` with ``notice`` appended (whole list: merge patches replace lists).

    ``error`` must already be free of secrets (webhook URLs, SMTP passwords).
    """
    entry = {
        "kind": notice.kind,
        "occurrence": durations.rfc3339(notice.occurrence.start),
        "at": durations.rfc3339(at),
        "delivered": delivered,
        "recipients": list(recipients),
    }
    if error:
        entry["error"] = error
    return [*(notices or []), entry][-KEEP:]


def lead_time_violation(
    spec: model.MaintenanceWindowSpec, now: datetime, *, previous: model.MaintenanceWindowSpec | None = None
) -> str | None:
    """Why admission refuses this window, or None when it gives enough notice.

    A one-off window must start at least ``notice.leadTime`` after ``now`` unless it is an
    emergency with a reason. Recurring windows are never refused. On update pass the old spec as ``previous``: only moving the start earlier
    is judged, so a running or imminent window can still be edited (its end shortened, its
    reason fixed). Raises InvalidSpec for an unreadable schedule.
    """
    if spec.emergency and (spec.emergency_reason or "").strip():
        return None
    schedule = parse(spec.schedule)
    if isinstance(schedule, Recurring):
        # A standing weekly window must be creatable any day of the week: each of its runs is
        # announced leadTime ahead, or at once (as late notice) if the window is newer than that.
        return None
    first = occurrence_at(schedule, now) or next_occurrence(schedule, now)
    if first is None:
        return None  # entirely in the past: nothing to announce, it completes at once
    if previous is not None and not _moved_earlier(first, previous, now):
        return None
    needed = lead_time(spec)
    if first.start - now >= needed:
        return None
    starts = "starts now" if first.start <= now else f"starts in {_rounded(first.start - now)}"
    move = f"move the start to after {durations.rfc3339(now + needed)}"
    emergency = (
        "give the emergencyReason that emergency: true requires"
        if spec.emergency
        else "set emergency: true with emergencyReason"
    )
    return f"maintenance {starts} but consumers need {spec.notice.lead_time} notice: {move} or {emergency}"


def _moved_earlier(first: Occurrence, previous: model.MaintenanceWindowSpec, now: datetime) -> bool:
    try:
        old_schedule = parse(previous.schedule)
    except InvalidSpec:  # the old spec never worked: judge the new schedule on its own
        return True
    old = occurrence_at(old_schedule, now) or next_occurrence(old_schedule, now)
    return old is None or first.start < old.start


def _rounded(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    return durations.format(round(seconds / 60) * 60 if seconds >= 60 else seconds)


# -- the outbox: owed sends per recipient, in status.notices ---------------------------------------
MAX_TRIES = 8  # transient failures per recipient before the loss is recorded (~25 min)
RETRY_BASE = 15.0  # seconds before the 2nd try, doubling ...
RETRY_CAP = 600.0  # ... up to 10 minutes


@dataclass(frozen=True)
class SendResult:
    """How one try to deliver a notice to one recipient ended."""

    kind: str
    occurrence: str  # rfc3339 start, as in status.notices
    recipient: str
    ok: bool
    permanent: bool  # refused for a reason a retry cannot fix (HTTP 4xx, SMTP 5xx)
    error: str | None
    at: datetime

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.kind, self.occurrence, self.recipient)


def owe(
    notices: list[dict] | None,
    notice: Notice,
    *,
    at: datetime,
    recipients: list[str],
    failed: dict[str, str] | None = None,
) -> list[dict]:
    """``status.notices`` with ``notice`` recorded as owed to ``recipients`` (sent by the outbox).

    ``failed`` are recipients that cannot be sent to at all (no usable receiver): recorded at
    once. The entry counts as decided from now on, so ``due_notices`` never decides it again.
    """
    failed = dict(failed or {})
    entry = {
        "kind": notice.kind,
        "occurrence": durations.rfc3339(notice.occurrence.start),
        "at": durations.rfc3339(at),
        "delivered": False,
        "recipients": [],
        "pending": [{"name": n, "tries": 0, "due": durations.rfc3339(at)} for n in recipients],
    }
    if failed:
        entry["failed"] = list(failed)
        entry["error"] = "; ".join(f"{k}: {v}" for k, v in failed.items())[:1000]
    return [*(notices or []), entry][-KEEP:]


def due_sends(
    notices: Iterable[dict], now: datetime, exclude: Iterable[tuple] = ()
) -> tuple[list[tuple[str, str, str, str, int]], datetime | None]:
    """(kind, occurrence, recipient, due, tries) owed and due now, and when the next falls due.

    The id includes ``due`` and ``tries``: a failed try counts and moves them, so ``exclude``
    (sent, result not recorded yet or only just) holds back a resend of the same try, never
    the retry."""
    skip, due, later = set(exclude), [], []
    for entry in notices or ():
        for item in entry.get("pending") or ():
            ident = (
                entry.get("kind", ""),
                entry.get("occurrence", ""),
                item.get("name", ""),
                item.get("due", ""),
                int(item.get("tries") or 0),
            )
            when = _parse(item.get("due")) or now
            if ident in skip:
                continue
            (due.append(ident) if when <= now else later.append(when))
    return due, min(later, default=None)


def apply_sends(
    notices: list[dict] | None, results: Iterable[SendResult], *, retry_base: float = RETRY_BASE
) -> tuple[list[dict], list[str]]:
    """Record send results: delivered, refused for good, or owed again after a growing delay.

    Returns the new ``status.notices`` and one line per recipient now given up on (for an Event).
    """
    out = [dict(e, pending=[dict(p) for p in e.get("pending") or []]) for e in notices or ()]
    lost = []
    for res in results:
        entry = next(
            (e for e in out if e.get("kind") == res.kind and e.get("occurrence") == res.occurrence), None
        )
        if entry is None:
            continue
        item = next((p for p in entry["pending"] if p.get("name") == res.recipient), None)
        if item is None:
            continue  # recorded already (a result applied twice changes nothing)
        if res.ok:
            entry["pending"].remove(item)
            entry["recipients"] = [*(entry.get("recipients") or []), res.recipient]
            continue
        item["tries"] = int(item.get("tries") or 0) + 1
        if res.permanent or item["tries"] >= MAX_TRIES:
            entry["pending"].remove(item)
            entry["failed"] = [*(entry.get("failed") or []), res.recipient]
            why = res.error or "failed"
            if not res.permanent:
                why += f" (gave up after {item['tries']} tries)"
            entry["error"] = (
                ((entry.get("error") or "") + "; ") if entry.get("error") else ""
            ) + f"{res.recipient}: {why}"
            entry["error"] = entry["error"][:1000]
            lost.append(f"{res.kind} notice for {res.occurrence} to {res.recipient}: {why}")
        else:
            delay = min(RETRY_CAP, retry_base * 2 ** (item["tries"] - 1))
            item["due"] = durations.rfc3339(res.at + timedelta(seconds=delay))
            item["error"] = (res.error or "")[:300]
    for entry in out:
        if not entry["pending"]:
            del entry["pending"]
            entry["delivered"] = bool(entry.get("recipients")) and not entry.get("failed")
    return out, lost


def settled(entry: dict) -> bool:
    return not entry.get("pending")


def _parse(value: str | None) -> datetime | None:
    try:
        return durations.parse_time(value) if value else None
    except ValueError:
        return None
