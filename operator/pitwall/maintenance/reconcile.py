"""Reconcile one MaintenanceWindow: phase, maintenance page Deployments, notices, status.

Driven by timers, not polling: every reconcile asks ``window.evaluate`` when the answer next
changes and requeues itself for exactly then. The Service switch itself is done by the product
reconciler (one server-side apply each way), which reads this window's ``status.phase`` and
``status.affected``; every status write here enqueues the products (``wiring``).

Notices never hold up the phase: a due notice is recorded in ``status.notices`` as owed to each
recipient, in the same write as the phase, and the outbox (``pitwall.outbox``) delivers it
beside this reconcile with bounded retries; its results come back here to be recorded. A
deleted window keeps Pitwall's finalizer until its Services are back on the product's pods, its
page is gone and its cancellation notice is delivered (or, after the grace period, its loss
recorded in an Event).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
from datetime import timedelta
from functools import partial

import httpx

from .. import durations, egress, finalizers
from ..alerts.delivery import RetryPolicy, deliver_message
from ..alerts.rules import Receiver, parse_receiver
from ..api.base import parse, status_patch
from ..api.maintenancewindow import ConsumerEmail, MaintenanceWindowSpec, MaintenanceWindowStatus
from ..conditions import Condition, summary
from ..errors import InvalidSpec
from ..logs import ref
from ..outbox import Batch, Sender
from ..runtime import Runtime
from ..vocabulary import (
    LABEL_PRODUCT,
    LABEL_ROLE,
    LABEL_VERSION,
    LABEL_WINDOW,
    ROLE_MAINTENANCE,
    SecretRef,
    Stalled,
    opt_in_problem,
)
from . import messages, notices, targets
from .page import page_deployment, page_name
from .schedule import ACTIVE
from .window import evaluate

log = logging.getLogger("pitwall.maintenance")
KIND = "MaintenanceWindow"
PAGE_LEAD = timedelta(seconds=30)  # page pods are started this long before the window opens


SEND_CONCURRENCY = 8  # recipients of one window sent to at once


class MaintenanceService:
    def __init__(self, rt: Runtime):
        self.rt = rt
        self.http: httpx.AsyncClient | None = None
        self.sender = Sender(KIND, partial(_send, rt), on_result=partial(rt.enqueue, KIND), workers=2)
        self.retry_base = float(os.environ.get("PITWALL_NOTICE_RETRY_BASE", notices.RETRY_BASE))
        # One try, a short one: retrying is the outbox's job (with backoff, across restarts).
        self.policy = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=1.0, max_total=15.0, timeout=10.0)

    @property
    def client(self) -> httpx.AsyncClient:
        """The receivers' HTTP client (made by :meth:`start`)."""
        if self.http is None:
            raise RuntimeError("the service is not started")
        return self.http

    async def start(self) -> None:
        self.http = egress.client(self.rt.egress)
        self.sender.start()

    async def stop(self) -> None:
        await self.sender.stop()
        if self.http:
            await self.http.aclose()


async def reconcile(rt: Runtime, namespace: str, name: str) -> float | None:
    service = rt.maintenance
    window = rt.stores[KIND].copy(namespace, name)
    if window is None:
        await _remove_pages(rt, namespace, name, keep=set())
        rt.forget(KIND, namespace, name)
        service.sender.forget(namespace, name)
        return None
    deleting = finalizers.deleting(window)
    await finalizers.ensure(rt, window)
    status = rt.status_of(window)
    now = durations.now()

    # What the outbox delivered since the last reconcile is recorded first, with this write.
    delivered = service.sender.pending(namespace, name)
    sent = list(status.get("notices") or [])
    if delivered:
        before = {(e.get("kind"), e.get("occurrence")) for e in sent if e.get("pending")}
        sent, lost = notices.apply_sends(sent, delivered, retry_base=service.retry_base)
        for entry in sent:
            if (entry.get("kind"), entry.get("occurrence")) in before and not entry.get("pending"):
                await _notice_event(rt, window, entry)
        if lost:
            log.warning("notices given up: %s", "; ".join(lost), extra=ref(KIND, namespace, name))

    try:
        spec = parse(MaintenanceWindowSpec, window.get("spec"))
        result = evaluate(spec, now, deleted=deleting, already_sent=sent)
    except InvalidSpec as exc:
        if deleting:  # a spec that does not parse never ran: wind down without notices
            return await _wind_down_unparsed(rt, window, sent, delivered, exc)
        await _write(
            rt,
            window,
            {"phase": status.get("phase", "Scheduled"), "notices": sent},
            [*summary(False, stalled=exc.stalled), Condition.false("Active", exc.reason, exc.message)],
        )
        service.sender.settled(namespace, name, delivered)
        await rt.event(window, exc.reason, exc.message, warning=True)
        return None

    created = window["metadata"].get("creationTimestamp")
    if created and not deleting and result.phase != ACTIVE and status.get("phase") != ACTIVE:
        # Admission refuses this; when no webhook answered, the window still never opens.
        violation = notices.lead_time_violation(spec, durations.parse_time(created))
        if violation:
            await _remove_pages(rt, namespace, name, keep=set())
            await _write(
                rt,
                window,
                {"phase": "Scheduled", "notices": sent},
                [
                    *summary(False, stalled=Stalled("InsufficientNotice", violation)),
                    Condition.false("Active", "InsufficientNotice", violation),
                ],
            )
            service.sender.settled(namespace, name, delivered)
            return None
    affected = targets.resolve(
        spec.targets, rt.stores["ApiProduct"].list(namespace), rt.stores["Backend"].list(namespace)
    )
    occurrence = result.occurrence
    page_due = (
        not deleting
        and spec.maintenance_page
        and occurrence is not None
        and (result.phase == ACTIVE or (result.phase == "Scheduled" and occurrence.start - now <= PAGE_LEAD))
    )
    wanted_pages = set()
    if page_due and occurrence is not None:
        products = {p["metadata"]["name"]: p for p in rt.stores["ApiProduct"].list(namespace)}
        for product_name, version in affected.page_versions():
            body = page_deployment(
                products[product_name], version, window, rt.settings.image, namespace, until=occurrence.end
            )
            await rt.kube.apply(body)
            wanted_pages.add(body["metadata"]["name"])

    if result.phase != status.get("phase"):
        await rt.event(window, f"Window{result.phase}", _phase_message(result.phase, spec, occurrence))
        log.info("maintenance window is %s", result.phase, extra=ref(KIND, namespace, name))

    # Owed notices go into status with the phase, in one write: nothing here waits on a receiver.
    for notice in result.due:
        names, refused = _recipients(spec, affected)
        sent = notices.owe(sent, notice, at=now, recipients=names, failed=refused)
        if not names:
            await _notice_event(rt, window, sent[-1])

    missing = ", ".join(affected.missing)
    wanted = [
        Condition.true("Active", "WindowOpen", spec.reason)
        if result.phase == ACTIVE
        else Condition.false("Active", result.phase, "")
    ]
    # Told now, not when the notice is due: the window still opens, its notices could not go.
    unusable = await _notice_secret_problem(rt, namespace, spec)
    if unusable:
        wanted += summary(False, stalled=unusable)
    elif missing:
        wanted += summary(False, not_ready=("TargetNotFound", f"targets not found: {missing}"))
    else:
        wanted += summary(
            True, ready_reason=result.phase, ready_message=f"{len(affected.products)} products affected"
        )
    await _write(rt, window, {**result.status(), "affected": affected.status(), "notices": sent}, wanted)
    service.sender.settled(namespace, name, delivered)
    owed = any(e.get("pending") for e in sent)
    if owed:
        service.sender.kick(namespace, name)

    # The page goes only once no Service selects it any more (the product reconciler switches
    # them back on this status write): deleting it first would leave the API without endpoints.
    pages_left = await _remove_pages(rt, namespace, name, keep=wanted_pages)

    if deleting:
        if not owed and not pages_left:
            await finalizers.release(rt, window)
            return None
        if finalizers.overdue(window, now):
            left = [
                f"{e.get('kind')} notice to {', '.join(p.get('name', '') for p in e.get('pending') or [])}"
                for e in sent
                if e.get("pending")
            ]
            await rt.event(
                window,
                "CleanupAbandoned",
                f"deleted after {finalizers.grace():.0f}s without: "
                + "; ".join(left + ([f"removing pages {', '.join(pages_left)}"] if pages_left else [])),
                warning=True,
            )
            await _remove_pages(rt, namespace, name, keep=set(), wait_for_services=False)
            await finalizers.release(rt, window)
            return None
        return 1.0

    wake = [result.wake_at] if result.wake_at else []
    if occurrence and result.phase == "Scheduled" and spec.maintenance_page:
        wake.append(occurrence.start - PAGE_LEAD)
    future = [(w - durations.now()).total_seconds() for w in wake if w]
    future = [s for s in future if s > 0] + ([60.0] if unusable else [])  # Secrets are not watched
    if pages_left:
        future.append(1.0)
    return min(future) + 0.001 if future else None


async def _write(rt: Runtime, window: dict, fields: dict, conditions: list[Condition]) -> None:
    """The one place status is written: through the model, so a field it does not declare
    cannot reach the API server (which would prune it silently). Fields given as None are
    cleared (a merge patch's null); fields not given are left as they are."""
    status = MaintenanceWindowStatus.model_validate(fields)
    await rt.write_status(window, status_patch(status), conditions)


async def _wind_down_unparsed(
    rt: Runtime, window: dict, sent: list[dict], delivered: list, exc: InvalidSpec
) -> float | None:
    """A deleted window whose spec does not parse (stored around the schema): Cancelled, its
    pages removed once no Service selects them, then the finalizer goes. Nothing is announced:
    the recipients cannot be worked out from a spec that does not parse."""
    meta = window["metadata"]
    await _write(rt, window, {"phase": "Cancelled", "notices": sent}, [*summary(False, stalled=exc.stalled)])
    rt.maintenance.sender.settled(meta["namespace"], meta["name"], delivered)
    pages_left = await _remove_pages(rt, meta["namespace"], meta["name"], keep=set())
    if pages_left and not finalizers.overdue(window, durations.now()):
        return 1.0
    await _remove_pages(rt, meta["namespace"], meta["name"], keep=set(), wait_for_services=False)
    await finalizers.release(rt, window)
    return None


async def _notice_secret_problem(rt: Runtime, namespace: str, spec: MaintenanceWindowSpec) -> Stalled | None:
    """Why a Secret the notices need cannot be used (missing, or not opted in for receivers)."""
    notice = spec.notice
    refs = [r.secret_ref for r in notice.receivers or []]
    refs.append(notice.consumer_email.secret_ref if notice.consumer_email else None)
    for secret_ref in refs:
        if secret_ref is None or not secret_ref.name:
            continue
        secret = await rt.kube.get("Secret", namespace, secret_ref.name)
        if secret is None:
            return Stalled(
                "SecretNotFound",
                f"notices cannot be sent: Secret {secret_ref.name} not found in namespace {namespace}",
            )
        problem = opt_in_problem(secret, "receivers")
        if problem:
            return Stalled("SecretNotOptedIn", f"notices cannot be sent: {problem}")
    return None


def _recipients(spec: MaintenanceWindowSpec, affected) -> tuple[list[str], dict[str, str]]:
    """Recipient names with a usable receiver, and why the others cannot be sent to."""
    consumer_email = spec.notice.consumer_email
    names, unusable = [], {}
    for recipient in messages.recipients(spec, affected):
        try:
            receiver = _receiver_for(recipient, consumer_email)
        except InvalidSpec as exc:
            unusable[recipient.name] = exc.message
            continue
        if receiver is not None:
            names.append(recipient.name)
    return names, unusable


async def _notice_event(rt: Runtime, window: dict, entry: dict) -> None:
    ok = bool(entry.get("delivered"))
    names = entry.get("recipients") or []
    await rt.event(
        window,
        "NoticeSent" if ok else "NoticeFailed",
        f"{entry.get('kind')} notice for {entry.get('occurrence')} to {len(names)} recipients"
        + (f"; errors: {entry['error'][:400]}" if entry.get("error") else ""),
        warning=not ok,
    )


async def _send(rt: Runtime, namespace: str, name: str, exclude: frozenset) -> Batch:
    """The outbox's round for one window: deliver every owed notice that is due, at once."""
    service = rt.maintenance
    window = rt.stores[KIND].get(namespace, name)
    if window is None:
        return Batch()
    status = rt.status_of(window)
    entries = status.get("notices") or []
    now = durations.now()
    due, later = notices.due_sends(entries, now, exclude)
    batch = Batch(ids=set(due))
    if due:
        try:
            spec = parse(MaintenanceWindowSpec, window.get("spec"))
        except InvalidSpec:  # the reconcile shows it Stalled; nothing can be composed now
            return Batch()
        affected = targets.resolve(
            spec.targets, rt.stores["ApiProduct"].list(namespace), rt.stores["Backend"].list(namespace)
        )
        by_name = {r.name: r for r in messages.recipients(spec, affected)}
        slots = asyncio.Semaphore(SEND_CONCURRENCY)
        uid = window["metadata"].get("uid", "")

        async def one(ident):
            async with slots:
                return await _send_one(rt, service, window, spec, by_name, uid, ident)

        batch.results = list(await asyncio.gather(*(one(i) for i in due)))
    if later is not None:
        batch.wake = max(0.0, (later - durations.now()).total_seconds()) + 0.01
    return batch


async def _send_one(
    rt: Runtime,
    service: MaintenanceService,
    window: dict,
    spec: MaintenanceWindowSpec,
    by_name: dict,
    uid: str,
    ident: tuple,
) -> notices.SendResult:
    kind, occurrence, recipient_name = ident[:3]
    namespace = window["metadata"]["namespace"]

    def result(ok: bool, permanent: bool, error: str | None) -> notices.SendResult:
        return notices.SendResult(kind, occurrence, recipient_name, ok, permanent, error, durations.now())

    recipient = by_name.get(recipient_name)
    if recipient is None:
        return result(False, True, "no longer a recipient of this window")
    try:
        receiver = _receiver_for(recipient, spec.notice.consumer_email)
    except InvalidSpec as exc:
        return result(False, True, exc.message)
    if receiver is None:
        return result(False, True, "no contact to send to")
    secret = None
    if receiver.secret_ref:
        try:
            secret = await rt.kube.read_secret(
                namespace, receiver.secret_ref.name, receiver.secret_ref.key, use="receivers"
            )
        except InvalidSpec as exc:  # not opted in: recorded with how to opt in, not retried
            return result(False, True, exc.message)
        if secret is None:
            return result(
                False, False, f"Secret {receiver.secret_ref.name}/{receiver.secret_ref.key} not found"
            )
    try:
        start = durations.parse_time(occurrence)
    except ValueError:
        return result(False, True, f"unreadable occurrence {occurrence!r}")
    notice = notices.Notice(kind, _occurrence_of(spec, start), spec.emergency)
    # The same id on every try of this notice to this recipient (the e-mail Message-ID, the
    # webhook's "id"): one message, however often a crash makes the outbox send it.
    message_id = hashlib.sha256(f"{uid}/{kind}/{occurrence}/{recipient_name}".encode()).hexdigest()[:32]
    message = messages.compose(notice, spec, recipient)
    message = dataclasses.replace(
        message, data={**message.data, "id": message_id, "window": window["metadata"]["name"]}
    )
    sent = await deliver_message(
        receiver,
        message,
        secret,
        service.client,
        event=kind,
        policy=service.policy,
        message_id=message_id,
        addresses=rt.egress,
    )
    return result(sent.ok, sent.permanent, sent.error)


def _occurrence_of(spec: MaintenanceWindowSpec, start):
    """The occurrence starting at ``start`` under the current schedule (its end from the duration)."""
    from .schedule import Occurrence, occurrence_at
    from .schedule import parse as parse_schedule

    try:
        found = occurrence_at(parse_schedule(spec.schedule), start)
    except InvalidSpec:
        found = None
    if found is not None and found.start == start:
        return found
    duration = durations.parse(spec.schedule.duration or "0s")
    return Occurrence(start, start + timedelta(seconds=duration))


def _phase_message(phase: str, spec: MaintenanceWindowSpec, occurrence) -> str:
    reason = spec.reason
    if occurrence is None:
        return f"{phase}: {reason}"
    return f"{phase}: {reason} ({durations.rfc3339(occurrence.start)} to {durations.rfc3339(occurrence.end)})"


async def _remove_pages(
    rt: Runtime, namespace: str, window: str, keep: set[str], *, wait_for_services: bool = True
) -> list[str]:
    """Delete this window's page Deployments not in ``keep``; returns those left for now because a
    Service still sends traffic to the page (the product reconciler switches it back first)."""
    left = []
    for deployment in rt.stores["Deployment"].select(namespace, {LABEL_WINDOW: window}):
        name = deployment["metadata"]["name"]
        if name in keep:
            continue
        labels = deployment["metadata"].get("labels") or {}
        if wait_for_services and _page_in_use(
            rt, namespace, labels.get(LABEL_PRODUCT), labels.get(LABEL_VERSION), window
        ):
            left.append(name)
            continue
        await rt.kube.delete("Deployment", namespace, name)
    return left


def _page_in_use(rt: Runtime, namespace: str, product: str | None, version: str | None, window: str) -> bool:
    """The version's Service selects the page and no other active window wants it there."""
    if not product or not version:
        return False
    for service in rt.stores["Service"].select(namespace, {LABEL_PRODUCT: product}):
        selector = (service.get("spec") or {}).get("selector") or {}
        if selector.get(LABEL_VERSION) == version and selector.get(LABEL_ROLE) == ROLE_MAINTENANCE:
            break
    else:
        return False
    for other in rt.stores[KIND].list(namespace):
        status = other.get("status") or {}
        if (
            other["metadata"]["name"] != window
            and status.get("phase") == ACTIVE
            and not other["metadata"].get("deletionTimestamp")
            and any(
                p.get("name") == product and version in (p.get("versions") or [])
                for p in (status.get("affected") or {}).get("apiProducts") or []
            )
        ):
            return False  # another window keeps the page: the Service stays on it
    return True


def _receiver_for(recipient, consumer_email: ConsumerEmail | None) -> Receiver | None:
    if recipient.kind == "receiver":
        return parse_receiver(recipient.receiver, f"spec.notice.receivers[{recipient.name}]")
    contact = recipient.contact or {}
    if contact.get("email") and consumer_email is not None:
        ref_ = consumer_email.secret_ref
        return Receiver(
            recipient.name,
            "email",
            SecretRef(ref_.name, ref_.key),
            email_to=(contact["email"],),
            email_from=consumer_email.from_,
        )
    if contact.get("webhook"):
        return Receiver(recipient.name, "webhook", url=contact["webhook"])
    return None


__all__ = ["MaintenanceService", "reconcile", "page_name"]
