"""Who hears about a maintenance window, and what they read.

Each consumer of an affected product gets one message listing only the products and versions
it uses, with the product owner's contact; each of the window's ``notice.receivers`` gets every
affected product. Times are shown in the window's time zone and in UTC, because the people
reading them live in both. Emergency windows say so in the subject and the first line.
Nothing here sends: the caller delivers a ``Message`` through the alert receivers.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo

from .. import durations
from ..api.maintenancewindow import MaintenanceWindowSpec
from ..api.receivers import Receiver
from .notices import ADVANCE, CANCELLED, END, START, Notice
from .schedule import parse
from .targets import UNAVAILABLE, Affected, AffectedProduct

CONSUMER, RECEIVER = "consumer", "receiver"

_SUBJECT = {
    ADVANCE: "Planned maintenance: {products}, {start}",
    START: "Maintenance started: {products}, until {end}",
    END: "Maintenance finished: {products}",
    CANCELLED: "Maintenance cancelled: {products}, {start}",
}
_INTRO = {
    ADVANCE: "Planned maintenance is coming up for the APIs below.",
    START: "Maintenance has started for the APIs below.",
    END: "Maintenance is over: the APIs below are back in normal service.",
    CANCELLED: "The planned maintenance below is cancelled: the APIs stay in normal service.",
}
_PAGE_NOTE = "While it lasts, unavailable APIs answer HTTP 503 with a Retry-After header."


@dataclass(frozen=True)
class Recipient:
    name: str
    kind: str  # consumer | receiver
    products: tuple[AffectedProduct, ...]  # versions narrowed to what a consumer uses
    contact: dict = field(default_factory=dict)  # consumer: {name, email, webhook}
    receiver: Receiver | None = None  # receiver: its entry in notice.receivers (AlertRule-shaped)


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str
    data: dict  # the same facts as JSON, for webhook receivers


def recipients(spec: MaintenanceWindowSpec, affected: Affected) -> list[Recipient]:
    """Consumers (unless ``notice.notifyConsumers`` is false) first, then the window's receivers."""
    found = []
    if spec.notice.notify_consumers:
        by_product = {p.name: p for p in affected.products}
        grouped: dict[str, list] = {}
        for consumer in affected.consumers:
            grouped.setdefault(consumer.name, []).append(consumer)
        for name, uses in grouped.items():
            found.append(
                Recipient(
                    name=name,
                    kind=CONSUMER,
                    products=tuple(replace(by_product[c.product], versions=c.versions) for c in uses),
                    contact=next((c.contact for c in uses if c.contact), {}),
                )
            )
    for receiver in spec.notice.receivers or []:
        found.append(
            Recipient(
                name=receiver.name,
                kind=RECEIVER,
                products=affected.products,
                receiver=receiver,
            )
        )
    return found


def compose(notice: Notice, spec: MaintenanceWindowSpec, recipient: Recipient) -> Message:
    """The notice as ``recipient`` reads it."""
    zone = parse(spec.schedule).zone
    start, end = notice.occurrence
    products = recipient.products
    subject = ("[EMERGENCY] " if notice.emergency else "") + _SUBJECT[notice.kind].format(
        products=", ".join(f"{p.display_name} {'/'.join(p.versions)}" for p in products),
        start=_local(start, zone),
        end=_local(end, zone),
    )
    lines = _Lines(
        emergency=(
            f"EMERGENCY MAINTENANCE: {spec.emergency_reason or 'no reason given'}"
            if notice.emergency
            else None
        ),
        intro=_INTRO[notice.kind],
        facts=[
            ("Reason", spec.reason or "not given"),
            ("Start", _when(start, zone)),
            ("End", _when(end, zone)),
        ],
        products=[(p, _effect(p)) for p in products],
        note=(
            _PAGE_NOTE
            if notice.kind not in (END, CANCELLED)
            and spec.maintenance_page
            and any(p.effect == UNAVAILABLE for p in products)
            else None
        ),
    )
    text = lines.text()
    data = {
        "kind": notice.kind,
        "occurrence": durations.rfc3339(start),
        "emergency": notice.emergency,
        "emergencyReason": spec.emergency_reason if notice.emergency else None,
        "reason": spec.reason,
        "start": durations.rfc3339(start),
        "end": durations.rfc3339(end),
        "timeZone": str(zone),
        "subject": subject,
        "text": text,
        "products": [
            {
                "name": p.name,
                "displayName": p.display_name,
                "versions": list(p.versions),
                "effect": p.effect,
                "contact": p.contact,
            }
            for p in products
        ],
    }
    return Message(subject=subject, text=text, html=lines.html(subject), data=data)


@dataclass(frozen=True)
class _Lines:
    """The body of a notice, rendered once as plain text and once as HTML."""

    emergency: str | None
    intro: str
    facts: list[tuple[str, str]]
    products: list[tuple[AffectedProduct, str]]
    note: str | None

    def text(self) -> str:
        out = [self.emergency, ""] if self.emergency else []
        out += [self.intro, "", *(f"{label}: {value}" for label, value in self.facts), "", "Affected:"]
        out += [
            f"- {p.display_name} ({p.name}) {', '.join(p.versions)}: {effect}"
            + (f"; questions to {p.contact}" if p.contact else "")
            for p, effect in self.products
        ]
        if self.note:
            out += ["", self.note]
        return "\n".join(out) + "\n"

    def html(self, title: str) -> str:
        e = html.escape
        out = [f"<p><strong>{e(self.emergency)}</strong></p>"] if self.emergency else []
        out.append(f"<p>{e(self.intro)}</p>")
        out.append("<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in self.facts) + "</dl>")
        out.append(
            "<h2>Affected</h2><ul>"
            + "".join(
                f"<li><strong>{e(p.display_name)}</strong> ({e(p.name)}) {e(', '.join(p.versions))}: {e(effect)}"
                + (f"; questions to {e(p.contact)}" if p.contact else "")
                + "</li>"
                for p, effect in self.products
            )
            + "</ul>"
        )
        if self.note:
            out.append(f"<p>{e(self.note)}</p>")
        return (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
            f'</head><body style="font-family:system-ui,sans-serif;color:#1b1f24;background:#ffffff">'
            f"{''.join(out)}</body></html>"
        )


def _effect(product: AffectedProduct) -> str:
    word = "unavailable" if product.effect == UNAVAILABLE else "may be degraded"
    return word if product.reason == "targeted" else f"{word} ({product.reason})"


def _local(moment: datetime, zone: tzinfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a %d %b %Y %H:%M} {local.tzname()}"


def _when(moment: datetime, zone: tzinfo) -> str:
    """``Sat 05 Dec 2026 22:00 CET (Europe/Berlin), 2026-12-05 21:00 UTC``; UTC once for UTC windows."""
    utc = moment.astimezone(UTC)
    local = moment.astimezone(zone)
    if local.utcoffset() == timedelta(0) and str(zone) in ("UTC", "Etc/UTC"):
        return f"{utc:%a %d %b %Y %H:%M} UTC"
    label = local.tzname() if local.tzname() == str(zone) else f"{local.tzname()} ({zone})"
    return f"{local:%a %d %b %Y %H:%M} {label}, {utc:%Y-%m-%d %H:%M} UTC"
