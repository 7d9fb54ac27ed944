"""Reconcile one AlertRule: evaluate its alerts, persist the decision, deliver, persist results.

Order matters for "a restart neither loses nor repeats a notification": the records (with
what is owed to whom) are written before anything is sent, and the delivery results after, so
a crash in between leaves the owed notifications in status for the next evaluation.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

import httpx
from prometheus_client import Counter, Gauge

from .. import durations, egress
from ..api.maintenancewindow import SPEC_DEFAULTS as WINDOW
from ..conditions import Condition, summary
from ..errors import InvalidSpec
from ..runtime import Runtime
from ..vocabulary import LABEL_PRODUCT, Stalled, target_product
from . import digest
from .delivery import RetryPolicy, deliver, deliver_message
from .rules import Rule, matches, parse_rule
from .state import ACK_ANNOTATION, ACK_BY_ANNOTATION, apply_results, evaluate, observe, parse_acks

log = logging.getLogger("pitwall.alerts")
KIND = "AlertRule"

FIRING = Gauge("pitwall_alerts_firing", "Alerts firing now", ["namespace", "rule", "severity"])
DELIVERIES = Counter("pitwall_notifications_total", "Notification deliveries by receiver type and result",
                     ["receiver_type", "event", "result"])
ATTEMPTS = Counter("pitwall_notification_attempts_total", "Delivery attempts by receiver type", ["receiver_type"])


class AlertService:
    def __init__(self, addresses: egress.Policy = egress.Policy()) -> None:
        self.addresses = addresses          # the operator's egress policy (runtime.Runtime.egress)
        self.http: httpx.AsyncClient | None = None
        base = float(os.environ.get("PITWALL_DELIVERY_BASE_DELAY", "0.5"))
        self.policy = RetryPolicy(base_delay=base, max_delay=max(base, 30.0 * base / 0.5))
        self.last: dict[tuple[str, str], tuple[Rule, list[dict]]] = {}   # for resolves after deletion

    async def start(self) -> None:
        self.http = egress.client(self.addresses)

    async def stop(self) -> None:
        if self.http:
            await self.http.aclose()


def _service(rt: Runtime) -> AlertService:
    return rt.alerts


def held_objects(rt: Runtime, namespace: str) -> set[tuple[str, str]]:
    """(kind, name) of everything inside an active window that suppresses alerts."""
    products, backends = set(), set()
    for window in rt.stores["MaintenanceWindow"].list(namespace):
        status = window.get("status") or {}
        if status.get("phase") != "Active" or not (window.get("spec") or {}).get("suppressAlerts", WINDOW["suppressAlerts"]):
            continue
        affected = status.get("affected") or {}
        products |= {p["name"] for p in affected.get("apiProducts") or [] if p.get("effect") == "Unavailable"}
        backends |= set(affected.get("backends") or [])
    held = {("ApiProduct", p) for p in products} | {("Backend", b) for b in backends}
    for probe in rt.stores["Probe"].list(namespace):
        if (probe.get("spec") or {}).get("checkMaintenancePage"):
            continue   # it checks the maintenance page itself: a broken page must page someone
        target = target_product(probe)
        labelled = (probe["metadata"].get("labels") or {}).get(LABEL_PRODUCT)
        if (target and target[0] in products) or labelled in products or \
                (probe.get("status") or {}).get("state") == "Maintenance":
            held.add(("Probe", probe["metadata"]["name"]))
    return held


async def reconcile(rt: Runtime, namespace: str, name: str) -> float | None:
    service = _service(rt)
    obj = rt.stores[KIND].copy(namespace, name)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        await _resolve_deleted(rt, namespace, name)
        return None
    spec = obj.get("spec") or {}
    status = rt.status_of(obj)
    try:
        rule = parse_rule(namespace, name, spec)
    except InvalidSpec as exc:
        await _stalled(rt, obj, exc.reason, exc.message)
        return None
    secrets: dict[str, str | None] = {}
    for receiver in rule.receivers:
        if receiver.secret_ref:
            try:
                value = await rt.kube.read_secret(namespace, receiver.secret_ref.name, receiver.secret_ref.key,
                                                  use="receivers")
            except InvalidSpec as exc:          # not opted in
                await _stalled(rt, obj, exc.reason, f"receiver {receiver.name}: {exc.message}")
                return 60.0
            if value is None:
                await _stalled(rt, obj, "SecretNotFound", f"receiver {receiver.name}: Secret "
                               f"{receiver.secret_ref.name} (key {receiver.secret_ref.key}) not found in {namespace}")
                return 60.0
            secrets[receiver.name] = value

    observations = []
    for kind in rule.selector.kinds:
        for target in rt.stores[kind].list(namespace):
            if matches(rule.selector, kind, target["metadata"].get("labels")):
                observations.append(observe(target, rule.when.condition))
    now = durations.now()
    acks = parse_acks(obj["metadata"].get("annotations"))
    result = evaluate(rule, status.get("alerts") or [], observations, now,
                      held=held_objects(rt, namespace), acks=acks)
    records = result.records
    await _write(rt, obj, rule, records, result.firing, len(observations))
    service.last[(namespace, name)] = (rule, records)

    for transition in result.transitions:
        log.info("alert %s: %s -> %s", transition.key, transition.old, transition.new,
                 extra={"kind": KIND, "object": f"{namespace}/{name}", "alert": transition.key})
        if transition.new in ("firing", "resolved", "held"):
            await rt.event(obj, f"Alert{transition.new.title()}", f"{transition.key}: {transition.subject}",
                           warning=transition.new == "firing")
    for key in result.acks_unknown:
        await rt.event(obj, "UnknownAcknowledgement", f"no open alert has key {key}", warning=True)
    if result.acks_applied:
        annotations = {ACK_ANNOTATION: None, ACK_BY_ANNOTATION: None}
        await rt.kube.patch(KIND, namespace, name, {"metadata": {"annotations": annotations}})
        await rt.event(obj, "Acknowledged", ", ".join(result.acks_applied) + " acknowledged by "
                       + next(iter(acks.values()), "annotation"))

    if result.notifications:
        results = []
        for notification in result.notifications:
            log.info("sending %s to %s for %s", notification.event, notification.receiver.name,
                     ", ".join(a.key for a in notification.alerts),
                     extra={"kind": KIND, "object": f"{namespace}/{name}", "receiver": notification.receiver.name})
            delivered = await deliver(notification, secrets.get(notification.receiver.name), service.http,
                                      policy=service.policy, addresses=service.addresses)
            for item in delivered:
                DELIVERIES.labels(notification.receiver.type, item.event, "ok" if item.ok else "failed").inc()
                ATTEMPTS.labels(notification.receiver.type).inc(item.attempts)
                if not item.ok:
                    log.warning("delivery to %s failed after %d attempts: %s", item.receiver, item.attempts,
                                item.error, extra={"kind": KIND, "object": f"{namespace}/{name}",
                                                   "receiver": item.receiver})
            results += delivered
        records = apply_results(records, results)
        await _write(rt, obj, rule, records, result.firing, len(observations))
        service.last[(namespace, name)] = (rule, records)
    wake = [result.wake_at] if result.wake_at else []
    if rule.digest:
        next_digest = await _digest(rt, obj, rule, records, secrets)
        wake.append(next_digest)
    if wake:
        return max(0.0, (min(wake) - durations.now()).total_seconds()) + 0.01
    return None


async def _digest(rt: Runtime, obj: dict, rule: Rule, records: list[dict], secrets: dict) -> datetime:
    """Send the digest when its interval has passed; return when the next one is due."""
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    last = digest.last_sent(rt.status_of(obj), obj["metadata"])
    now = durations.now()
    if digest.due(rule.digest.interval, last, now):
        message = digest.compose(name, namespace, records, rt.stores["Probe"].list(namespace),
                                 rt.stores["ApiProduct"].list(namespace), last, now)
        for receiver_name in rule.digest.receivers:
            receiver = rule.receiver(receiver_name)
            result = await deliver_message(receiver, message, secrets.get(receiver_name), _service(rt).http,
                                           event="digest", policy=_service(rt).policy,
                                           addresses=_service(rt).addresses)
            DELIVERIES.labels(receiver.type, "digest", "ok" if result.ok else "failed").inc()
        status = rt.status_of(obj)
        await rt.write_status(obj, {"firing": status.get("firing", 0), "alerts": records,
                                    "lastDigestAt": durations.rfc3339(now)}, [])
        last = durations.rfc3339(now)
    return durations.parse_time(last) + timedelta(seconds=rule.digest.interval)


async def _write(rt: Runtime, obj: dict, rule: Rule, records: list[dict], firing: int, watched: int) -> None:
    meta = obj["metadata"]
    FIRING.labels(meta["namespace"], meta["name"], rule.severity).set(firing)
    held = sum(1 for r in records if r.get("state") == "held")
    if firing:
        firing_cond = Condition.true("Firing", "AlertsFiring", f"{firing} alerts firing ({rule.severity})")
    else:
        firing_cond = Condition.false("Firing", "NoAlerts", f"{held} held" if held else "")
    await rt.write_status(obj, {"firing": firing, "alerts": records[:1000]},
                          [firing_cond, *summary(True, ready_reason="Watching",
                                                 ready_message=f"watching {watched} objects")])


async def _stalled(rt: Runtime, obj: dict, reason: str, message: str) -> None:
    previous = (obj.get("status") or {}).get("conditions") or []
    already = any(c.get("type") == "Stalled" and c.get("reason") == reason and c.get("status") == "True"
                  for c in previous)
    await rt.write_status(obj, {}, [Condition.unknown("Firing", reason, message),
                                    *summary(False, stalled=Stalled(reason, message))])
    if not already:
        await rt.event(obj, reason, message, warning=True)


async def _resolve_deleted(rt: Runtime, namespace: str, name: str) -> None:
    """A deleted rule resolves its alerts: whoever saw a firing gets the resolve."""
    service = _service(rt)
    rt.forget(KIND, namespace, name)
    remembered = service.last.pop((namespace, name), None)
    if remembered is None:
        return
    rule, records = remembered
    result = evaluate(rule, records, [], durations.now())
    for notification in result.notifications:
        secret = None
        if notification.receiver.secret_ref:
            try:
                secret = await rt.kube.read_secret(namespace, notification.receiver.secret_ref.name,
                                                   notification.receiver.secret_ref.key, use="receivers")
            except InvalidSpec:
                secret = None       # recorded as unconfigured by the delivery
        await deliver(notification, secret, service.http, policy=service.policy, addresses=service.addresses)
    FIRING.labels(namespace, name, rule.severity).set(0)
