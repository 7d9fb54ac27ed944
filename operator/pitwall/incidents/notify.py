"""Which notices an incident owes, to whom, and what they say: pure, no I/O.

An incident is told three ways: ``start`` once it opens, ``update-N`` for the Nth human update
in ``spec.updates`` and ``resolved`` when it ends. Each is owed through the outbox
(``pitwall.outbox``): recorded ``Sending`` in ``status.notices`` before the first delivery, and
``Sent`` once every recipient has it (or refused it for good, or ``MAX_TRIES`` ran out). An entry
left ``Sending`` by a stopped operator, a leader change or a receiver that failed is sent again
(to the recipients it has not reached, ``pending``), after a growing delay when it failed: at
least once, never lost. A resend after a crash between delivering and recording it carries the
same dedup key (:func:`message_id`: the webhook body's ``id``, the e-mail ``Message-ID``), so
receivers see one notice per key. (``Interrupted``, written by versions before this one, is left
as it is: those were never sent again.)

- ``resolved`` is owed only if ``start`` went out (nobody hears of the end of an incident they
  never heard had begun); an update is owed after ``start``; nothing is owed while ``start`` is
  still being delivered (in order); an incident resolved before its
  start notice went out tells no one (flapping shorter than a notice).
- Update notices keep ``minSpacing`` from the previous notice of the incident; several updates
  waiting are sent as one (the latest; the record covers them all). ``start`` and ``resolved``
  are never held back, and the resolving update's words travel with ``resolved``.
- Emergency-maintenance incidents send only their updates: the window's own notices (labelled
  EMERGENCY) announce its start and end.

Recipients are the consumers of the affected versions (a consumer listing no versions uses
all), unless ``incidentNotices: false`` or the product's ``incidents.notifyConsumers`` is false,
and the product's ``incidents.receivers``. Texts are composed from the display name, the
incident's consumer-language cause and the people's updates, never from backend names or hosts.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..api.apiproduct import Consumer, IncidentPolicy
from ..api.base import default_of, parse
from ..api.incident import IncidentSpec
from ..api.receivers import Receiver
from ..durations import format as format_duration
from ..durations import parse_time, rfc3339
from ..owed import MAX_TRIES as MAX_TRIES
from ..owed import RETRY_BASE as RETRY_BASE
from ..owed import due_entries, settle_round
from . import decide

START, RESOLVED = "start", "resolved"
CONSUMER, RECEIVER = "consumer", "receiver"
SENDING, SENT, INTERRUPTED = "Sending", "Sent", "Interrupted"
KEEP = 100  # api.incident.NOTICES_KEPT
# MAX_TRIES, RETRY_BASE (pitwall.owed): 8 rounds, 15 s doubling up to 10 min


@dataclass(frozen=True)
class Owed:
    event: str  # start | update-N | resolved
    update: int | None = None


@dataclass(frozen=True)
class Recipient:
    name: str
    kind: str  # consumer | receiver
    product: str
    versions: tuple[str, ...]
    contact: dict = field(default_factory=dict)  # consumer: {name, email, webhook}
    receiver: Receiver | None = None  # receiver: the AlertRule-shaped entry


@dataclass
class Message:
    subject: str
    text: str
    html: str
    data: dict


def owed(incident: dict, now: datetime, min_spacing: float) -> tuple[Owed | None, datetime | None]:
    """The next notice due now (at most one), and when a held-back update becomes due."""
    sp, st = decide.spec(incident), decide.status(incident)
    if sp.get("notify") is False or not st.get("phase"):
        return None, None
    emergency = sp.get("type") == decide.EMERGENCY
    notices = st.get("notices") or []
    done = {n.get("event") for n in notices}
    started = START in done or emergency
    resolved = st.get("phase") == decide.RESOLVED
    if not emergency and START not in done:
        return (Owed(START) if not resolved else None), None
    if any(n.get("event") == START and n.get("state") == SENDING for n in notices):
        return None, None  # in order: nothing after the start notice until it is out (or given up)
    if resolved:
        return (Owed(RESOLVED) if RESOLVED not in done and not emergency else None), None
    if not started:
        return None, None
    updates = sp.get("updates") or []
    covered = max(
        (
            int(e.split("-", 1)[1])
            for e in done
            if e and e.startswith("update-") and e.split("-", 1)[1].isdigit()
        ),
        default=-1,
    )
    waiting = [i for i in range(covered + 1, len(updates)) if updates[i].get("status") != "resolved"]
    if not waiting:
        return None, None
    last = max((t for n in notices if (t := _time(n.get("at"))) is not None), default=None)
    if last is not None and now - last < timedelta(seconds=min_spacing):
        return None, last + timedelta(seconds=min_spacing)
    return Owed(f"update-{waiting[-1]}", waiting[-1]), None


def record(
    notices: list[dict] | None,
    event: str,
    *,
    at: datetime,
    state: str,
    recipients: list[str] | None = None,
    failed: list[str] | None = None,
    error: str | None = None,
) -> list[dict]:
    """``status.notices`` with ``event``'s entry replaced or appended (the whole list)."""
    entry: dict = {
        "event": event,
        "state": state,
        "at": rfc3339(at),
        "recipients": list(recipients or [])[:500],
        "failed": list(failed or [])[:500],
    }
    if error:
        entry["error"] = error[:4000]
    kept = [n for n in notices or [] if n.get("event") != event]
    return [*kept, entry][-KEEP:]


def settle(
    notices: list[dict] | None,
    event: str,
    *,
    at: datetime,
    reached: list[str],
    failed: list[str],
    refused: list[str],
    error: str | None = None,
    retry_base: float = RETRY_BASE,
) -> list[dict]:
    """Record one delivery round of ``event`` (``pitwall.owed.settle_round``): it stays ``Sending``
    while recipients that failed for a reason a retry may fix are ``pending``, else ``Sent``.
    Applying a round twice changes nothing (an entry ``Sent`` is left as it is)."""
    entry = next((n for n in notices or [] if n.get("event") == event), None)
    if entry is None or entry.get("state") != SENDING:
        return list(notices or [])  # recorded already
    out, finished = settle_round(
        entry, at=at, reached=reached, failed=failed, refused=refused, retry_base=retry_base
    )
    out.update(state=SENT if finished else SENDING, at=rfc3339(at))
    if error:
        out["error"] = error[:4000]
    kept = [n for n in notices or [] if n.get("event") != event]
    return [*kept, out][-KEEP:]


def sending(notices: list[dict] | None, now: datetime) -> tuple[list[dict], datetime | None]:
    """The ``Sending`` entries due now (the outbox delivers them), and when the next falls due."""
    return due_entries(notices, now, lambda n: n.get("state") == SENDING and bool(n.get("event")))


def message_id(uid: str, event: str, recipient: str) -> str:
    """The dedup key of ``event``'s notice to ``recipient``: the same on every try, so a resend
    (after a crash between delivering and recording) is one notice to the receiver."""
    return hashlib.sha256(f"incident/{uid}/{event}/{recipient}".encode()).hexdigest()[:32]


def policy_of(product: dict) -> IncidentPolicy:
    """A stored product's ``spec.incidents`` through the model (InvalidSpec for one it refuses)."""
    return parse(IncidentPolicy, (product.get("spec") or {}).get("incidents"), "spec.incidents")


def recipients(
    incident: dict, products: dict[str, dict], policy: Callable[[dict], IncidentPolicy] = policy_of
) -> list[Recipient]:
    """Consumers of the affected versions, then each affected product's incident receivers
    (``policy``: a product's parsed ``spec.incidents``)."""
    found: list[Recipient] = []
    seen_receivers: set[str] = set()
    affected = decide.status(incident).get("affected") or decide.spec(incident).get("products") or []
    for entry in affected:
        product = products.get(entry.get("name", ""))
        if product is None:
            continue
        pspec = product.get("spec") or {}
        incidents = policy(product)
        running = [v["name"] for v in pspec.get("versions") or [] if v.get("lifecycle") != "retired"]
        versions = tuple(entry.get("versions") or running)
        if incidents.notify_consumers:
            for consumer in sorted(pspec.get("consumers") or [], key=lambda c: c.get("name", "")):
                if not consumer.get("incidentNotices", default_of(Consumer, "incident_notices")):
                    continue
                uses = tuple(v for v in versions if v in (consumer.get("versions") or running))
                if uses:
                    found.append(
                        Recipient(
                            consumer["name"],
                            CONSUMER,
                            entry["name"],
                            uses,
                            dict(consumer.get("contact") or {}),
                        )
                    )
        for receiver in incidents.receivers or []:
            if receiver.name not in seen_receivers:
                seen_receivers.add(receiver.name)
                found.append(Recipient(receiver.name, RECEIVER, entry["name"], versions, receiver=receiver))
    return found


_SUBJECT = {START: "{kind}: {what}", "update": "Update ({status}): {what}", RESOLVED: "Resolved: {what}"}


def compose(
    incident: dict, notice: Owed, recipient: Recipient, display_names: dict[str, str], now: datetime
) -> Message:
    """The notice as ``recipient`` reads it: the products and versions it uses, in plain words."""
    sp, st = decide.spec(incident), decide.status(incident)
    name = display_names.get(recipient.product, recipient.product)
    what = f"{name} {', '.join(recipient.versions)}"
    kind = (
        "Emergency maintenance"
        if sp.get("type") == decide.EMERGENCY
        else ("Outage" if st.get("impact") == decide.OUTAGE else "Degraded service")
    )
    update = None
    if notice.update is not None:
        update = (sp.get("updates") or [])[notice.update]
    elif notice.event == RESOLVED:
        update = next((u for u in reversed(sp.get("updates") or []) if u.get("status") == "resolved"), None)
    word = (update or {}).get("status") or sp.get("status") or default_of(IncidentSpec, "status")
    event = "update" if notice.update is not None else notice.event
    subject = _SUBJECT[event].format(kind=kind, what=what, status=word)
    started = st.get("startedAt")
    facts = [("Status", RESOLVED if notice.event == RESOLVED else word), ("Affected", what)]
    if started:
        facts.append(("Started", _when(started)))
    if notice.event == RESOLVED and st.get("resolvedAt"):
        facts.append(("Resolved", _when(st["resolvedAt"])))
        facts.append(("Duration", duration(st, now)))
    if st.get("cause") and sp.get("type") != decide.EMERGENCY:
        facts.append(("Cause", st["cause"]))
    if sp.get("postIncidentReport"):
        facts.append(("Post-incident report", sp["postIncidentReport"]))
    intro = {
        START: f"We are seeing problems with {what}: requests may fail or be slow. We will keep you posted.",
        RESOLVED: st.get("resolution") or f"{what} is operating normally again.",
    }.get(notice.event, "There is news about an incident affecting an API you use.")
    message = (update or {}).get("message")
    lines = [intro, ""] + ([message, ""] if message and message != intro else [])
    lines += [f"{k}: {v}" for k, v in facts]
    text = "\n".join(lines) + "\n"
    e = html.escape
    body = (
        f"<p>{e(intro)}</p>"
        + (f"<p>{e(message)}</p>" if message and message != intro else "")
        + "<dl>"
        + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts)
        + "</dl>"
    )
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(subject)}</title></head>'
        f'<body style="font-family:system-ui,sans-serif;color:#1b1f24;background:#ffffff">{body}</body></html>'
    )
    meta = incident.get("metadata") or {}
    data = {
        "type": "incident",
        "event": event,
        "subject": subject,
        "text": text,
        "incident": {
            "id": meta.get("name"),
            "kind": sp.get("type", decide.INCIDENT),
            "status": facts[0][1],
            "impact": st.get("impact"),
            "cause": st.get("cause"),
            "startedAt": started,
            "resolvedAt": st.get("resolvedAt"),
            "postIncidentReport": sp.get("postIncidentReport"),
            "products": [
                {"name": recipient.product, "displayName": name, "versions": list(recipient.versions)}
            ],
        },
        "update": (
            {"message": update.get("message"), "status": update.get("status"), "at": update.get("at")}
            if update
            else None
        ),
    }
    return Message(subject, text, page, data)


def duration(st: dict, now: datetime) -> str:
    start = _time(st.get("startedAt"))
    end = _time(st.get("resolvedAt")) or now
    if start is None:
        return "unknown"
    seconds = max(0.0, (end - start).total_seconds())
    return format_duration(round(seconds) if seconds < 60 else round(seconds / 60) * 60)


def _when(value: str) -> str:
    moment = _time(value)
    return f"{moment:%a %d %b %Y %H:%M} UTC" if moment else value


def _time(value: object) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None
