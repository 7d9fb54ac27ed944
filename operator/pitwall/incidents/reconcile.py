"""The incident service: one loop that opens, updates and resolves Incidents and owes notices.

Why a loop and not a work queue per kind: an incident is decided per public product from the
verdicts of all its versions (probes, backends, windows, workloads together), the very view
the status page builds; building it once per pass for every product is cheaper than once per
event per product, and no event is missed (a pass also runs every ``TICK`` seconds for the
merge window and the spacing of notices). Watch events that may change a verdict wake it at
once (``poke``, called by ``wiring.route``).

Notices are decided in the pass (recorded ``Sending`` in the incident's status) and delivered
beside it by the outbox (:class:`pitwall.outbox.Sender`); the next pass records the results. A
notice still ``Sending`` after a restart or a leader change is delivered again (at least once),
with the same dedup key per recipient (``notify.message_id``), so receivers see it once.

Everything it knows lives in the Incidents (spec: the people's; status: Pitwall's), so a
restart or a failover continues where the last leader stopped: open incidents stay open,
notices already recorded are not sent again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from datetime import datetime

import httpx

from .. import durations, egress
from ..alerts.delivery import RetryPolicy, deliver_message
from ..alerts.rules import Receiver, parse_receiver
from ..api.apiproduct import IncidentPolicy
from ..api.base import camel, default_of
from ..conditions import summary
from ..errors import InvalidSpec, KubeError
from ..logs import ref
from ..masking import mask
from ..outbox import Batch, Sender
from ..runtime import Runtime
from ..statuspage.model import product_views
from ..statuspage.relations import Snapshot, display_name, is_public, key
from ..supervise import spawn
from ..vocabulary import SecretRef
from . import decide, notify

log = logging.getLogger("pitwall.incidents")
KIND = "Incident"
TICK = float(os.environ.get("PITWALL_INCIDENT_TICK", "2"))
# A refused create (a namespace being deleted, a quota, RBAC) is tried again after this long,
# not on every pass: one log line per refusal, never a flood of attempts under fresh names.
CREATE_RETRY = 30.0
DEBOUNCE = 0.3  # events come in bursts (a backend down touches every product): one pass for them


class IncidentService:
    """``rt.incidents``: started while this replica leads."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.http: httpx.AsyncClient | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._creating: dict[tuple[str, str], str] = {}  # (namespace, name) created, not yet in the cache
        self._refused: dict[tuple[str, str], float] = {}  # (namespace, product) -> when to try again
        self._refused_policy: dict[tuple[str, str], str] = {}  # products whose spec.incidents is refused
        # Notices go out beside the decisions (h6's outbox), never inside a pass.
        self.sender = Sender(KIND, self._send, on_result=lambda _ns, _name: self.poke(), workers=2)
        self.retry_base = float(os.environ.get("PITWALL_NOTICE_RETRY_BASE", notify.RETRY_BASE))
        # One short try per round: retrying is the outbox's job (with backoff, across restarts).
        self.policy = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=1.0, max_total=15.0, timeout=10.0)

    async def start(self) -> None:
        self.http = egress.client(self.rt.egress)
        self.sender.start()
        self._task = spawn(self._loop(), name="incidents")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.sender.stop()
        if self.http is not None:
            await self.http.aclose()
            self.http = None

    def poke(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.tick(durations.now())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad pass must not end incident handling
                log.error("incident pass failed: %s", type(exc).__name__)
                log.debug("incident pass failed", exc_info=True)
            took = time.monotonic() - started
            try:
                await asyncio.wait_for(self._wake.wait(), TICK)
                # A storm of events (every probe of a backend's products) runs one pass per
                # burst, and passes take at most half the loop: 1,000 public products cost
                # 0.5 s a pass on a loaded core (bench/results/incidents.md).
                await asyncio.sleep(max(DEBOUNCE, took))
            except TimeoutError:
                pass
            self._wake.clear()

    # -- one pass --------------------------------------------------------------------------------
    async def tick(self, now: datetime) -> None:
        rt = self.rt
        snapshot = Snapshot.from_stores(rt.stores)
        incidents = [self._fresh(i) for i in rt.stores[KIND].list() if rt.watches(key(i)[0])]
        by_product: dict[tuple[str, str], list[dict]] = {}
        by_window: dict[tuple[str, str], list[dict]] = {}
        for incident in incidents:
            namespace = key(incident)[0]
            for product in decide.spec(incident).get("products") or []:
                by_product.setdefault((namespace, product.get("name", "")), []).append(incident)
            window = decide.labels(incident).get(decide.LABEL_WINDOW)
            if window:
                by_window.setdefault((namespace, window), []).append(incident)
        actions: list[decide.Action] = []
        views_now = product_views(snapshot, now)
        for view in views_now:
            namespace, name = view.key
            if (
                not is_public(view.product)
                or not rt.watches(namespace)
                or (namespace, name) in self._creating
            ):
                continue
            policy = self._policy(view.product)
            evidence = decide.Evidence(
                namespace,
                name,
                display_name(view.product),
                bad={
                    v.name: (v.verdict.state, v.verdict.reason, v.verdict.since)
                    for v in view.versions
                    if v.verdict.state in decide.BAD
                },
                operational=bool(view.versions)
                and all(v.verdict.state == "operational" for v in view.versions),
                merge_window=durations.parse(policy.merge_window),
                opens=policy.open,
            )
            actions += decide.plan_product(evidence, by_product.get((namespace, name), []), now)
        shown = {view.key for view in views_now if is_public(view.product)}
        for incident in incidents:
            actions += decide.plan_orphan(incident, shown, now)
        for window in snapshot.windows:
            if (window.get("spec") or {}).get("emergency") and rt.watches(key(window)[0]):
                actions += decide.plan_window(window, by_window.get(key(window), []), now)
        for incident in incidents:
            person = decide.plan_person(incident, now)
            if person is not None:
                actions.append(person)
        for action in actions:
            await self._apply(action)
        self._creating = {k: v for k, v in self._creating.items() if rt.stores[KIND].get(k[0], v) is None}

        for incident in rt.stores[KIND].list():
            if rt.watches(key(incident)[0]):
                await self._authors(self._fresh(incident), now)
                await self._notify(self._fresh(incident), now)

    def _fresh(self, incident: dict) -> dict:
        return {**incident, "status": self.rt.status_of(incident)}

    async def _apply(self, action: decide.Action) -> None:
        rt = self.rt
        if action.kind == "create":
            held = (action.namespace, decide.labels(action.body).get(decide.LABEL_PRODUCT) or action.name)
            if self._refused.get(held, 0.0) > time.monotonic():
                return
            try:
                created = await rt.kube.create(action.body)
            except Exception as exc:
                # The API server's own words (e.g. "... because it is being terminated"): they
                # describe our request, never a secret.
                why = exc.message if isinstance(exc, KubeError) else type(exc).__name__
                log.error("cannot create Incident %s/%s: %s", action.namespace, action.name, why)
                self._refused[held] = time.monotonic() + CREATE_RETRY
                return
            self._refused.pop(held, None)
            created.setdefault("kind", KIND)
            rt.stores[KIND].prime(created)
            product = decide.labels(created).get(decide.LABEL_PRODUCT)
            if product:
                self._creating[(action.namespace, product)] = action.name
            obj = created
        else:
            found = rt.stores[KIND].get(action.namespace, action.name)
            if found is None:
                return
            obj = found
        await self._write(obj, action.status)
        if action.event:
            await rt.event(obj, *action.event)
            log.info(
                "%s: %s", action.event[0], action.event[1], extra=ref(KIND, action.namespace, action.name)
            )

    async def _write(self, incident: dict, status: dict) -> None:
        phase = status.get("phase") or "Open"
        message = status.get("cause") or status.get("resolution") or ""
        await self.rt.write_status(
            {**incident, "kind": KIND},
            status,
            summary(True, ready_reason=phase, ready_message=message[:1024]),
        )

    async def _authors(self, incident: dict, now: datetime) -> None:
        """Record who wrote kubectl-added updates, and acknowledge every spec change
        (``observedGeneration``) even when it changes nothing Pitwall decides."""
        authors = decide.update_authors(incident, now)
        if authors is not None:
            # The watch cache keeps no managedFields: read them for this (rare) kubectl update.
            meta = incident.get("metadata") or {}
            full = await self.rt.kube.get(KIND, meta.get("namespace"), meta.get("name", ""))
            managed = ((full or {}).get("metadata") or {}).get("managedFields")
            if managed:
                authors = decide.update_authors(
                    {**incident, "metadata": {**meta, "managedFields": managed}}, now
                )
        st = decide.status(incident)
        if authors is not None:
            await self._write(incident, {**st, "updateAuthors": authors})
        elif st.get("phase") and st.get("observedGeneration") != (incident.get("metadata") or {}).get(
            "generation"
        ):
            await self._write(incident, st)

    # -- notices: decided here, delivered by the outbox ------------------------------------------
    async def _notify(self, incident: dict, now: datetime) -> None:
        """Record what the deliveries did, then mark the next notice owed (``Sending``) and hand
        it to the outbox: a slow receiver never holds up the next pass's decisions."""
        namespace, name = key(incident)
        results = self.sender.pending(namespace, name)
        if results:
            st = decide.status(incident)
            notices = st.get("notices")
            for result in results:
                notices = notify.settle(
                    notices,
                    result["event"],
                    at=result["at"],
                    reached=result["reached"],
                    failed=result["failed"],
                    refused=result["refused"],
                    error="; ".join(result["errors"]) or None,
                    retry_base=self.retry_base,
                )
            await self._write(incident, {**st, "notices": notices})
            self.sender.settled(namespace, name, results)
            for result in results:
                missed = result["failed"] + result["refused"]
                await self.rt.event(
                    incident,
                    "NoticeFailed" if missed else "NoticeSent",
                    f"{result['event']} notice to {len(result['reached'])} recipients"
                    + (f"; failed: {', '.join(missed)[:300]}" if missed else ""),
                    warning=bool(missed),
                )
            incident = self._fresh(incident)
        products = {p["metadata"]["name"]: p for p in self.rt.stores["ApiProduct"].list(namespace)}
        policies = [
            self._policy(products[p.get("name", "")])
            for p in decide.spec(incident).get("products") or []
            if p.get("name", "") in products
        ]
        spacing = min(
            (durations.parse(p.min_spacing) for p in policies),
            default=durations.parse(default_of(IncidentPolicy, "min_spacing")),
        )
        notice, _ = notify.owed(incident, now, spacing)
        if notice is not None:
            st = decide.status(incident)
            await self._write(
                incident,
                {
                    **st,
                    "notices": notify.record(st.get("notices"), notice.event, at=now, state=notify.SENDING),
                },
            )
        if notice is not None or (self._sending(incident) and not self.sender.busy(namespace, name)):
            self.sender.kick(namespace, name)

    def _policy(self, product: dict) -> IncidentPolicy:
        """A stored product's ``spec.incidents`` through the model (its defaults are the CRD's).

        One the model refuses (stored before a bound was added) counts as the defaults, so an
        outage is still told; the warning names the field once, as the product's own reconciler
        does (Stalled, InvalidSpec).
        """
        meta = product.get("metadata") or {}
        where = (meta.get("namespace", ""), meta.get("name", ""))
        try:
            policy = notify.policy_of(product)
            for field in ("merge_window", "min_spacing"):  # the CRD's CEL rule, which the model leaves out
                try:
                    durations.parse(getattr(policy, field))
                except ValueError as bad:
                    raise InvalidSpec("InvalidSpec", f"spec.incidents.{camel(field)}: {bad}") from None
        except InvalidSpec as exc:
            if self._refused_policy.get(where) != exc.message:
                log.warning("ApiProduct %s/%s: incident policy defaults used: %s", *where, exc.message)
            self._refused_policy[where] = exc.message
            return IncidentPolicy()
        self._refused_policy.pop(where, None)
        return policy

    def _sending(self, incident: dict) -> list[str]:
        return [
            n["event"]
            for n in decide.status(incident).get("notices") or []
            if n.get("state") == notify.SENDING and n.get("event")
        ]

    async def _send(self, namespace: str, name: str, exclude: frozenset) -> Batch:
        """The outbox's round for one incident: deliver every notice ``Sending`` and due (but
        those delivered already and not yet recorded), to the recipients it has not reached."""
        found = self.rt.stores[KIND].get(namespace, name)
        if found is None:
            return Batch()
        incident = self._fresh(found)
        due, later = notify.sending(decide.status(incident).get("notices"), durations.now())
        # An id per round (event, tries): a failed round recorded moves it, so the retry is not
        # mistaken for a resend of the round just recorded.
        entries = [n for n in due if (n["event"], int(n.get("tries") or 0)) not in exclude]
        products = {p["metadata"]["name"]: p for p in self.rt.stores["ApiProduct"].list(namespace)}
        displays = {n: display_name(p) for n, p in products.items()}
        uid = (incident.get("metadata") or {}).get("uid", "")
        results = []
        for entry in entries:
            event = entry["event"]
            index = int(event.split("-", 1)[1]) if event.startswith("update-") else None
            notice = notify.Owed(event, index)
            done = set(entry.get("recipients") or [])
            owed_to = set(entry["pending"]) if "pending" in entry else None
            reached: list[str] = []
            failed: list[str] = []
            refused: list[str] = []
            errors: list[str] = []
            for recipient in notify.recipients(incident, products, self._policy):
                if recipient.name in done or (owed_to is not None and recipient.name not in owed_to):
                    continue
                message = notify.compose(incident, notice, recipient, displays, durations.now())
                key = notify.message_id(uid, event, recipient.name)
                message = dataclasses.replace(message, data={**message.data, "id": key})
                ok, error, permanent = await self._deliver(
                    namespace, recipient, self._policy(products[recipient.product]), message, event, key
                )
                if ok is None:
                    continue
                (reached if ok else refused if permanent else failed).append(recipient.name)
                if error:
                    errors.append(f"{recipient.name}: {error}")
            results.append(
                {
                    "event": event,
                    "at": durations.now(),
                    "reached": reached,
                    "failed": failed,
                    "refused": refused,
                    "errors": errors,
                }
            )
        wake = None if later is None else max(0.0, (later - durations.now()).total_seconds()) + 0.01
        return Batch(
            results=results, ids={(n["event"], int(n.get("tries") or 0)) for n in entries}, wake=wake
        )

    async def _deliver(
        self,
        namespace: str,
        recipient: notify.Recipient,
        policy: IncidentPolicy,
        message: notify.Message,
        event: str,
        message_id: str,
    ) -> tuple[bool | None, str | None, bool]:
        """(delivered everywhere, errors, refused for good); (None, None, False) when the
        recipient has no way to be reached. A consumer with both an e-mail address and a webhook
        gets both. A retry goes to both again: each carries the same ``message_id``."""
        try:
            receivers = _receivers_for(recipient, policy)
        except InvalidSpec as exc:
            return False, exc.message, True
        if not receivers or self.http is None:
            return None, None, False
        errors = []
        permanent = True
        for receiver in receivers:
            secret = None
            if receiver.secret_ref:
                try:
                    secret = await self.rt.kube.read_secret(
                        namespace, receiver.secret_ref.name, receiver.secret_ref.key, use="receivers"
                    )
                except InvalidSpec as exc:  # not opted in: recorded with how to opt in
                    errors.append(exc.message)
                    continue
                if secret is None:  # may be created yet: tried again
                    errors.append(f"Secret {receiver.secret_ref.name}/{receiver.secret_ref.key} not found")
                    permanent = False
                    continue
            result = await deliver_message(
                receiver,
                message,
                secret,
                self.http,
                event=f"incident-{event}",
                policy=self.policy,
                message_id=message_id,
                addresses=self.rt.egress,
            )
            if not result.ok:
                errors.append(mask(result.error or "not delivered", [secret]))
                permanent = permanent and result.permanent
        return not errors, "; ".join(errors) or None, bool(errors) and permanent


def _receivers_for(recipient: notify.Recipient, policy: IncidentPolicy) -> list[Receiver]:
    if recipient.kind == notify.RECEIVER:
        return [parse_receiver(recipient.receiver or {}, f"spec.incidents.receivers[{recipient.name}]")]
    contact = recipient.contact or {}
    email = policy.consumer_email
    found = []
    if contact.get("email") and email is not None:
        found.append(
            Receiver(
                recipient.name,
                "email",
                SecretRef(email.secret_ref.name, email.secret_ref.key),
                email_to=(contact["email"],),
                email_from=email.from_,
            )
        )
    if contact.get("webhook"):
        found.append(Receiver(recipient.name, "webhook", url=contact["webhook"]))
    return found


__all__ = ["IncidentService"]
