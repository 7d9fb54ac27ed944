"""An AlertRule spec, validated by its model and turned into plain dataclasses; the label
selector it carries.

The model (:mod:`pitwall.api.alertrule`, which the CRD is generated from) is the one place for
the fields, enums and defaults: :func:`parse_rule` validates the stored spec through it, so a
spec the model refuses (stored before a bound existed, or written around the schema) raises
:class:`pitwall.errors.InvalidSpec` with reason ``InvalidSpec`` and the field named
(``spec.severity: Input should be 'critical', ...``). What the model checks only as CEL at
admission, and what needs the whole rule (a receiver an escalation step names but the rule
does not define, a receiver without the Secret it needs, escalation steps out of order,
durations below the operator's floors), is judged here with a reason of its own, so the
reconciler can set ``Stalled``. The dataclasses carry what the engine needs in its own units
(durations in seconds, Secret references).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .. import durations, floors
from ..api import alertrule as model
from ..api import receivers as receiver_model
from ..api.base import parse
from ..errors import InvalidSpec
from ..traffic.figures import Figures, VersionFigures
from ..vocabulary import SecretRef

# Response targets: how long a firing alert may wait for an acknowledgement (the model's
# description of ``severity`` states them; a unit test holds the two together).
# ``blocked`` alerts are recorded and shown but never page anyone, hence no target.
SEVERITIES: dict[str, float | None] = dict(
    zip(model.SEVERITIES, (30 * 60, 2 * 3600, 24 * 3600, 48 * 3600, None), strict=True)
)
# ``spec.traffic``, as the model declares it (judge_traffic reads it as it is).
TrafficCondition = model.TrafficCondition


@dataclass(frozen=True)
class Receiver:
    """Where notifications go. The Secret holds what must not leak (URL, key, SMTP URL).

    Also made by hand for receivers that are not in a spec (a consumer's contact address)."""

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
    kinds: tuple[str, ...]
    match_labels: Mapping[str, str]
    match_expressions: tuple[Requirement, ...]


@dataclass(frozen=True)
class When:
    condition: str
    status: str
    for_: float


@dataclass(frozen=True)
class Digest:
    interval: float
    receivers: tuple[str, ...]


TRAFFIC_WHEN = "Traffic"  # the condition name traffic observations carry (status "True": breached)


@dataclass(frozen=True)
class Rule:
    namespace: str
    name: str
    severity: str
    selector: Selector
    when: When
    receivers: tuple[Receiver, ...]
    escalation: tuple[EscalationStep, ...]
    summary: str | None
    repeat_interval: float
    send_resolved: bool
    group_wait: float
    digest: Digest | None
    traffic: TrafficCondition | None

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


def parse_rule(namespace: str, name: str, raw: Mapping) -> Rule:
    """Build a :class:`Rule` from an AlertRule ``spec`` (camelCase, as stored)."""
    return rule_of(namespace, name, parse(model.AlertRuleSpec, raw))


def rule_of(namespace: str, name: str, spec: model.AlertRuleSpec) -> Rule:
    """Build a :class:`Rule` from a validated spec, judging what the model leaves to CEL."""
    receivers = tuple(_receiver(r, f"spec.receivers[{i}]") for i, r in enumerate(spec.receivers or []))
    names = [r.name for r in receivers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidSpec("DuplicateReceiver", f"receiver names must be unique: {', '.join(duplicates)}")
    escalation = tuple(
        EscalationStep(
            _duration(step.after, f"spec.escalation[{i}].after"),
            _known(step.receivers, names, f"spec.escalation[{i}]"),
        )
        for i, step in enumerate(spec.escalation or [])
    )
    for i in range(1, len(escalation)):
        if escalation[i].after <= escalation[i - 1].after:
            raise InvalidSpec(
                "InvalidEscalation",
                f"spec.escalation[{i}].after must be later than spec.escalation[{i - 1}].after",
            )
    digest = None
    if spec.digest is not None:
        digest = Digest(
            _duration(spec.digest.interval, "spec.digest.interval"),
            _known(spec.digest.receivers, names, "spec.digest"),
        )
    repeat_interval = _duration(spec.repeat_interval, "spec.repeatInterval")
    floors.check_alerting(
        repeat_interval, [step.after for step in escalation], digest.interval if digest else None
    )
    traffic = _traffic(spec.traffic) if spec.traffic is not None else None
    for_ = _duration(spec.when.for_, "spec.when.for")
    return Rule(
        namespace=namespace,
        name=name,
        severity=spec.severity,
        selector=_selector(spec.selector),
        # A traffic rule fires while its traffic observation is breached ("True"), after when.for.
        when=When(TRAFFIC_WHEN, "True", for_)
        if traffic
        else When(spec.when.condition, spec.when.status, for_),
        receivers=receivers,
        escalation=escalation,
        summary=_summary(spec.summary) or ("{message}" if traffic else None),
        repeat_interval=repeat_interval,
        send_resolved=spec.send_resolved,
        group_wait=_duration(spec.group_wait, "spec.groupWait"),
        digest=digest,
        traffic=traffic,
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


def _selector(raw: model.Selector) -> Selector:
    expressions = []
    for i, expr in enumerate(raw.match_expressions or []):
        values = tuple(expr.values or ())
        where = f"spec.selector.matchExpressions[{i}]"
        if expr.operator in ("In", "NotIn") and not values:
            raise InvalidSpec("InvalidSelector", f"{where}: {expr.operator} needs at least one value")
        if expr.operator in ("Exists", "DoesNotExist") and values:
            raise InvalidSpec("InvalidSelector", f"{where}: {expr.operator} takes no values")
        expressions.append(Requirement(expr.key, expr.operator, values))
    return Selector(tuple(raw.kinds), dict(raw.match_labels or {}), tuple(expressions))


def _traffic(raw: model.TrafficCondition) -> model.TrafficCondition:
    if raw.signal in ("errorRate", "latency", "failedRequests") and raw.above is None:
        raise InvalidSpec("InvalidTraffic", f"spec.traffic: signal {raw.signal} needs above")
    if raw.signal == "requestRate" and raw.below is None:
        raise InvalidSpec("InvalidTraffic", "spec.traffic: signal requestRate needs below")
    _duration(raw.over, "spec.traffic.over")
    return raw


def parse_receiver(raw: Mapping | receiver_model.Receiver, where: str = "receiver") -> Receiver:
    """One receiver entry (AlertRule receivers, MaintenanceWindow notice receivers, Incident
    recipients), raw (camelCase, validated by the model here) or already a model."""
    if not isinstance(raw, receiver_model.Receiver):
        raw = parse(receiver_model.Receiver, raw, where)
    return _receiver(raw, where)


def _receiver(raw: receiver_model.Receiver, where: str) -> Receiver:
    name, type_ = raw.name, raw.type
    ref = raw.secret_ref
    secret_ref = SecretRef(ref.name, ref.key) if ref is not None else None
    url = raw.url or None
    if url and urlsplit(url).scheme not in ("http", "https"):
        raise InvalidSpec("InvalidReceiver", f"{where}: receiver {name}: url must be http(s)")
    # A plain webhook may carry its URL in the spec; everything else needs its Secret.
    if secret_ref is None and not (type_ == "webhook" and url):
        what = "a secretRef or a url" if type_ == "webhook" else "a secretRef"
        raise InvalidSpec("MissingSecretRef", f"{where}: receiver {name} ({type_}) needs {what}")
    email = raw.email or receiver_model.EmailSettings()
    to = tuple(email.to or ())
    if type_ == "email" and not to:
        raise InvalidSpec("InvalidReceiver", f"{where}: receiver {name}: email needs email.to")
    escalation_only = raw.escalation_only if isinstance(raw, receiver_model.AlertReceiver) else False
    return Receiver(name, type_, secret_ref, url, to, email.from_, escalation_only)


def _known(wanted: list[str], names: list[str], where: str) -> tuple[str, ...]:
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise InvalidSpec(
            "UnknownReceiver", f"{where} names receivers this rule does not define: {', '.join(unknown)}"
        )
    return tuple(wanted)


def _duration(value: str, where: str) -> float:
    """A duration the model admitted as a string (its grammar is a CEL rule the model does not run)."""
    try:
        return durations.parse(value)
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
                f"spec.summary: placeholder {{{name}:{spec[:20]}}} takes no format spec: write {{{name}}}",
            )
    return text


# -- traffic conditions (pure: the figures come from traffic.service) ----------------------------
@dataclass(frozen=True)
class TrafficVerdict:
    """One unit a traffic rule watches (``product``, ``product/version`` or ``.../consumer``)."""

    name: str
    breached: bool
    message: str
    value: float | None = None  # the figure judged (None: not judged)


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
        out.append(TrafficVerdict(name, breached, message, value))
    return out
