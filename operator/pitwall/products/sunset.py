"""Sunset notices: the consumers of a deprecated version are told, and reminded before it goes.

A version with ``lifecycle: deprecated`` owes its consumers (those that list it in
``consumers[].versions``, or list no versions) a ``deprecated`` notice once, and, when it has
a ``sunsetAt``, a ``reminder`` at each ``spec.sunsetNotice.leadTimes`` before it (default 30d
and 7d). Each goes out once: what was sent is recorded in ``status.sunsetNotices`` and handed
back here as ``sent``, so restarts and re-reconciles never repeat one.

- Only the shortest lead time already reached is due: a version deprecated five days before
  its sunset gets the 7-day reminder folded into its deprecation notice, never a "30 days
  left" mail five days before the end.
- A moved ``sunsetAt`` is a new date: its reminders are due again (the deprecation is not).
- After ``sunsetAt`` nothing is sent: the version is gone or about to be retired.
- Without ``spec.sunsetNotice`` nothing is sent (consumers' mail needs a relay to go through).

Pure: the product reconciler delivers with ``alerts.delivery.deliver_message``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .. import durations

DEPRECATED, REMINDER = "deprecated", "reminder"
DEFAULT_LEAD_TIMES = ("30d", "7d")
KEEP = 50


@dataclass(frozen=True)
class SunsetNotice:
    version: str
    kind: str  # deprecated | reminder
    sunset_at: str | None  # as written in the spec
    lead_time: str | None = None  # the reminder's
    covers: tuple[str, ...] = ()  # reminders folded into a deprecation notice
    consumers: tuple[dict, ...] = field(default=(), compare=False)


def consumers_of(spec: dict, version: str) -> list[dict]:
    running = [v["name"] for v in spec.get("versions") or [] if v.get("lifecycle") != "retired"]
    return [c for c in spec.get("consumers") or [] if version in (c.get("versions") or running)]


def _key(entry: dict) -> tuple:
    return (
        entry.get("version"),
        entry.get("kind"),
        entry.get("leadTime"),
        entry.get("sunsetAt") if entry.get("kind") == REMINDER else None,
    )


def due(spec: dict, now: datetime, sent: Iterable[dict]) -> list[SunsetNotice]:
    """The notices to send now, at most one per version."""
    config = spec.get("sunsetNotice")
    if config is None:
        return []
    done = {_key(e) for e in sent or ()}
    out = []
    for version in spec.get("versions") or []:
        if version.get("lifecycle") != "deprecated":
            continue
        name, sunset_text = version["name"], version.get("sunsetAt")
        sunset = durations.parse_time(sunset_text) if sunset_text else None
        if sunset is not None and now >= sunset:
            continue
        consumers = tuple(consumers_of(spec, name))
        if not consumers:
            continue
        reminder = None
        if sunset is not None:
            reached = [
                lt
                for lt in config.get("leadTimes") or DEFAULT_LEAD_TIMES
                if now >= sunset - timedelta(seconds=durations.parse(lt))
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


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str
    data: dict


def compose(product: dict, notice: SunsetNotice, consumer: dict, now: datetime) -> Message:
    """The notice as ``consumer`` reads it (mail text and HTML, JSON for webhooks)."""
    spec = product.get("spec") or {}
    display = spec.get("displayName") or product["metadata"]["name"]
    published = [
        v["name"] for v in spec.get("versions") or [] if v.get("lifecycle", "published") == "published"
    ]
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
    lines = [f"Hello {(consumer.get('contact') or {}).get('name') or consumer['name']},", "", intro]
    if published:
        lines.append(f"Please move to {', '.join(published)} before then.")
    owner = (spec.get("owner") or {}).get("contact")
    if owner:
        lines.append(f"Questions: {owner}.")
    text = "\n".join(lines)
    data = {
        "kind": f"sunset-{notice.kind}",
        "apiProduct": product["metadata"]["name"],
        "displayName": display,
        "version": notice.version,
        "sunsetAt": notice.sunset_at,
        "leadTime": notice.lead_time,
        "replacements": published,
        "consumer": consumer["name"],
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
