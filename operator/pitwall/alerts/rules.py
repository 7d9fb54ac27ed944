"""An AlertRule spec, parsed once into plain dataclasses, and the label selector it carries.

The CRD schema refuses most bad input at admission; what it cannot judge (a receiver that
an escalation step names but the rule does not define, a receiver without the Secret it
needs, escalation steps out of order) raises :class:`pitwall.errors.InvalidSpec` here, so the
lead can set ``Stalled`` with the reason. Defaults mirror the CRD's, so a spec read from a
test or an old object behaves like one read from the API server.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .. import durations, floors
from ..api import alertrule as model
from ..api.base import default_of
from ..api.receivers import RECEIVER_TYPES
from ..api.shared import CONDITION_STATUSES, OPERATORS
from ..errors import InvalidSpec
from ..traffic.figures import Figures, VersionFigures
from ..vocabulary import SecretRef

# Response targets: how long a firing alert may wait for an acknowledgement (the model's
# description of ``severity`` states them; a unit test holds the two together).
# ``blocked`` alerts are recorded and shown but never page anyone, hence no target.
SEVERITIES: dict[str, float | None] = dict(
    zip(model.SEVERITIES, (30 * 60, 2 * 3600, 24 * 3600, 48 * 3600, None), strict=True)
)
KINDS = model.ALERT_KINDS
# Defaults as the model (and so the CRD) declares them, in seconds where they are durations.
_WHEN = model.When()
REPEAT_INTERVAL = durations.parse(default_of(model.AlertRuleSpec, "repeat_interval"))
GROUP_WAIT = durations.parse(default_of(model.AlertRuleSpec, "group_wait"))
SEND_RESOLVED: bool = default_of(model.AlertRuleSpec, "send_resolved")


@dataclass(frozen=True)
class Receiver:
    """Where notifications go. The Secret holds what must not leak (URL, key, SMTP URL)."""

    name: str
    type: str
    secret_ref: SecretRef | None = None
    url: str | None = None
    email_to: tuple[str, ...] = ()
    email_from: str | None = None
    escalation_only: bool = False


@dataclass(frozen=True)
class EscalationStep:
    after: float
    receivers: tuple[str, ...]


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Selector:
    kinds: tuple[str, ...] = KINDS
    match_labels: Mapping[str, str] | None = None
    match_expressions: tuple[Requirement, ...] = ()


@dataclass(frozen=True)
class When:
    condition: str = _WHEN.condition
    status: str = _WHEN.status
    for_: float = durations.parse(_WHEN.for_)


@dataclass(frozen=True)
class Digest:
    interval: float
    receivers: tuple[str, ...]


_TRAFFIC = model.TrafficCondition.model_fields
TRAFFIC_WHEN = "Traffic"  # the condition name traffic observations carry (status "True": breached)


@dataclass(frozen=True)
class TrafficCondition:
    """``spec.traffic``: fire on real traffic instead of a condition (see traffic.judge)."""

    signal: str
    per: str = _TRAFFIC["per"].default
    above: float | None = None
    below: float | None = None
    week_ago_ratio: bool = False
    quantile: str = _TRAFFIC["quantile"].default
    error_class: str = _TRAFFIC["error_class"].default
    min_rps: float = _TRAFFIC["min_rps"].default
    over: str = _TRAFFIC["over"].default
    war_room: bool = False


@dataclass(frozen=True)
class Rule:
    namespace: str
    name: str
    severity: str
    selector: Selector
    when: When
    receivers: tuple[Receiver, ...] = ()
    escalation: tuple[EscalationStep, ...] = ()
    summary: str | None = None
    repeat_interval: float = REPEAT_INTERVAL
    send_resolved: bool = SEND_RESOLVED
    group_wait: float = GROUP_WAIT
    digest: Digest | None = None
    traffic: TrafficCondition | None = None

    @property
    def ack_window(self) -> float | None:
        """Seconds a firing alert has to be acknowledged in; None for ``blocked``."""
        return SEVERITIES[self.severity]

    @property
    def pages(self) -> bool:
        return self.ack_window is not None

    def receiver(self, name: str) -> Receiver | None:
        return next((r for r in self.receivers if r.name == name), None)

    @property
    def initial_receivers(self) -> tuple[Receiver, ...]:
        return tuple(r for r in self.receivers if not r.escalation_only)


def parse_rule(namespace: str, name: str, spec: Mapping) -> Rule:
    """Build a :class:`Rule` from an AlertRule ``spec`` (camelCase, as stored)."""
    severity = spec.get("severity", "")
    if severity not in SEVERITIES:
        raise InvalidSpec("InvalidSeverity", f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    receivers = tuple(parse_receiver(r) for r in spec.get("receivers") or [])
    names = [r.name for r in receivers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidSpec("DuplicateReceiver", f"receiver names must be unique: {', '.join(duplicates)}")
    escalation = tuple(
        EscalationStep(
            _duration(step.get("after"), f"escalation[{i}].after"),
            _known(step.get("receivers") or [], names, f"escalation[{i}]"),
        )
        for i, step in enumerate(spec.get("escalation") or [])
    )
    for i in range(1, len(escalation)):
        if escalation[i].after <= escalation[i - 1].after:
            raise InvalidSpec(
                "InvalidEscalation", f"escalation[{i}].after must be later than escalation[{i - 1}].after"
            )
    digest = None
    if spec.get("digest"):
        raw = spec["digest"]
        digest = Digest(
            _duration(raw.get("interval"), "digest.interval"),
            _known(raw.get("receivers") or [], names, "digest"),
        )
    repeat_interval = _duration(spec.get("repeatInterval"), "repeatInterval", REPEAT_INTERVAL)
    floors.check_alerting(
        repeat_interval, [step.after for step in escalation], digest.interval if digest else None
    )
    return Rule(
        namespace=namespace,
        name=name,
        severity=severity,
        selector=_selector(spec.get("selector") or {}),
        when=_traffic_when(spec.get("when") or {}) if spec.get("traffic") else _when(spec.get("when") or {}),
        receivers=receivers,
        escalation=escalation,
        summary=_summary(spec.get("summary") or None) or ("{message}" if spec.get("traffic") else None),
        repeat_interval=repeat_interval,
        send_resolved=bool(spec.get("sendResolved", SEND_RESOLVED)),
        group_wait=_duration(spec.get("groupWait"), "groupWait", GROUP_WAIT),
        digest=digest,
        traffic=_traffic(spec["traffic"]) if spec.get("traffic") else None,
    )


def matches(selector: Selector, kind: str, labels: Mapping[str, str] | None) -> bool:
    """True when an object of ``kind`` with ``labels`` is selected (Kubernetes semantics)."""
    labels = labels or {}
    if kind not in selector.kinds:
        return False
    if any(labels.get(k) != v for k, v in (selector.match_labels or {}).items()):
        return False
    return all(_requirement_holds(req, labels) for req in selector.match_expressions)


def label_selector(selector: Selector) -> str:
    """The same selector as a ``labelSelector`` query string, to list only matching objects."""
    parts = [f"{k}={v}" for k, v in sorted((selector.match_labels or {}).items())]
    for req in selector.match_expressions:
        if req.operator == "Exists":
            parts.append(req.key)
        elif req.operator == "DoesNotExist":
            parts.append(f"!{req.key}")
        else:
            op = "in" if req.operator == "In" else "notin"
            parts.append(f"{req.key} {op} ({','.join(req.values)})")
    return ",".join(parts)


def _requirement_holds(req: Requirement, labels: Mapping[str, str]) -> bool:
    present = req.key in labels
    if req.operator == "In":
        return present and labels[req.key] in req.values
    if req.operator == "NotIn":
        # Kubernetes: an object without the label satisfies NotIn.
        return not present or labels[req.key] not in req.values
    if req.operator == "Exists":
        return present
    return not present


def _selector(raw: Mapping) -> Selector:
    kinds = tuple(raw.get("kinds") or KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InvalidSpec(
            "InvalidSelector",
            f"selector.kinds: {', '.join(unknown)} cannot be alerted on (use {', '.join(KINDS)})",
        )
    expressions = []
    for i, expr in enumerate(raw.get("matchExpressions") or []):
        key, op, values = expr.get("key") or "", expr.get("operator"), tuple(expr.get("values") or ())
        where = f"selector.matchExpressions[{i}]"
        if not key:
            raise InvalidSpec("InvalidSelector", f"{where}: key is required")
        if op not in OPERATORS:
            raise InvalidSpec(
                "InvalidSelector", f"{where}: operator {op!r} is not one of {', '.join(OPERATORS)}"
            )
        if op in ("In", "NotIn") and not values:
            raise InvalidSpec("InvalidSelector", f"{where}: {op} needs at least one value")
        if op in ("Exists", "DoesNotExist") and values:
            raise InvalidSpec("InvalidSelector", f"{where}: {op} takes no values")
        expressions.append(Requirement(key, op, values))
    return Selector(kinds, dict(raw.get("matchLabels") or {}), tuple(expressions))


def _when(raw: Mapping) -> When:
    status = str(raw.get("status", When.status))
    if status not in CONDITION_STATUSES:
        raise InvalidSpec("InvalidCondition", f"when.status {status!r} is not one of True, False, Unknown")
    return When(
        raw.get("condition") or When.condition, status, _duration(raw.get("for"), "when.for", When.for_)
    )


def _traffic_when(raw: Mapping) -> When:
    """A traffic rule fires while its traffic observation is breached ("True"), after when.for."""
    return When(TRAFFIC_WHEN, "True", _duration(raw.get("for"), "when.for", When.for_))


def _traffic(raw: Mapping) -> TrafficCondition:
    signal = raw.get("signal")
    if signal not in model.TRAFFIC_SIGNALS:
        raise InvalidSpec(
            "InvalidTraffic", f"traffic.signal {signal!r} is not one of {', '.join(model.TRAFFIC_SIGNALS)}"
        )
    above, below = raw.get("above"), raw.get("below")
    if signal in ("errorRate", "latency", "failedRequests") and above is None:
        raise InvalidSpec("InvalidTraffic", f"traffic.signal {signal} needs above")
    if signal == "requestRate" and below is None:
        raise InvalidSpec("InvalidTraffic", "traffic.signal requestRate needs below")
    over = str(raw.get("over") or _TRAFFIC["over"].default)
    _duration(over, "traffic.over")
    return TrafficCondition(
        signal=signal,
        per=raw.get("per") or _TRAFFIC["per"].default,
        above=float(above) if above is not None else None,
        below=float(below) if below is not None else None,
        week_ago_ratio=bool(raw.get("weekAgoRatio", False)),
        quantile=raw.get("quantile") or _TRAFFIC["quantile"].default,
        error_class=raw.get("errorClass") or _TRAFFIC["error_class"].default,
        min_rps=float(raw.get("minRps", _TRAFFIC["min_rps"].default)),
        over=over,
        war_room=bool(raw.get("warRoom", False)),
    )


def parse_receiver(raw: Mapping) -> Receiver:
    """One receiver entry (AlertRule receivers, MaintenanceWindow notice receivers)."""
    name, type_ = raw.get("name") or "", raw.get("type")
    if not name:
        raise InvalidSpec("InvalidReceiver", "every receiver needs a name")
    if type_ not in RECEIVER_TYPES:
        raise InvalidSpec(
            "InvalidReceiverType",
            f"receiver {name}: type {type_!r} is not one of {', '.join(RECEIVER_TYPES)}",
        )
    ref = raw.get("secretRef")
    secret_ref = SecretRef(ref.get("name", ""), ref.get("key", "")) if ref else None
    if secret_ref and not (secret_ref.name and secret_ref.key):
        raise InvalidSpec("InvalidReceiver", f"receiver {name}: secretRef needs both name and key")
    url = raw.get("url") or None
    if url and urlsplit(url).scheme not in ("http", "https"):
        raise InvalidSpec("InvalidReceiver", f"receiver {name}: url must be http(s)")
    # A plain webhook may carry its URL in the spec; everything else needs its Secret.
    if secret_ref is None and not (type_ == "webhook" and url):
        what = "a secretRef or a url" if type_ == "webhook" else "a secretRef"
        raise InvalidSpec("MissingSecretRef", f"receiver {name} ({type_}) needs {what}")
    email = raw.get("email") or {}
    to = tuple(email.get("to") or ())
    if type_ == "email" and not to:
        raise InvalidSpec("InvalidReceiver", f"receiver {name}: email needs email.to")
    return Receiver(
        name, type_, secret_ref, url, to, email.get("from"), bool(raw.get("escalationOnly", False))
    )


def _known(wanted: list[str], names: list[str], where: str) -> tuple[str, ...]:
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise InvalidSpec(
            "UnknownReceiver", f"{where} names receivers this rule does not define: {', '.join(unknown)}"
        )
    return tuple(wanted)


def _duration(value: str | float | None, where: str, default: float | None = None) -> float:
    try:
        return durations.parse(value, default)
    except ValueError as exc:
        raise InvalidSpec("InvalidDuration", f"{where}: {exc}") from None


def _summary(text: str | None) -> str | None:
    """The summary template, refused when a placeholder has a format spec: ``{kind:>999999999}``
    would make each alert of the rule a gigabyte string (the CRD refuses it too; this catches
    what its pattern cannot see and objects stored before it). A broken template is kept: it is
    shown as typed."""
    if not text:
        return None
    try:
        fields = [(name, spec) for _, name, spec, _ in string.Formatter().parse(text) if name is not None]
    except ValueError:
        return text
    for name, spec in fields:
        if spec:
            raise InvalidSpec(
                "InvalidSummary",
                f"summary placeholder {{{name}:{spec[:20]}}} takes no format spec: write {{{name}}}",
            )
    return text


# -- traffic conditions (pure: the figures come from traffic.service) ----------------------------
@dataclass(frozen=True)
class TrafficVerdict:
    """One unit a traffic rule watches (``product``, ``product/version`` or ``.../consumer``)."""

    name: str
    breached: bool
    message: str


def _fmt(signal: str, value: float) -> str:
    if signal == "errorRate":
        return f"{value * 100:.1f}%"
    if signal == "latency":
        return f"{value:.0f}ms"
    if signal == "failedRequests":
        return f"{value:.0f} failed requests"
    return f"{value:.3g} requests/s"


def judge_traffic(
    cond: TrafficCondition,
    product: str,
    figures: Figures | None,
    versions: list[str],
    failed: float | None = None,
) -> list[TrafficVerdict]:
    """Judge one product's figures (``figures`` None: Prometheus had none, the caller keeps state).

    ``versions`` are the product's running versions: one that served nothing has no series at
    all, and is judged with a rate of 0 (noTraffic, requestRate). ``failed`` is the
    failedRequests count over ``cond.over``. Per product, latency is the slowest version's.
    """
    if figures is None:
        return []
    units: list[tuple[str, float, float, float, float, float, float | None, float | None]] = []
    # (name, rps, failed, server, client, timeouts, latency ms, week-ago rps)
    by_version = {name: figures.versions.get(name) for name in sorted(set(versions) | set(figures.versions))}

    def latency_ms(v: VersionFigures | None) -> float | None:
        seconds = (v.latency or {}).get(cond.quantile) if v is not None else None
        return seconds * 1000 if seconds is not None else None

    if cond.per == "product" or cond.signal == "failedRequests":  # a count of the whole product
        known = [v for v in by_version.values() if v is not None]
        slowest = [ms for ms in (latency_ms(v) for v in known) if ms is not None]
        weeks = [v.week_ago for v in known if v.week_ago is not None]
        units.append(
            (
                product,
                sum(v.rps for v in known),
                sum(v.failed for v in known),
                sum(v.server for v in known),
                sum(v.client for v in known),
                sum(v.timeouts for v in known),
                max(slowest) if slowest else None,
                sum(weeks) if weeks else None,
            )
        )
    elif cond.per == "version":
        for name, v in by_version.items():
            if v is None:
                units.append((f"{product}/{name}", 0.0, 0.0, 0.0, 0.0, 0.0, None, None))
            else:
                units.append(
                    (
                        f"{product}/{name}",
                        v.rps,
                        v.failed,
                        v.server,
                        v.client,
                        v.timeouts,
                        latency_ms(v),
                        v.week_ago,
                    )
                )
    else:
        for name, v in by_version.items():
            for consumer in v.consumers.values() if v is not None else ():
                if consumer.rps is None:
                    continue  # known only by its failures: its share cannot be judged
                errors = consumer.errors or 0.0
                units.append(
                    (f"{product}/{name}/{consumer.name}", consumer.rps, errors, errors, 0.0, 0.0, None, None)
                )
    out = []
    for name, rps, bad, server, client, timeouts, latency, week_ago in units:
        breached, value = False, None
        if cond.signal == "errorRate":
            part = {"failed": bad, "server": server, "client": client, "timeout": timeouts}[cond.error_class]
            if rps >= cond.min_rps and rps > 0:
                value = part / rps
                breached = value > (cond.above or 0.0)
        elif cond.signal == "latency":
            if rps >= cond.min_rps and latency is not None:
                value = latency
                breached = value > (cond.above or 0.0)
        elif cond.signal == "noTraffic":
            value, breached = rps, rps <= 0
        elif cond.signal == "requestRate":
            if cond.week_ago_ratio:
                if week_ago:
                    value = rps / week_ago
                    breached = value < (cond.below or 0.0)
            else:
                value, breached = rps, rps < (cond.below or 0.0)
        elif cond.signal == "failedRequests" and name == product and failed is not None:
            value, breached = failed, failed > (cond.above or 0.0)
        if value is None:
            message = f"{name}: not judged (under {cond.min_rps:g} requests/s or no figure)"
        elif cond.signal == "requestRate" and cond.week_ago_ratio:
            message = f"{name}: {value * 100:.0f}% of last week's requests (threshold {(cond.below or 0) * 100:.0f}%)"
        elif cond.signal == "noTraffic":
            message = f"{name}: {'no requests at all' if breached else _fmt('requestRate', value)}"
        else:
            limit = cond.above if cond.above is not None else cond.below
            what = (
                f" ({cond.error_class})"
                if cond.signal == "errorRate"
                else (f" ({cond.quantile})" if cond.signal == "latency" else "")
            )
            over = f" over {cond.over}" if cond.signal == "failedRequests" else ""
            message = (
                f"{name}: {cond.signal}{what} {_fmt(cond.signal, value)}{over} "
                f"({'above' if cond.above is not None else 'below'} {_fmt(cond.signal, limit or 0.0)})"
            )
        out.append(TrafficVerdict(name, breached, message))
    return out
