"""Reconcile one AlertRule: record what was delivered, evaluate its alerts, persist the decision.

Order matters for "a restart neither loses nor repeats a notification": the records (with
what is owed to whom) are written before anything is sent; the outbox (``pitwall.outbox``)
sends them beside this reconcile and hands the results back, and the next reconcile records
them. A crash in between leaves the owed notifications in status for the next sender round
(a resend carries the same dedup key). The reconcile itself never waits on a receiver.

A deleted rule keeps Pitwall's finalizer until every alert it fired is resolved and the resolve
delivered (or given up on after the grace period, recorded in an Event): an object that
disappears or is being deleted counts as gone, so its alert resolves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from datetime import datetime, timedelta
from functools import partial

import httpx
from prometheus_client import Counter, Gauge

from .. import durations, egress, finalizers
from ..api.base import default_of
from ..api.maintenancewindow import MaintenanceWindowSpec
from ..conditions import Condition, summary
from ..errors import InvalidSpec
from ..masking import Masker
from ..outbox import Batch, Sender
from ..runtime import Runtime
from ..vocabulary import LABEL_PRODUCT, Stalled, condition_of, target_product
from . import digest, state
from . import status as alert_status
from . import traffic as traffic_rules
from .delivery import RetryPolicy, deliver, deliver_message, secret_parts
from .rules import Rule, matches, parse_rule
from .state import ACK_ANNOTATION, ACK_BY_ANNOTATION, apply_results, evaluate, observe, parse_acks

log = logging.getLogger("pitwall.alerts")
KIND = "AlertRule"

FIRING = Gauge("pitwall_alerts_firing", "Alerts firing now", ["namespace", "rule", "severity"])
DELIVERIES = Counter(
    "pitwall_notifications_total",
    "Notification deliveries by receiver type and result",
    ["receiver_type", "event", "result"],
)
ATTEMPTS = Counter(
    "pitwall_notification_attempts_total", "Delivery attempts by receiver type", ["receiver_type"]
)


class AlertService:
    def __init__(self, addresses: egress.Policy = egress.Policy(), rt: Runtime | None = None) -> None:
        self.addresses = addresses  # the operator's egress policy (runtime.Runtime.egress)
        self.http: httpx.AsyncClient | None = None
        base = float(os.environ.get("PITWALL_DELIVERY_BASE_DELAY", "0.5"))
        self.policy = RetryPolicy(base_delay=base, max_delay=max(base, 30.0 * base / 0.5))
        # The outbox's tries are short (a few quick attempts); retrying later, with backoff and
        # across restarts, is the records' job (state.apply_results).
        self.send_policy = RetryPolicy(
            max_attempts=3, base_delay=base, max_delay=max(base, 2.0), max_total=15.0, timeout=10.0
        )
        self.retry_base = float(os.environ.get("PITWALL_OUTBOX_RETRY_BASE", state.RETRY_BASE))
        self.sender = (
            Sender(KIND, partial(_send, rt), on_result=partial(rt.enqueue, KIND), workers=4)
            if rt is not None
            else None
        )

    @property
    def outbox(self) -> Sender:
        if self.sender is None:
            raise RuntimeError("AlertService was made without a runtime: it has no outbox")
        return self.sender

    @property
    def client(self) -> httpx.AsyncClient:
        """The receivers' HTTP client (made by :meth:`start`)."""
        if self.http is None:
            raise RuntimeError("the service is not started")
        return self.http

    async def start(self) -> None:
        self.http = egress.client(self.addresses)
        if self.sender:
            self.sender.start()

    async def stop(self) -> None:
        if self.sender:
            await self.sender.stop()
        if self.http:
            await self.http.aclose()


def _service(rt: Runtime) -> AlertService:
    return rt.alerts


def held_objects(rt: Runtime, namespace: str) -> set[tuple[str, str]]:
    """(kind, name) of everything inside an active window that suppresses alerts."""
    products, backends = set(), set()
    for window in rt.stores["MaintenanceWindow"].list(namespace):
        status = window.get("status") or {}
        if status.get("phase") != "Active" or not (window.get("spec") or {}).get(
            "suppressAlerts", default_of(MaintenanceWindowSpec, "suppress_alerts")
        ):
            continue
        affected = status.get("affected") or {}
        products |= {p["name"] for p in affected.get("apiProducts") or [] if p.get("effect") == "Unavailable"}
        backends |= set(affected.get("backends") or [])
    held = {("ApiProduct", p) for p in products} | {("Backend", b) for b in backends}
    for probe in rt.stores["Probe"].list(namespace):
        if (probe.get("spec") or {}).get("checkMaintenancePage"):
            continue  # it checks the maintenance page itself: a broken page must page someone
        target = target_product(probe)
        labelled = (probe["metadata"].get("labels") or {}).get(LABEL_PRODUCT)
        if (
            (target and target[0] in products)
            or labelled in products
            or (probe.get("status") or {}).get("state") == "Maintenance"
        ):
            held.add(("Probe", probe["metadata"]["name"]))
    return held


async def reconcile(rt: Runtime, namespace: str, name: str) -> float | None:
    service = _service(rt)
    obj = rt.stores[KIND].copy(namespace, name)
    if obj is None:
        rt.forget(KIND, namespace, name)
        service.outbox.forget(namespace, name)
        return None
    deleting = finalizers.deleting(obj)
    await finalizers.ensure(rt, obj)
    spec = obj.get("spec") or {}
    status = rt.status_of(obj)
    try:
        rule = parse_rule(namespace, name, spec)
    except InvalidSpec as exc:
        if deleting:  # nothing can be sent through a rule that does not parse
            await finalizers.release(rt, obj)
            return None
        await _stalled(rt, obj, exc.reason, exc.message)
        return None
    # Condition messages are stored with the alerts (the Details of notifications): never with a
    # receiver's secret in them, in any encoding.
    mask = Masker()
    if not deleting:
        for receiver in rule.receivers:
            if receiver.secret_ref is None:
                continue
            try:
                value = await _secret(rt, namespace, receiver)
            except InvalidSpec as exc:  # not opted in
                await _stalled(rt, obj, exc.reason, f"receiver {receiver.name}: {exc.message}")
                return 60.0
            if value is None:
                await _stalled(
                    rt,
                    obj,
                    "SecretNotFound",
                    f"receiver {receiver.name}: Secret "
                    f"{receiver.secret_ref.name} (key {receiver.secret_ref.key}) not found in {namespace}",
                )
                return 60.0
            for part in secret_parts(value):
                mask.add(part)

    # What the outbox delivered since the last reconcile, recorded in this write.
    delivered = service.outbox.pending(namespace, name)
    records = status.get("alerts") or []
    lost: list[str] = []
    if delivered:
        records = apply_results(records, delivered, lost=lost, retry_base=service.retry_base)
        for item in delivered:
            sent_to = rule.receiver(item.receiver)
            kind_ = sent_to.type if sent_to else "unknown"
            DELIVERIES.labels(kind_, item.event, "ok" if item.ok else "failed").inc()
            ATTEMPTS.labels(kind_).inc(item.attempts)
            if not item.ok:
                log.warning(
                    "delivery to %s failed after %d attempts: %s",
                    item.receiver,
                    item.attempts,
                    item.error,
                    extra={"kind": KIND, "object": f"{namespace}/{name}", "receiver": item.receiver},
                )

    observations = []
    if not deleting and rule.traffic is not None:  # real traffic (alerts/traffic.py), not a condition
        observations = await traffic_rules.observations(rt, rule, namespace, records)
    elif not deleting:  # a rule being deleted resolves everything it fired
        for kind in rule.selector.kinds:
            for target in rt.stores[kind].list(namespace):
                if target["metadata"].get("deletionTimestamp"):
                    continue  # being deleted: its alerts resolve now (its finalizer waits for that)
                if matches(rule.selector, kind, target["metadata"].get("labels")):
                    observations.append(observe(target, rule.when.condition))
    if mask:
        observations = [dataclasses.replace(o, message=mask(o.message)) for o in observations]
    now = durations.now()
    acks = parse_acks(obj["metadata"].get("annotations"))
    held = held_objects(rt, namespace)
    if rule.traffic is not None:
        held = traffic_rules.held_units(held, observations)
    result = evaluate(rule, records, observations, now, held=held, acks=acks)
    records = result.records
    await _write(rt, obj, rule, records, result.firing, len(observations))
    await traffic_rules.war_room(rt, obj, rule, result, observations)
    service.outbox.settled(namespace, name, delivered)
    for line in lost:
        await rt.event(obj, "NotificationFailed", line[:1000], warning=True)

    for transition in result.transitions:
        log.info(
            "alert %s: %s -> %s",
            transition.key,
            transition.old,
            transition.new,
            extra={"kind": KIND, "object": f"{namespace}/{name}", "alert": transition.key},
        )
        if transition.new in (state.FIRING, state.RESOLVED, state.HELD):
            await rt.event(
                obj,
                f"Alert{transition.new.title()}",
                f"{transition.key}: {transition.subject}",
                warning=transition.new == "firing",
            )
    for key in result.acks_unknown:
        await rt.event(obj, "UnknownAcknowledgement", f"no open alert has key {key}", warning=True)
    if result.acks_applied:
        annotations = {ACK_ANNOTATION: None, ACK_BY_ANNOTATION: None}
        await rt.kube.patch(KIND, namespace, name, {"metadata": {"annotations": annotations}})
        await rt.event(
            obj,
            "Acknowledged",
            ", ".join(result.acks_applied) + " acknowledged by " + next(iter(acks.values()), "annotation"),
        )

    owed = [(r["key"], o) for r in records for o in r.get("outstanding") or []]
    if result.notifications:
        service.outbox.kick(namespace, name)
    if deleting:
        FIRING.labels(namespace, name, rule.severity).set(0)
        if not owed:
            await finalizers.release(rt, obj)
            return None
        if finalizers.overdue(obj, now):
            await rt.event(
                obj,
                "CleanupAbandoned",
                f"deleted after {finalizers.grace():.0f}s with "
                f"{len(owed)} notifications undelivered: "
                + "; ".join(f"{o['event']} of {k} to {o['receiver']}" for k, o in owed)[:900],
                warning=True,
            )
            await finalizers.release(rt, obj)
            return None
        service.outbox.kick(namespace, name)
        return 1.0
    wake = [result.wake_at] if result.wake_at else []
    if rule.digest:
        next_digest = await _digest(rt, obj, rule, records, {})
        wake.append(next_digest)
    if wake:
        return max(0.0, (min(wake) - durations.now()).total_seconds()) + 0.01
    return None


async def _send(rt: Runtime, namespace: str, name: str, exclude: frozenset) -> Batch:
    """The outbox's round for one rule: deliver everything owed and due, receivers in parallel."""
    service = _service(rt)
    obj = rt.stores[KIND].get(namespace, name)
    if obj is None:
        return Batch()
    try:
        rule = parse_rule(namespace, name, obj.get("spec") or {})
    except InvalidSpec:
        return Batch()
    notifications, ids, later = state.due(
        rule, rt.status_of(obj).get("alerts") or [], durations.now(), exclude
    )
    batch = Batch(ids=ids)
    secrets: dict[str, str | None] = {}
    for receiver in {n.receiver.name: n.receiver for n in notifications}.values():
        try:
            secrets[receiver.name] = await _secret(rt, namespace, receiver)
        except InvalidSpec:
            secrets[receiver.name] = None  # the reconcile says why (Stalled); this try fails once

    async def per_receiver(items: list) -> list:
        out = []
        for notification in items:  # in event order: a firing before its resolve
            log.info(
                "sending %s to %s for %s",
                notification.event,
                notification.receiver.name,
                ", ".join(notification.keys),
                extra={"kind": KIND, "object": f"{namespace}/{name}", "receiver": notification.receiver.name},
            )
            out += await deliver(
                notification,
                secrets.get(notification.receiver.name),
                service.client,
                policy=service.send_policy,
                addresses=service.addresses,
                message_id=partial(state.message_id, rule),
            )
        return out

    by_receiver: dict[str, list] = {}
    for notification in notifications:
        by_receiver.setdefault(notification.receiver.name, []).append(notification)
    for part in await asyncio.gather(*(per_receiver(v) for v in by_receiver.values())):
        batch.results += part
    if later is not None:
        batch.wake = max(0.0, (later - durations.now()).total_seconds()) + 0.01
    return batch


async def _secret(rt: Runtime, namespace: str, receiver) -> str | None:
    """The receiver's Secret value (None without a secretRef, or when missing); InvalidSpec when
    the Secret is not opted in for receivers."""
    ref = receiver.secret_ref
    if ref is None:
        return None
    return await rt.kube.read_secret(namespace, ref.name, ref.key, use="receivers")


async def _digest(rt: Runtime, obj: dict, rule: Rule, records: list[dict], secrets: dict) -> datetime:
    """Send the digest when its interval has passed; return when the next one is due."""
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    schedule = rule.digest
    assert schedule is not None  # called for rules with a digest only
    last = digest.last_sent(rt.status_of(obj), obj["metadata"])
    now = durations.now()
    if digest.due(schedule.interval, last, now):
        products = rt.stores["ApiProduct"].list(namespace)
        traffic, period = await traffic_rules.digest_traffic(rt, namespace, products, schedule.interval)
        message = digest.compose(
            name, namespace, records, rt.stores["Probe"].list(namespace), products, last, now, traffic, period
        )
        for receiver_name in schedule.receivers:
            receiver = rule.receiver(receiver_name)
            if receiver is None:  # parse_rule refuses a digest naming an unknown receiver
                continue
            try:
                secret = secrets.get(receiver_name) or await _secret(rt, namespace, receiver)
            except InvalidSpec:
                secret = None
            result = await deliver_message(
                receiver,
                message,
                secret,
                _service(rt).client,
                event="digest",
                policy=_service(rt).send_policy,
                addresses=_service(rt).addresses,
            )
            DELIVERIES.labels(receiver.type, "digest", "ok" if result.ok else "failed").inc()
        status = rt.status_of(obj)
        await rt.write_status(
            obj,
            alert_status.patch(
                firing=status.get("firing", 0), alerts=records, last_digest_at=durations.rfc3339(now)
            ),
            [],
        )
        last = durations.rfc3339(now)
    return durations.parse_time(last or durations.rfc3339(now)) + timedelta(seconds=schedule.interval)


async def _write(rt: Runtime, obj: dict, rule: Rule, records: list[dict], firing: int, watched: int) -> None:
    meta = obj["metadata"]
    FIRING.labels(meta["namespace"], meta["name"], rule.severity).set(firing)
    held = sum(1 for r in records if r.get("state") == state.HELD)
    if firing:
        firing_cond = Condition.true("Firing", "AlertsFiring", f"{firing} alerts firing ({rule.severity})")
    else:
        firing_cond = Condition.false("Firing", "NoAlerts", f"{held} held" if held else "")
    await rt.write_status(
        obj,
        alert_status.patch(firing=firing, alerts=records[:1000]),
        [firing_cond, *summary(True, ready_reason="Watching", ready_message=f"watching {watched} objects")],
    )


async def _stalled(rt: Runtime, obj: dict, reason: str, message: str) -> None:
    stalled = condition_of(obj, "Stalled") or {}
    already = stalled.get("reason") == reason and stalled.get("status") == "True"
    await rt.write_status(
        obj,
        alert_status.patch(),
        [Condition.unknown("Firing", reason, message), *summary(False, stalled=Stalled(reason, message))],
    )
    if not already:
        await rt.event(obj, reason, message, warning=True)
