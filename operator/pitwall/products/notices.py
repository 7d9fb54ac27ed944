"""Sunset notices through the outbox: recorded before they are sent, delivered beside the reconcile.

The product reconcile decides what is due (``sunset.due``) and records it owed in
``status.sunsetNotices`` (``pending``: the consumers still to tell) in its one status write,
before anything is sent. A :class:`pitwall.outbox.Sender` then delivers what is pending on its
own workers and hands the results back to the next reconcile, which records them in the same
status. So a SIGKILL, a restart or a leader change between deciding and sending loses nothing
(the next leader sends what is pending), a failing consumer is tried again later (15 s doubling,
``outbox.settle_round``), and a reconcile never waits on a mail relay. A resend after a crash
between sending and recording carries the same dedup key per consumer (the webhook body's ``id``,
the e-mail ``Message-ID``), so consumers see one notice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from functools import partial

import httpx

from .. import durations, egress, outbox
from ..alerts.delivery import RetryPolicy, deliver_message
from ..alerts.rules import Receiver
from ..api.apiproduct import ApiProductSpec, Consumer
from ..api.base import parse
from ..api.maintenancewindow import ConsumerEmail
from ..errors import InvalidSpec
from ..logs import ref
from ..outbox import Batch, Sender
from ..vocabulary import SecretRef
from . import sunset

log = logging.getLogger("pitwall.products")
KIND = "ApiProduct"


class SunsetService:
    """``rt.sunset``: started while this replica leads."""

    def __init__(self, rt):
        self.rt = rt
        self.http: httpx.AsyncClient | None = None
        self.sender = Sender(
            "SunsetNotice", partial(_send, rt), on_result=partial(rt.enqueue, KIND), workers=2
        )
        self.retry_base = float(os.environ.get("PITWALL_NOTICE_RETRY_BASE", outbox.RETRY_BASE))
        # One short try per round: retrying is the outbox's job (with backoff, across restarts).
        self.policy = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=1.0, max_total=15.0, timeout=10.0)

    async def start(self) -> None:
        self.http = egress.client(self.rt.egress)
        self.sender.start()

    async def stop(self) -> None:
        await self.sender.stop()
        if self.http is not None:
            await self.http.aclose()
            self.http = None


async def record(rt, product: dict, spec: ApiProductSpec, sent: list[dict]) -> tuple[list[dict], list]:
    """Before the status write: what the outbox delivered since the last reconcile, recorded;
    then what is due now (by ``spec``, the product's parsed spec), recorded as owed. Returns the
    new ``status.sunsetNotices`` and the results it holds (hand them to :func:`written` once the
    write succeeded)."""
    service = getattr(rt, "sunset", None)
    meta = product["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    delivered = service.sender.pending(namespace, name) if service is not None else []
    entries = list(sent)
    for result in delivered:
        entries, finished = sunset.settle(
            entries,
            result["key"],
            at=result["at"],
            reached=result["reached"],
            failed=result["failed"],
            refused=result["refused"],
            errors=result["errors"],
            retry_base=service.retry_base if service is not None else outbox.RETRY_BASE,
        )
        if finished is not None:
            await _finished(rt, product, finished)
    now = durations.now()
    for notice in sunset.due(spec, now, entries):
        entries = sunset.owe(entries, notice, spec, at=now)
        if not entries[-1 - len(notice.covers)].get("pending"):  # nobody to tell: recorded failed
            await _finished(rt, product, entries[-1 - len(notice.covers)])
    return entries, delivered


def written(rt, product: dict, entries: list[dict], delivered: list) -> None:
    """After the status write holds ``entries``: the results are recorded, the rest is owed."""
    service = getattr(rt, "sunset", None)
    if service is None:
        return
    meta = product["metadata"]
    service.sender.settled(meta["namespace"], meta["name"], delivered)
    if any(e.get("pending") for e in entries) and not service.sender.busy(meta["namespace"], meta["name"]):
        service.sender.kick(meta["namespace"], meta["name"])


def forget(rt, namespace: str, name: str) -> None:
    service = getattr(rt, "sunset", None)
    if service is not None:
        service.sender.forget(namespace, name)


async def _finished(rt, product: dict, entry: dict) -> None:
    delivered = bool(entry.get("delivered"))
    what = f"{entry.get('kind')} notice of version {entry.get('version')}" + (
        f" ({entry['leadTime']} before sunset)" if entry.get("leadTime") else ""
    )
    names = entry.get("recipients") or []
    error = entry.get("error")
    await rt.event(
        product,
        "SunsetNoticeSent" if delivered else "SunsetNoticeFailed",
        f"{what} to {len(names)} consumers" + (f"; errors: {error[:400]}" if error else ""),
        warning=not delivered,
    )
    meta = product["metadata"]
    log.info(
        "sunset %s to %s",
        what,
        ", ".join(names) or "nobody",
        extra=ref(KIND, meta["namespace"], meta["name"]),
    )


def message_id(uid: str, entry: dict, consumer: str) -> str:
    """The dedup key of one notice to one consumer: the same on every try."""
    key = "/".join(str(part) for part in sunset.ident(entry))
    return hashlib.sha256(f"sunset/{uid}/{key}/{consumer}".encode()).hexdigest()[:32]


async def _send(rt, namespace: str, name: str, exclude: frozenset) -> Batch:
    """The outbox's round for one product: every notice with consumers pending and due."""
    service = rt.sunset
    product = rt.stores[KIND].get(namespace, name)
    if product is None or service.http is None:
        return Batch()
    try:
        spec = parse(ApiProductSpec, product.get("spec"))
    except InvalidSpec as exc:  # the reconciler reports it (Stalled); owed until it parses
        log.warning("sunset notices wait: %s", exc.message, extra=ref(KIND, namespace, name))
        return Batch()
    status = rt.status_of(product)
    due, later = sunset.owed(status.get("sunsetNotices") or [], durations.now())
    due = [e for e in due if (sunset.ident(e), int(e.get("tries") or 0)) not in exclude]
    batch = Batch(ids={(sunset.ident(e), int(e.get("tries") or 0)) for e in due})
    email = spec.sunset_notice.consumer_email if spec.sunset_notice else None
    consumers = {c.name: c for c in spec.consumers or []}
    uid = product["metadata"].get("uid", "")
    for entry in due:
        reached: list[str] = []
        failed: list[str] = []
        refused: list[str] = []
        errors: list[str] = []
        notice = sunset.notice_of(entry)
        for consumer_name in entry["pending"]:
            consumer = consumers.get(consumer_name)
            if consumer is None or not sunset.reachable(spec, consumer):
                refused.append(consumer_name)
                errors.append(f"{consumer_name}: no longer a consumer with a contact")
                continue
            ok, error, permanent = await _deliver(
                rt, service, product, spec, notice, consumer, email, message_id(uid, entry, consumer_name)
            )
            (reached if ok else refused if permanent else failed).append(consumer_name)
            if error:
                errors.append(f"{consumer_name}: {error}")
        batch.results.append(
            {
                "key": sunset.ident(entry),
                "at": durations.now(),
                "reached": reached,
                "failed": failed,
                "refused": refused,
                "errors": errors,
            }
        )
    if later is not None:
        batch.wake = max(0.0, (later - durations.now()).total_seconds()) + 0.01
    return batch


async def _deliver(
    rt,
    service: SunsetService,
    product: dict,
    spec: ApiProductSpec,
    notice: sunset.SunsetNotice,
    consumer: Consumer,
    email: ConsumerEmail | None,
    key: str,
) -> tuple[bool, str | None, bool]:
    """(delivered, error, refused for good) for one consumer (``sunset.reachable``); e-mail when
    it has an address and the relay is configured, else its webhook."""
    contact = consumer.contact
    assert contact is not None
    secret = None
    if contact.email and email is not None:
        ref_ = email.secret_ref
        try:
            secret = await rt.kube.read_secret(
                product["metadata"]["namespace"], ref_.name, ref_.key, use="receivers"
            )
        except InvalidSpec as exc:  # not opted in: recorded with how to opt in, not retried
            return False, exc.message, True
        if secret is None:  # may be created yet: tried again
            return False, f"Secret {ref_.name}/{ref_.key} not found", False
        receiver = Receiver(
            consumer.name,
            "email",
            SecretRef(ref_.name, ref_.key),
            email_to=(contact.email,),
            email_from=email.from_,
        )
    else:
        receiver = Receiver(consumer.name, "webhook", url=contact.webhook)
    message = sunset.compose(product["metadata"]["name"], spec, notice, consumer, durations.now())
    message = dataclasses.replace(message, data={**message.data, "id": key})
    assert service.http is not None  # _send checked it
    result = await deliver_message(
        receiver,
        message,
        secret,
        service.http,
        event="sunset",
        policy=service.policy,
        message_id=key,
        addresses=rt.egress,
    )
    return result.ok, result.error, (not result.ok) and result.permanent
