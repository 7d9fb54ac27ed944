"""Reconcile one MaintenanceWindow: phase, maintenance page Deployments, notices, status.

Driven by timers, not polling: every reconcile asks ``window.evaluate`` when the answer next
changes and requeues itself for exactly then. The Service switch itself is done by the product
reconciler (one server-side apply each way), which reads this window's ``status.phase`` and
``status.affected``; every status write here enqueues the products (``wiring``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx

from .. import durations, egress
from ..alerts.delivery import deliver_message
from ..alerts.rules import Receiver, SecretRef, parse_receiver
from ..api.maintenancewindow import SPEC_DEFAULTS as WINDOW
from ..conditions import Condition, summary
from ..errors import InvalidSpec
from ..logs import ref
from ..runtime import Runtime
from ..vocabulary import LABEL_WINDOW, Stalled, opt_in_problem
from . import messages, notices, targets
from .page import page_deployment, page_name
from .schedule import ACTIVE
from .window import evaluate

log = logging.getLogger("pitwall.maintenance")
KIND = "MaintenanceWindow"
PAGE_LEAD = timedelta(seconds=30)       # page pods are started this long before the window opens


class MaintenanceService:
    def __init__(self, rt: Runtime):
        self.rt = rt
        self.http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self.http = egress.client(self.rt.egress)

    async def stop(self) -> None:
        if self.http:
            await self.http.aclose()


async def reconcile(rt: Runtime, namespace: str, name: str) -> float | None:
    window = rt.stores[KIND].copy(namespace, name)
    if window is None:
        await _remove_pages(rt, namespace, name, keep=set())
        rt.forget(KIND, namespace, name)
        return None
    spec = window.get("spec") or {}
    status = rt.status_of(window)
    now = durations.now()
    deleting = bool(window["metadata"].get("deletionTimestamp"))
    try:
        result = evaluate(spec, now, deleted=deleting, already_sent=status.get("notices") or [])
    except InvalidSpec as exc:
        await rt.write_status(window, {"phase": status.get("phase", "Scheduled")},
                              [*summary(False, stalled=exc.stalled),
                               Condition.false("Active", exc.reason, exc.message)])
        await rt.event(window, exc.reason, exc.message, warning=True)
        return None

    created = window["metadata"].get("creationTimestamp")
    if created and result.phase != ACTIVE and status.get("phase") != ACTIVE:
        # Admission refuses this; when no webhook answered, the window still never opens.
        violation = notices.lead_time_violation(spec, durations.parse_time(created))
        if violation:
            await _remove_pages(rt, namespace, name, keep=set())
            await rt.write_status(window, {"phase": "Scheduled"},
                                  [*summary(False, stalled=Stalled("InsufficientNotice", violation)),
                                   Condition.false("Active", "InsufficientNotice", violation)])
            return None
    affected = targets.resolve(spec.get("targets"), rt.stores["ApiProduct"].list(namespace),
                               rt.stores["Backend"].list(namespace))
    occurrence = result.occurrence
    page_due = spec.get("maintenancePage", WINDOW["maintenancePage"]) and occurrence is not None and (
        result.phase == ACTIVE or (result.phase == "Scheduled" and occurrence.start - now <= PAGE_LEAD))
    wanted_pages = set()
    if page_due:
        products = {p["metadata"]["name"]: p for p in rt.stores["ApiProduct"].list(namespace)}
        for product_name, version in affected.page_versions():
            body = page_deployment(products[product_name], version, window, rt.settings.image, namespace,
                                   until=occurrence.end)
            await rt.kube.apply(body)
            wanted_pages.add(body["metadata"]["name"])
    await _remove_pages(rt, namespace, name, keep=wanted_pages)

    sent = list(status.get("notices") or [])

    if result.phase != status.get("phase"):
        await rt.event(window, f"Window{result.phase}", _phase_message(result.phase, spec, occurrence))
        log.info("maintenance window is %s", result.phase, extra=ref(KIND, namespace, name))

    missing = ", ".join(affected.missing)
    wanted = [Condition.true("Active", "WindowOpen", spec.get("reason", "")) if result.phase == ACTIVE
              else Condition.false("Active", result.phase, "")]
    # Told now, not when the notice is due: the window still opens, its notices could not go.
    unusable = await _notice_secret_problem(rt, namespace, spec)
    if unusable:
        wanted += summary(False, stalled=unusable)
    elif missing:
        wanted += summary(False, not_ready=("TargetNotFound", f"targets not found: {missing}"))
    else:
        wanted += summary(True, ready_reason=result.phase,
                          ready_message=f"{len(affected.products)} products affected")
    # The phase and the affected products first (the Service switch follows from them), then
    # the notices, which may wait on slow receivers, then their record.
    new_status = {**result.status(), "affected": affected.status(), "notices": sent}
    await rt.write_status(window, new_status, wanted)
    if result.due:
        for notice in result.due:
            sent = await _send_notice(rt, window, notice, affected, sent)
        await rt.write_status(window, {**new_status, "notices": sent}, wanted)

    wake = [result.wake_at] if result.wake_at else []
    if occurrence and result.phase == "Scheduled" and spec.get("maintenancePage", WINDOW["maintenancePage"]):
        wake.append(occurrence.start - PAGE_LEAD)
    future = [(w - durations.now()).total_seconds() for w in wake if w]
    future = [s for s in future if s > 0] + ([60.0] if unusable else [])   # Secrets are not watched
    return min(future) + 0.001 if future else None


async def _notice_secret_problem(rt: Runtime, namespace: str, spec: dict) -> Stalled | None:
    """Why a Secret the notices need cannot be used (missing, or not opted in for receivers)."""
    notice = spec.get("notice") or {}
    refs = [r.get("secretRef") for r in notice.get("receivers") or []]
    refs.append((notice.get("consumerEmail") or {}).get("secretRef"))
    for secret_ref in refs:
        if not secret_ref or not secret_ref.get("name"):
            continue
        secret = await rt.kube.get("Secret", namespace, secret_ref["name"])
        if secret is None:
            return Stalled("SecretNotFound", f"notices cannot be sent: Secret {secret_ref['name']} not found "
                                             f"in namespace {namespace}")
        problem = opt_in_problem(secret, "receivers")
        if problem:
            return Stalled("SecretNotOptedIn", f"notices cannot be sent: {problem}")
    return None


def _phase_message(phase: str, spec: dict, occurrence) -> str:
    reason = spec.get("reason", "")
    if occurrence is None:
        return f"{phase}: {reason}"
    return (f"{phase}: {reason} ({durations.rfc3339(occurrence.start)} to "
            f"{durations.rfc3339(occurrence.end)})")


async def _remove_pages(rt: Runtime, namespace: str, window: str, keep: set[str]) -> None:
    for deployment in rt.stores["Deployment"].select(namespace, {LABEL_WINDOW: window}):
        if deployment["metadata"]["name"] not in keep:
            await rt.kube.delete("Deployment", namespace, deployment["metadata"]["name"])


async def _send_notice(rt: Runtime, window: dict, notice, affected, sent: list[dict]) -> list[dict]:
    """Deliver one notice to every recipient, then record it once (delivered or not)."""
    spec = window.get("spec") or {}
    namespace = window["metadata"]["namespace"]
    service = rt.maintenance
    consumer_email = (spec.get("notice") or {}).get("consumerEmail") or {}
    names, errors = [], []
    for recipient in messages.recipients(spec, affected):
        message = messages.compose(notice, spec, recipient)
        try:
            receiver = _receiver_for(recipient, consumer_email)
        except InvalidSpec as exc:
            errors.append(f"{recipient.name}: {exc.message}")
            continue
        if receiver is None:
            continue
        secret = None
        if receiver.secret_ref:
            try:
                secret = await rt.kube.read_secret(namespace, receiver.secret_ref.name, receiver.secret_ref.key,
                                                   use="receivers")
            except InvalidSpec as exc:          # not opted in: the notice records how to opt in
                errors.append(f"{recipient.name}: {exc.message}")
                continue
            if secret is None:
                errors.append(f"{recipient.name}: Secret {receiver.secret_ref.name}/{receiver.secret_ref.key} "
                              "not found")
                continue
        result = await deliver_message(receiver, message, secret, service.http, event=notice.kind,
                                       addresses=rt.egress)
        names.append(recipient.name)
        if not result.ok:
            errors.append(f"{recipient.name}: {result.error}")
    delivered = not errors and bool(names)
    await rt.event(window, "NoticeSent" if delivered else "NoticeFailed",
                   f"{notice.kind} notice for {durations.rfc3339(notice.occurrence.start)} to "
                   f"{len(names)} recipients" + (f"; errors: {'; '.join(errors)[:400]}" if errors else ""),
                   warning=not delivered)
    return notices.record(sent, notice, at=durations.now(), delivered=delivered, recipients=names,
                          error="; ".join(errors)[:1000] or None)


def _receiver_for(recipient, consumer_email: dict) -> Receiver | None:
    if recipient.kind == "receiver":
        return parse_receiver(recipient.receiver)
    contact = recipient.contact or {}
    if contact.get("email") and consumer_email.get("secretRef"):
        ref_ = consumer_email["secretRef"]
        return Receiver(recipient.name, "email", SecretRef(ref_["name"], ref_["key"]),
                        email_to=(contact["email"],), email_from=consumer_email.get("from"))
    if contact.get("webhook"):
        return Receiver(recipient.name, "webhook", url=contact["webhook"])
    return None


__all__ = ["MaintenanceService", "reconcile", "page_name"]
