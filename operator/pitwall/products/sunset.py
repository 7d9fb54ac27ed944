"""Sunset notices: the consumers of a deprecated version are told, and reminded before it goes.

A version with ``lifecycle: deprecated`` owes its consumers (those that list it in
``consumers[].versions``, or list no versions) a ``deprecated`` notice once, and, when it has
a ``sunsetAt``, a ``reminder`` at each ``spec.sunsetNotice.leadTimes`` before it (the model's
default: 30d and 7d; an empty list: none). The spec arrives parsed (``ApiProductSpec``). Each
is decided once: it is recorded in ``status.sunsetNotices`` as owed (``pending``: the
consumers still to tell) before anything is sent, and handed back here as ``sent``, so
restarts and re-reconciles never decide it again. The outbox (``products.notices``) delivers
what is pending, also after a restart or a leader change, tries a failed consumer again later
(``pitwall.owed.settle_round``), and every copy to a consumer carries the same dedup key.

- Only the shortest lead time already reached is due: a version deprecated five days before
  its sunset gets the 7-day reminder folded into its deprecation notice, never a "30 days
  left" mail five days before the end.
- A moved ``sunsetAt`` is a new date: its reminders are due again (the deprecation is not).
- After ``sunsetAt`` nothing is sent: the version is gone or about to be retired.
- Without ``spec.sunsetNotice`` nothing is sent (consumers' mail needs a relay to go through).

Pure: ``products.notices`` delivers with ``alerts.delivery.deliver_message``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .. import durations
from ..api.apiproduct import ApiProductSpec, Consumer
from ..owed import RETRY_BASE, due_entries, settle_round

DEPRECATED, REMINDER = "deprecated", "reminder"
KEEP = 50


@dataclass(frozen=True)
class SunsetNotice:
    version: str
    kind: str  # deprecated | reminder
    sunset_at: str | None  # as written in the spec
    lead_time: str | None = None  # the reminder's
    covers: tuple[str, ...] = ()  # reminders folded into a deprecation notice
    consumers: tuple[Consumer, ...] = field(default=(), compare=False)


def consumers_of(spec: ApiProductSpec, version: str) -> list[Consumer]:
    """The consumers that list ``version``, or list no versions (they use every running one)."""
    running = [v.name for v in spec.versions if v.lifecycle != "retired"]
    return [c for c in spec.consumers or [] if version in (c.versions or running)]


def _key(entry: dict) -> tuple:
    return (
        entry.get("version"),
        entry.get("kind"),
        entry.get("leadTime"),
        entry.get("sunsetAt") if entry.get("kind") == REMINDER else None,
    )


def due(spec: ApiProductSpec, now: datetime, sent: Iterable[dict]) -> list[SunsetNotice]:
    """The notices to send now, at most one per version."""
    config = spec.sunset_notice
    if config is None:
        return []
    done = {_key(e) for e in sent or ()}
    out = []
    for version in spec.versions:
        if version.lifecycle != "deprecated":
            continue
        name, sunset_text = version.name, version.sunset_at
        sunset = durations.parse_time(sunset_text) if sunset_text else None
        if sunset is not None and now >= sunset:
            continue
        consumers = tuple(consumers_of(spec, name))
        if not consumers:
            continue
        reminder = None
        if sunset is not None:
            reached = [
                lt for lt in config.lead_times if now >= sunset - timedelta(seconds=durations.parse(lt))
            ]
            if reached:
                reminder = min(reached, key=durations.parse)
        if (name, DEPRECATED, None, None) not in done:
            out.append(
                SunsetNotice(
                    name, DEPRECATED, sunset_text, covers=(reminder,) if reminder else (), consumers=consumers
                )
            )
        elif reminder and (name, REMINDER, reminder, sunset_text) not in done:
            out.append(SunsetNotice(name, REMINDER, sunset_text, lead_time=reminder, consumers=consumers))
    return out


def record(
    sent: list[dict] | None,
    notice: SunsetNotice,
    *,
    at: datetime,
    delivered: bool,
    recipients: list[str],
    error: str | None,
) -> list[dict]:
    """``status.sunsetNotices`` with ``notice`` appended (and the reminders it covers), newest last."""
    entries = list(sent or [])
    base = {
        "version": notice.version,
        "sunsetAt": notice.sunset_at,
        "at": durations.rfc3339(at),
        "delivered": delivered,
        "recipients": recipients[:200],
    }
    if error:
        base["error"] = error[:1000]
    entries.append(
        {**base, "kind": notice.kind, **({"leadTime": notice.lead_time} if notice.lead_time else {})}
    )
    for lead_time in notice.covers:
        entries.append({**base, "kind": REMINDER, "leadTime": lead_time})
    return [{k: v for k, v in e.items() if v is not None} for e in entries[-KEEP:]]


def reachable(spec: ApiProductSpec, consumer: Consumer) -> bool:
    """Whether a consumer can be told: a webhook, or an e-mail address with a relay configured."""
    contact = consumer.contact
    relay = spec.sunset_notice is not None and spec.sunset_notice.consumer_email is not None
    return contact is not None and bool(contact.webhook or (contact.email and relay))


NOBODY = "no consumer of it has a contact email (with spec.sunsetNotice.consumerEmail) or webhook"


def owe(sent: list[dict] | None, notice: SunsetNotice, spec: ApiProductSpec, *, at: datetime) -> list[dict]:
    """``status.sunsetNotices`` with ``notice`` recorded as owed to its reachable consumers
    (``pending``), before anything is sent; the reminders it covers are recorded with it. A
    notice nobody can be told is recorded as failed at once."""
    names = [c.name for c in notice.consumers if reachable(spec, c)]
    entries = record(sent, notice, at=at, delivered=False, recipients=[], error=None if names else NOBODY)
    if names:
        main = len(entries) - 1 - len(notice.covers)
        entries[main] = {**entries[main], "pending": names[:200]}
    return entries


def owed(sent: list[dict] | None, now: datetime) -> tuple[list[dict], datetime | None]:
    """The entries with consumers still to tell, due now; and when the next falls due."""
    return due_entries(sent, now, lambda e: bool(e.get("pending")))


def ident(entry: dict) -> tuple:
    """What names a notice among ``status.sunsetNotices`` (never decided twice, see :func:`due`)."""
    return _key(entry)


def settle(
    sent: list[dict] | None,
    key: tuple,
    *,
    at: datetime,
    reached: list[str],
    failed: list[str],
    refused: list[str],
    errors: list[str],
    retry_base: float = RETRY_BASE,
) -> tuple[list[dict], dict | None]:
    """Record one delivery round of the notice ``key``; returns the entries and, once it is
    finished (every consumer told, refused for good or given up on), its final entry. The
    reminders it covers get its outcome."""
    entries = [dict(e) for e in sent or []]
    index = next((i for i, e in enumerate(entries) if _key(e) == key and e.get("pending")), None)
    if index is None:
        return entries, None  # recorded already
    entry, finished = settle_round(
        entries[index], at=at, reached=reached, failed=failed, refused=refused, retry_base=retry_base
    )
    error = "; ".join([*([entries[index]["error"]] if entries[index].get("error") else []), *errors])
    if error:
        entry["error"] = error[:1000]
    entry["recipients"] = entry["recipients"][:200]
    entry["failed"] = entry["failed"][:200]
    entry["delivered"] = finished and not entry["failed"] and bool(entry["recipients"])
    entries[index] = entry
    if finished:
        for i, other in enumerate(entries):
            if (
                i != index
                and other.get("kind") == REMINDER
                and other.get("version") == entry.get("version")
                and other.get("at") == entry.get("at")
                and not other.get("pending")
            ):
                entries[i] = {**other, "delivered": entry["delivered"], "recipients": entry["recipients"]}
    return entries, entry if finished else None


def notice_of(entry: dict) -> SunsetNotice:
    """The notice an entry records (to compose it again for a retry)."""
    return SunsetNotice(
        entry.get("version", ""), entry.get("kind", ""), entry.get("sunsetAt"), entry.get("leadTime")
    )


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str
    data: dict


def compose(
    name: str, spec: ApiProductSpec, notice: SunsetNotice, consumer: Consumer, now: datetime
) -> Message:
    """The notice as ``consumer`` reads it (mail text and HTML, JSON for webhooks); ``name`` is
    the ApiProduct's."""
    display = spec.display_name or name
    published = [v.name for v in spec.versions if v.lifecycle == "published"]
    sunset = durations.parse_time(notice.sunset_at) if notice.sunset_at else None
    day = sunset.strftime("%Y-%m-%d %H:%M UTC") if sunset else None
    left = _left(sunset - now) if sunset else None
    if notice.kind == DEPRECATED:
        subject = f"{display} {notice.version} is deprecated" + (f": sunset on {day}" if day else "")
        intro = f"{display} {notice.version} is deprecated. It keeps working until its sunset" + (
            f" on {day} ({left} from now)." if day else "; no sunset date is set yet."
        )
    else:
        subject = f"Reminder: {display} {notice.version} sunsets in {left} ({day})"
        intro = f"{display} {notice.version} will be switched off on {day}, {left} from now."
    lines = [f"Hello {(consumer.contact.name if consumer.contact else None) or consumer.name},", "", intro]
    if published:
        lines.append(f"Please move to {', '.join(published)} before then.")
    owner = spec.owner.contact if spec.owner else None
    if owner:
        lines.append(f"Questions: {owner}.")
    text = "\n".join(lines)
    data = {
        "kind": f"sunset-{notice.kind}",
        "apiProduct": name,
        "displayName": display,
        "version": notice.version,
        "sunsetAt": notice.sunset_at,
        "leadTime": notice.lead_time,
        "replacements": published,
        "consumer": consumer.name,
        "subject": subject,
        "text": text,
    }
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines if line)
    return Message(subject, text, f"<html><body><h2>{html.escape(subject)}</h2>{body}</body></html>", data)


def _left(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    if days >= 2:
        return f"{round(days)} days"
    hours = max(1, round(delta.total_seconds() / 3600))
    return f"{hours} hour{'s' if hours != 1 else ''}"
