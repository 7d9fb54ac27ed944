"""Deliver notifications beside the reconciles, never inside them.

The outbox itself is the owning object's status: a reconcile decides what is owed (an alert's
``outstanding`` entries, a maintenance window's ``notices[].pending``) and writes it to status
before anything is sent. A :class:`Sender` per kind then delivers what is due, on its own
workers, and hands each result back to the reconcile, which records it (sent, failed for good,
or owed again later) in the same status. So:

- a reconcile never waits on a receiver: a window opens and closes on time, however slow or
  broken its consumers' mail servers are (issue 21: each failing notice was retried 8 times
  inside the window's reconcile, and windows opened minutes late);
- the status has one writer (the reconcile): no lost update between deciding and recording;
- a restart resumes from status: what was owed and not recorded as sent is sent again. A crash
  between sending and recording can therefore repeat a message, which is why every message
  carries a stable dedup key (PagerDuty ``dedup_key``, Opsgenie ``alias``, the webhook
  ``fingerprint`` + ``status``, an e-mail ``Message-ID``) and receivers see one copy per key.

Why status rather than a ConfigMap or a Lease: the owed entries belong to one object and must
live and die with it (a deleted object's finalizer waits for them, see ``finalizers``); status
is written by Pitwall alone, is already read before every decision, and costs no extra object,
RBAC rule or garbage collection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from .controller import Key, WorkQueue

log = logging.getLogger("pitwall.outbox")
RECENT_SECONDS = 120.0


@dataclass
class Batch:
    """What one send round delivered: results for the reconcile, and when to look again."""

    results: list = field(default_factory=list)
    ids: set = field(default_factory=set)  # what these results are about (excluded meanwhile)
    wake: float | None = None  # seconds until the next entry is due


SendFn = Callable[[str, str, frozenset], Awaitable[Batch]]


class Sender:
    """One delivery worker pool per kind; results wait in memory until the reconcile records them.

    ``send(namespace, name, exclude)`` delivers what is due for one object except the ids in
    ``exclude`` (sent already, result not yet recorded) and returns a :class:`Batch`.
    ``settled(key, results)`` is called by the reconcile once its status write holds them.
    """

    def __init__(self, kind: str, send: SendFn, on_result: Callable[[str, str], None], workers: int = 4):
        self.kind = kind
        self._send = send
        self._on_result = on_result
        self.queue = WorkQueue(f"{kind}Outbox", self._run, workers=workers, max_backoff=30.0)
        self._unsettled: dict[Key, list[Batch]] = {}
        # Ids recorded a moment ago stay excluded a while: a copy of the object read just then
        # may not show the record yet (the watch catching up), and a resend is what they prevent.
        self._recent: dict[Key, dict[Hashable, float]] = {}

    def start(self) -> None:
        self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()

    def kick(self, namespace: str, name: str, after: float = 0.0) -> None:
        self.queue.add((namespace, name), after)

    def pending(self, namespace: str, name: str) -> list:
        """Results delivered but not yet recorded in status (apply them, then :meth:`settled`)."""
        return [r for batch in self._unsettled.get((namespace, name), []) for r in batch.results]

    def settled(self, namespace: str, name: str, results: list) -> None:
        key = (namespace, name)
        done = {id(r) for r in results}
        batches = []
        for batch in self._unsettled.get(key, []):
            if all(id(r) in done for r in batch.results):
                recent = self._recent.setdefault(key, {})
                recent.update(dict.fromkeys(batch.ids, time.monotonic() + RECENT_SECONDS))
            else:
                batches.append(batch)
        if batches:
            self._unsettled[key] = batches
        else:
            self._unsettled.pop(key, None)

    def forget(self, namespace: str, name: str) -> None:
        self._unsettled.pop((namespace, name), None)
        self._recent.pop((namespace, name), None)

    def busy(self, namespace: str, name: str) -> bool:
        key = (namespace, name)
        return bool(self._unsettled.get(key)) or key in self.queue._active or key in self.queue._queued

    async def run_once(self, namespace: str, name: str) -> float | None:
        """One send round for one object now, outside the workers (tests drive the outbox so)."""
        return await self._run(namespace, name)

    async def _run(self, namespace: str, name: str) -> float | None:
        key = (namespace, name)
        exclude: set[Hashable] = set()
        for batch in self._unsettled.get(key, []):
            exclude |= batch.ids
        now = time.monotonic()
        recent = {i: t for i, t in self._recent.get(key, {}).items() if t > now}
        if recent:
            self._recent[key] = recent
            exclude |= set(recent)
        else:
            self._recent.pop(key, None)
        batch = await self._send(namespace, name, frozenset(exclude))
        if batch.results:
            self._unsettled.setdefault(key, []).append(batch)
            self._on_result(namespace, name)
        return batch.wake


# Notices owed to several recipients (incident and sunset notices) keep their bookkeeping in
# :mod:`pitwall.owed`, a pure module the pure decision modules may import; named here too.
from .owed import MAX_TRIES, RETRY_BASE, RETRY_CAP, due_entries, settle_round  # noqa: E402

__all__ = ["Batch", "Sender", "MAX_TRIES", "RETRY_BASE", "RETRY_CAP", "due_entries", "settle_round"]
