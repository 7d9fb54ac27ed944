"""The alert state machine: pure, so restarts and retries are decided by data, not by memory.

One call to :func:`evaluate` takes a rule, the alert records kept in the AlertRule's
``status.alerts``, what the selected objects' condition says now, the objects held by a
maintenance window and the acknowledgements found on the rule, and returns the new records
plus the notifications now due. Everything the next evaluation needs lives in the records,
so an operator restart neither repeats nor loses a notification.

Lifecycle of one alert (one per rule and object, with a stable key):

- ``pending``: the condition holds, but not yet for ``when.for`` (measured from the
  condition's ``lastTransitionTime``). Clears quietly if the condition stops holding.
- ``firing``: the initial receivers (not ``escalationOnly``) are notified once. While it is
  not acknowledged, escalation steps fire by time since firing, and every receiver paged so
  far (initial and escalated) gets a reminder each ``repeatInterval`` (0 disables them).
  Reminders and escalation stop at acknowledgement; ``blocked`` alerts never notify.
- ``held``: the object is in an active maintenance window that suppresses alerts. Nothing is
  sent; the clocks of a held alert that already fired keep running.
- ``resolved``: the condition no longer holds, or the object is gone or deselected. Every
  receiver that was sent a firing, escalation or reminder gets the resolve (``sendResolved``),
  even when the alert was held meanwhile. Kept a while for the record, then dropped.

Notifications are never sent from here. Each one owed is written into the record's
``outstanding`` list first (the outbox, persisted in status); :func:`due` hands the entries
that are due to the sender, grouped into one notification per receiver and event, and
:func:`apply_results` removes the delivered ones, drops a permanently refused one (recorded
once), or pushes a failed one back with a growing delay, at most ``MAX_TRIES`` times.
Outstanding entries therefore survive a crash between deciding and sending, and a failed
delivery is retried by a later round. The caller should persist the records returned by
:func:`evaluate` before it strips the acknowledgement annotation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .. import conditions
from ..api import alertrule as model
from ..api.base import SHORT_TEXT
from ..durations import parse_time, rfc3339
from ..vocabulary import ANNOTATION_ACK, ANNOTATION_ACK_BY
from .rules import SEVERITIES, Receiver, Rule

ACK_ANNOTATION, ACK_BY_ANNOTATION = ANNOTATION_ACK, ANNOTATION_ACK_BY

PENDING, FIRING, HELD, RESOLVED = model.ALERT_STATES
EVENTS = model.EVENTS  # in this order: a firing is sent before its resolve

RESOLVED_KEEP = 50  # resolved records kept per rule ...
RESOLVED_TTL = timedelta(hours=24)  # ... and for at most this long
DELIVERIES_KEEP = model.DELIVERIES_KEPT  # delivery attempts kept per alert (as the model describes)
RETRY_BASE = 30.0  # a failed delivery is owed again after 30s, 1m, 2m ...
RETRY_CAP = 1800.0  # ... at most every 30 minutes
MAX_TRIES = 10  # ... and given up (recorded, with an Event) after this many
SUBJECT_MAX = 1024
MESSAGE_MAX = 1000  # a condition message is a hint, not a log (status.alerts[].message)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Observation:
    """What one selected object's ``when.condition`` says now."""

    kind: str
    name: str
    status: str  # True | False | Unknown (Unknown when the condition is absent)
    since: datetime | None = None  # its lastTransitionTime
    reason: str = ""
    message: str = ""
    value: float | None = None  # a traffic rule's figure (failedRequests: the count), for the war room


@dataclass
class Owed:
    """A notification decided but not yet delivered to one receiver."""

    receiver: str
    event: str
    due: datetime
    tries: int = 0


@dataclass
class AlertRecord:
    """One entry of ``status.alerts``; ``message`` is the condition's message (the failing step,
    reason, correlation id and log link, or why a Backend was declared down), stored masked and
    cut to ``MESSAGE_MAX`` so the outbox's send, even after a restart, still has its details."""

    key: str
    kind: str
    name: str
    subject: str
    state: str
    severity: str
    pending_since: datetime | None = None
    since: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    escalation_step: int = 0
    last_notified_at: datetime | None = None
    resolved_at: datetime | None = None
    notified: list[str] = field(default_factory=list)
    outstanding: list[Owed] = field(default_factory=list)
    deliveries: list[dict] = field(default_factory=list)
    message: str = ""

    @property
    def ack_deadline(self) -> datetime | None:
        window = SEVERITIES.get(self.severity)
        if self.since is None or window is None:
            return None
        return self.since + timedelta(seconds=window)

    @classmethod
    def from_dict(cls, raw: Mapping) -> AlertRecord:
        obj = raw.get("object") or {}
        return cls(
            key=raw["key"],
            kind=obj.get("kind", ""),
            name=obj.get("name", ""),
            subject=raw.get("subject", ""),
            state=raw.get("state", PENDING),
            severity=raw.get("severity", ""),
            pending_since=_time(raw.get("pendingSince")),
            since=_time(raw.get("since")),
            acknowledged_by=raw.get("acknowledgedBy"),
            acknowledged_at=_time(raw.get("acknowledgedAt")),
            escalation_step=int(raw.get("escalationStep") or 0),
            last_notified_at=_time(raw.get("lastNotifiedAt")),
            resolved_at=_time(raw.get("resolvedAt")),
            notified=list(raw.get("notified") or []),
            outstanding=[
                Owed(o["receiver"], o["event"], _time(o.get("due")) or _EPOCH, int(o.get("tries") or 0))
                for o in raw.get("outstanding") or []
            ],
            deliveries=[dict(d) for d in raw.get("deliveries") or []],
            message=raw.get("message") or "",
        )

    def to_dict(self) -> dict:
        """The record as ``status.alerts[]`` stores it, through the model (camelCase; what the
        model does not declare, or declares otherwise, cannot be written)."""
        return model.Alert(
            key=self.key,
            object=model.AlertObject(kind=self.kind, name=self.name),
            subject=self.subject,
            state=self.state,
            severity=self.severity,
            pending_since=_stamp(self.pending_since),
            since=_stamp(self.since),
            ack_deadline=_stamp(self.ack_deadline),
            acknowledged_by=self.acknowledged_by,
            acknowledged_at=_stamp(self.acknowledged_at),
            escalation_step=self.escalation_step,
            last_notified_at=_stamp(self.last_notified_at),
            resolved_at=_stamp(self.resolved_at),
            notified=list(self.notified),
            outstanding=[
                model.Owed(receiver=o.receiver, event=o.event, due=rfc3339(o.due), tries=o.tries)
                for o in self.outstanding
            ],
            deliveries=self.deliveries,
            message=details(self.message) or None,
        ).model_dump(by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class Notification:
    """One message to send: one receiver, one event, the alerts of one rule it is about."""

    rule: Rule
    receiver: Receiver
    event: str
    alerts: tuple[AlertRecord, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(a.key for a in self.alerts)


@dataclass(frozen=True)
class DeliveryResult:
    """How sending (part of) a notification ended; ``keys`` are the alerts it carried."""

    receiver: str
    event: str
    keys: tuple[str, ...]
    ok: bool
    attempts: int
    error: str | None
    at: datetime
    permanent: bool = False  # refused for a reason no retry fixes: recorded once, not retried


@dataclass(frozen=True)
class Transition:
    """An alert changed state (``old`` None: it appeared; ``new`` None: it cleared before firing)."""

    key: str
    subject: str
    severity: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class Evaluation:
    records: list[dict]  # the new status.alerts
    notifications: list[Notification]  # due now; deliver, then apply_results()
    transitions: list[Transition]
    acks_applied: tuple[str, ...]  # every ack key handed in is consumed: strip them all
    acks_unknown: tuple[str, ...]  # ... these matched no open alert (worth a Warning Event)
    firing: int  # alerts in state firing (held ones are not counted)
    wake_at: datetime | None  # evaluate again by then even if nothing changes


def details(message: str) -> str:
    """A condition message as stored with its alert: at most ``MESSAGE_MAX`` characters.

    Secrets are masked before it gets here (the reconcile masks with the rule's receiver
    Secrets; probes mask their own before writing conditions)."""
    message = message.strip()
    return message if len(message) <= MESSAGE_MAX else message[: MESSAGE_MAX - 1] + "…"


def alert_key(rule: Rule, kind: str, name: str) -> str:
    """Stable, readable and unique across rules and namespaces (PagerDuty/Opsgenie dedup on it)."""
    digest = hashlib.sha256(f"{rule.namespace}/{rule.name}/{kind}/{name}".encode()).hexdigest()[:8]
    return f"{kind.lower()}-{name[:60]}-{digest}"


def observe(obj: Mapping, condition: str) -> Observation:
    """Read ``condition`` from a Kubernetes object (an absent condition counts as Unknown)."""
    name = (obj.get("metadata") or {}).get("name", "")
    cond = conditions.get((obj.get("status") or {}).get("conditions"), condition)
    if cond is None:
        return Observation(obj.get("kind", ""), name, "Unknown")
    return Observation(
        obj.get("kind", ""),
        name,
        cond.get("status", "Unknown"),
        _time(cond.get("lastTransitionTime")),
        cond.get("reason", ""),
        cond.get("message", ""),
    )


def parse_acks(annotations: Mapping[str, str] | None) -> dict[str, str]:
    """Acknowledgements on the rule: ``pitwall.dev/acknowledge: KEY[,KEY...]`` -> {key: who}."""
    annotations = annotations or {}
    # status.alerts[].acknowledgedBy holds at most SHORT_TEXT characters
    who = annotations.get(ACK_BY_ANNOTATION, "").strip()[:SHORT_TEXT] or "annotation"
    keys = (k.strip() for k in annotations.get(ACK_ANNOTATION, "").split(","))
    return {k: who for k in keys if k}


def evaluate(
    rule: Rule,
    records: Iterable[Mapping],
    observations: Iterable[Observation],
    now: datetime,
    *,
    held: Collection[tuple[str, str]] = (),
    acks: Mapping[str, str] | None = None,
) -> Evaluation:
    """Advance every alert of ``rule`` to ``now``.

    ``observations`` are the objects the rule selects now (an alert whose object is missing
    resolves; evaluating with none resolves all, e.g. when the rule is deleted). ``held`` are
    ``(kind, name)`` of objects in an active maintenance window with ``suppressAlerts``.
    """
    return _Evaluator(rule, now, {tuple(h) for h in held}, dict(acks or {})).run(
        [AlertRecord.from_dict(r) for r in records], observations
    )


def due(
    rule: Rule,
    records: Iterable[Mapping],
    now: datetime,
    exclude: Collection[tuple[str, str, str, str, int]] = (),
) -> tuple[list[Notification], set[tuple[str, str, str, str, int]], datetime | None]:
    """The notifications owed and due now (one per receiver and event), the ids of the owed
    entries they carry, and when the next falls due.

    This is what the outbox sends. An owed entry's id is ``(alert key, receiver, event, due,
    tries)``: the same entry keeps it until its result is recorded (a failure counts a try and
    moves ``due``, a new reminder has a new ``due``), so ``exclude`` (sent, result not recorded
    yet or only just) never holds back a retry or a later notification. Held alerts owe nothing
    while held.
    """
    recs = [AlertRecord.from_dict(r) for r in records]
    groups: dict[tuple[str, str], list[AlertRecord]] = {}
    ids: set[tuple[str, str, str, str, int]] = set()
    wakes = []
    for rec in recs:
        if rec.state == HELD:
            continue
        for owed in rec.outstanding:
            ident = (rec.key, owed.receiver, owed.event, rfc3339(owed.due), owed.tries)
            if ident in exclude:
                continue
            if owed.due <= now:
                groups.setdefault((owed.receiver, owed.event), []).append(rec)
                ids.add(ident)
            else:
                wakes.append(owed.due)
    notifications = [
        Notification(rule, receiver, event, tuple(groups[(receiver.name, event)]))
        for receiver in rule.receivers
        for event in EVENTS
        if (receiver.name, event) in groups
    ]
    return notifications, ids, min(wakes, default=None)


def message_id(rule: Rule, n: Notification) -> str:
    """A stable id for one notification (the e-mail Message-ID): a resend after a crash between
    sending and recording is the same message, a new firing or reminder is a new one."""
    parts = [rule.namespace, rule.name, n.receiver.name, n.event]
    for alert in n.alerts:
        parts += [
            alert.key,
            rfc3339(alert.since) if alert.since else "",
            rfc3339(alert.last_notified_at) if n.event == "reminder" and alert.last_notified_at else "",
            str(alert.escalation_step) if n.event == "escalation" else "",
        ]
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]


def apply_results(
    records: Iterable[Mapping],
    results: Iterable[DeliveryResult],
    *,
    lost: list[str] | None = None,
    retry_base: float = RETRY_BASE,
) -> list[dict]:
    """Record delivery outcomes: log each attempt, settle what arrived, re-schedule what did not.

    A permanent refusal (HTTP 4xx but 408/429, SMTP 5xx, no usable receiver) is recorded once and
    not retried; a transient one is owed again after a growing delay, at most ``MAX_TRIES``
    times. Each notification given up on is appended to ``lost`` (for a Warning Event).
    """
    recs = [AlertRecord.from_dict(r) for r in records]
    by_key = {r.key: r for r in recs}
    for res in results:
        for key in res.keys:
            rec = by_key.get(key)
            if rec is None:
                continue
            entry = model.Delivery(
                receiver=res.receiver,
                event=res.event,
                at=rfc3339(res.at),
                ok=res.ok,
                attempts=res.attempts,
                error=res.error or None,
            ).model_dump(by_alias=True, exclude_none=True)
            rec.deliveries = (rec.deliveries + [entry])[-DELIVERIES_KEEP:]
            owed = _find(rec.outstanding, res.receiver, res.event)
            if owed is None:
                continue
            if res.ok:
                rec.outstanding.remove(owed)
                continue
            owed.tries += 1
            if res.permanent or owed.tries >= MAX_TRIES:
                rec.outstanding.remove(owed)
                if lost is not None:
                    why = res.error or "failed"
                    lost.append(
                        f"{res.event} of {key} to {res.receiver}: {why}"
                        + ("" if res.permanent else f" (gave up after {owed.tries} tries)")
                    )
            else:
                owed.due = res.at + timedelta(seconds=min(RETRY_CAP, retry_base * 2 ** (owed.tries - 1)))
    return [r.to_dict() for r in recs]


class _Evaluator:
    """One evaluation's working state (kept off the records so they stay plain data)."""

    def __init__(self, rule: Rule, now: datetime, held: set, acks: dict[str, str]):
        self.rule, self.now, self.held, self.acks = rule, now, held, acks
        self.transitions: list[Transition] = []
        self.applied: list[str] = []
        self.open_keys: set[str] = set()
        self.wakes: list[datetime] = []
        self.group_due: dict[str, datetime] = {}

    def run(self, records: list[AlertRecord], observations: Iterable[Observation]) -> Evaluation:
        by_key = {r.key: r for r in records}
        # groupWait: firings not yet sent wait for their group; later ones join the same group.
        for rec in records:
            for owed in rec.outstanding:
                if owed.event == FIRING and owed.tries == 0 and owed.due > self.now:
                    self.group_due[owed.receiver] = min(owed.due, self.group_due.get(owed.receiver, owed.due))
        out: dict[str, AlertRecord] = {}
        for obs in observations:
            key = alert_key(self.rule, obs.kind, obs.name)
            current: AlertRecord | None = by_key.pop(key, None)
            if obs.status == self.rule.when.status:
                current = self.holds(current, key, obs)
            elif current is not None:
                current = self.clear(current, obs.message)
            if current is not None:
                out[key] = current
        for key, rec in by_key.items():
            gone = self.clear(rec, f"{rec.kind} {rec.name} no longer exists or is no longer selected")
            if gone is not None:
                out[key] = gone
        kept = self.retain(out.values())
        notifications = self.due(kept)
        return Evaluation(
            records=[r.to_dict() for r in kept],
            notifications=notifications,
            transitions=self.transitions,
            acks_applied=tuple(self.applied),
            acks_unknown=tuple(k for k in self.acks if k not in self.open_keys),
            firing=sum(1 for r in kept if r.state == FIRING),
            wake_at=min(self.wakes, default=None),
        )

    def holds(self, rec: AlertRecord | None, key: str, obs: Observation) -> AlertRecord:
        """The condition holds for this object: open, fire, hold, escalate or remind."""
        if rec is not None and rec.state == RESOLVED and any(o.event == RESOLVED for o in rec.outstanding):
            # The last incident's resolve is still owed: the next one opens once it is delivered
            # (or given up). Replacing the record would drop that resolve, and a trigger sent
            # first would join the old incident at PagerDuty/Opsgenie (same dedup key), which
            # the late resolve would then close.
            self.open_keys.add(key)
            self.wakes.append(min(o.due for o in rec.outstanding))
            return rec
        if rec is None or rec.state == RESOLVED:
            rec = AlertRecord(key, obs.kind, obs.name, "", "", self.rule.severity)
        if rec.since is None and obs.since is not None:
            rec.pending_since = min(obs.since, self.now)
        rec.pending_since = rec.pending_since or self.now
        rec.severity = self.rule.severity
        rec.subject = _subject(self.rule, obs)
        rec.message = obs.message
        self.open_keys.add(key)
        self.acknowledge(rec)
        held = (obs.kind, obs.name) in self.held
        if held:
            self.set_state(rec, HELD)
        elif rec.since is not None:
            self.set_state(rec, FIRING)
            self.escalate(rec)
            self.remind(rec)
        else:
            fire_at = rec.pending_since + timedelta(seconds=self.rule.when.for_)
            if self.now >= fire_at:
                self.fire(rec)
            else:
                self.set_state(rec, PENDING)
                self.wakes.append(fire_at)
        return rec

    def clear(self, rec: AlertRecord, message: str) -> AlertRecord | None:
        """The condition stopped holding (or the object is gone): resolve, or forget a non-alert."""
        if rec.state == RESOLVED:
            return rec
        if rec.since is None:
            self.transitions.append(Transition(rec.key, rec.subject, rec.severity, rec.state, None))
            return None
        self.set_state(rec, RESOLVED)
        rec.resolved_at = self.now
        rec.message = message
        rec.outstanding = []  # a firing nobody received yet is news no more
        if self.rule.send_resolved:
            self.owe(rec, list(rec.notified), RESOLVED)
        return rec

    def fire(self, rec: AlertRecord) -> None:
        rec.since = self.now
        self.set_state(rec, FIRING)
        if self.rule.pages:
            self.owe(rec, [r.name for r in self.rule.initial_receivers], FIRING)
        self.escalate(rec)

    def escalate(self, rec: AlertRecord) -> None:
        since = rec.since  # set when the alert fired: only firing alerts escalate
        if not self.rule.pages or rec.acknowledged_at is not None or since is None:
            return
        elapsed = (self.now - since).total_seconds()
        steps = self.rule.escalation
        reached = [i for i, step in enumerate(steps, 1) if i > rec.escalation_step and step.after <= elapsed]
        if reached:
            # Steps missed while the operator was down are all called now, once.
            names = [n for i in reached for n in steps[i - 1].receivers]
            self.owe(rec, list(dict.fromkeys(names)), "escalation")
            rec.escalation_step = reached[-1]
        if rec.escalation_step < len(steps):
            self.wakes.append(since + timedelta(seconds=steps[rec.escalation_step].after))

    def remind(self, rec: AlertRecord) -> None:
        interval = self.rule.repeat_interval
        if not self.rule.pages or rec.acknowledged_at is not None or interval <= 0 or not rec.notified:
            return
        last = rec.last_notified_at or rec.since
        if last is None:  # notified implies fired: never here
            return
        if (self.now - last).total_seconds() >= interval:
            self.owe(rec, list(rec.notified), "reminder")
            last = self.now
        self.wakes.append(last + timedelta(seconds=interval))

    def acknowledge(self, rec: AlertRecord) -> None:
        if rec.key not in self.acks or rec.acknowledged_at is not None:
            return
        rec.acknowledged_by = self.acks[rec.key]
        rec.acknowledged_at = self.now
        rec.outstanding = [o for o in rec.outstanding if o.event in (FIRING, RESOLVED)]
        self.applied.append(rec.key)

    def owe(self, rec: AlertRecord, names: list[str], event: str) -> None:
        for name in names:
            if event != RESOLVED and name not in rec.notified:
                rec.notified.append(name)
            if _find(rec.outstanding, name, event) is not None:
                continue  # still owed from before: one message, not two
            due = self.now
            if event == FIRING and self.rule.group_wait > 0:
                due = self.group_due.setdefault(name, self.now + timedelta(seconds=self.rule.group_wait))
            rec.outstanding.append(Owed(name, event, due))
        if names:
            rec.last_notified_at = self.now

    def set_state(self, rec: AlertRecord, state: str) -> None:
        if rec.state != state:
            self.transitions.append(Transition(rec.key, rec.subject, rec.severity, rec.state or None, state))
            rec.state = state

    def retain(self, records: Iterable[AlertRecord]) -> list[AlertRecord]:
        """Open alerts, then the most recent resolved ones; drop what can no longer be delivered."""
        names = {r.name for r in self.rule.receivers}
        open_, resolved = [], []
        for rec in records:
            # A rule turned ``blocked`` still owes resolves, but pages no more.
            rec.outstanding = [
                o for o in rec.outstanding if o.receiver in names and (self.rule.pages or o.event == RESOLVED)
            ]
            if rec.state != RESOLVED:
                open_.append(rec)
            elif rec.resolved_at is not None and self.now - rec.resolved_at < RESOLVED_TTL:
                resolved.append(rec)
        rank = {FIRING: 0, HELD: 1, PENDING: 2}
        open_.sort(key=lambda r: (rank[r.state], r.key))
        resolved.sort(key=lambda r: (r.resolved_at, r.key), reverse=True)
        return open_ + resolved[:RESOLVED_KEEP]

    def due(self, records: list[AlertRecord]) -> list[Notification]:
        groups: dict[tuple[str, str], list[AlertRecord]] = {}
        for rec in records:
            if rec.state == HELD:
                continue  # paused, not dropped: sent if the window ends first
            for owed in rec.outstanding:
                if owed.due <= self.now:
                    groups.setdefault((owed.receiver, owed.event), []).append(rec)
                else:
                    self.wakes.append(owed.due)
        return [
            Notification(self.rule, receiver, event, tuple(groups[(receiver.name, event)]))
            for receiver in self.rule.receivers
            for event in EVENTS
            if (receiver.name, event) in groups
        ]


def _subject(rule: Rule, obs: Observation) -> str:
    """``summary`` with ``{kind}``, ``{name}`` ... filled in; unknown fields and bad braces stay as typed."""
    facts = _Facts(
        kind=obs.kind,
        name=obs.name,
        namespace=rule.namespace,
        rule=rule.name,
        condition=rule.when.condition,
        status=obs.status,
        reason=obs.reason,
        message=obs.message,
        severity=rule.severity,
    )
    if rule.summary:
        try:
            subject = rule.summary.format_map(facts)
        except (ValueError, IndexError, AttributeError):
            subject = rule.summary
    else:
        subject = f"{obs.kind} {obs.name}: {rule.when.condition} is {obs.status}"
        subject = f"{subject} ({obs.reason})" if obs.reason else subject
    # A summary may quote a whole condition message: one line, and no longer than any receiver's
    # title field takes (PagerDuty's summary, 1,024 characters, is the largest).
    subject = " ".join(subject.split())
    return subject if len(subject) <= SUBJECT_MAX else subject[: SUBJECT_MAX - 1] + "…"


class _Facts(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _find(owed: list[Owed], receiver: str, event: str) -> Owed | None:
    return next((o for o in owed if o.receiver == receiver and o.event == event), None)


def _stamp(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment is not None else None


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None
