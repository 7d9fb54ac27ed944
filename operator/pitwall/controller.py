"""Level-triggered reconciliation: watch caches, a deduplicating work queue, workers.

kopf delivers watch events (see ``handlers``); they update a :class:`Store` per kind and
enqueue the affected keys. Workers reconcile one key at a time with the whole desired state
(never a diff), so a missed event is healed by the next one or by the periodic resync, and a
key queued while it is being reconciled runs once more afterwards.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from . import metrics
from .errors import InvalidSpec, KubeError
from .supervise import spawn

log = logging.getLogger("pitwall.controller")

Key = tuple[str, str]  # (namespace, name)
SHARED_STRING = 64  # longer strings (history, messages, certificates) are rarely equal


class Store:
    """Latest known copy of every watched object of one kind, keyed by (namespace, name)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._objects: dict[Key, dict] = {}
        self._listeners: list[Callable[[str, dict], None]] = []

    def update(self, event_type: str | None, obj: dict) -> None:
        obj = _slim(obj)
        meta = obj.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if event_type == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        metrics.OBJECTS.labels(self.kind).set(len(self._objects))
        for listener in self._listeners:
            listener(event_type or "ADDED", obj)

    def prime(self, obj: dict) -> None:
        """Add an object from the initial listing unless a (newer) watch event already did."""
        obj = _slim(obj)
        meta = obj.get("metadata", {})
        self._objects.setdefault((meta.get("namespace", ""), meta.get("name", "")), obj)
        metrics.OBJECTS.labels(self.kind).set(len(self._objects))

    def subscribe(self, listener: Callable[[str, dict], None]) -> None:
        self._listeners.append(listener)

    def get(self, namespace: str, name: str) -> dict | None:
        return self._objects.get((namespace, name))

    def copy(self, namespace: str, name: str) -> dict | None:
        obj = self._objects.get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, namespace: str | None = None) -> builtins.list[dict]:
        if namespace is None:
            return list(self._objects.values())
        return [o for (ns, _), o in self._objects.items() if ns == namespace]

    def select(self, namespace: str | None, labels: dict[str, str]) -> builtins.list[dict]:
        return [
            o
            for o in self.list(namespace)
            if all((o["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
        ]

    def keys(self) -> Iterable[Key]:
        return list(self._objects)

    def __len__(self) -> int:
        return len(self._objects)


def _slim(obj: dict) -> dict:
    """The object as the cache keeps it: without ``metadata.managedFields`` (nothing here reads
    them, and they are often the largest part of an object), and with its keys and short strings
    shared with every other cached object (``sys.intern``). A JSON decoder gives each object its
    own copy of "type", "status", "lastTransitionTime", "True"...: at 5,000 Probes that is 43%
    of the cache (9.9 KB -> 5.6 KB per Probe with 90 days of history; bench/results/probes.md)."""
    meta = obj.get("metadata")
    if meta and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return _shared(obj)


def _shared(value):
    if isinstance(value, dict):
        return {sys.intern(k): _shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(v) for v in value]
    if isinstance(value, str) and len(value) <= SHARED_STRING:
        return sys.intern(value)
    return value


Reconciler = Callable[[str, str], Awaitable[float | None]]


@dataclass
class WorkQueue:
    """A deduplicating, delay-aware queue of keys with per-key exponential backoff on errors."""

    kind: str
    reconcile: Reconciler
    workers: int = 4
    max_backoff: float = 60.0
    _queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    _queued: set = field(default_factory=set)
    _active: set = field(default_factory=set)
    _dirty: set = field(default_factory=set)
    _failures: dict = field(default_factory=dict)
    _timers: dict = field(default_factory=dict)
    _tasks: list = field(default_factory=list)
    paused: bool = False

    def add(self, key: Key, after: float = 0.0) -> None:
        """Queue ``key`` now (or after ``after`` seconds; an earlier pending request wins)."""
        if after > 0:
            loop = asyncio.get_running_loop()
            due = loop.time() + after
            existing = self._timers.get(key)
            if existing and existing[0] <= due:
                return
            if existing:
                existing[1].cancel()
            self._timers[key] = (due, loop.call_later(after, self._fire, key))
            return
        if key in self._active:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)
            metrics.QUEUE_DEPTH.labels(self.kind).set(len(self._queued))

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def start(self) -> None:
        for index in range(self.workers):
            self._tasks.append(
                spawn(self._worker(), name=f"{self.kind}-worker-{index}", task=f"{self.kind}-worker")
            )

    async def stop(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            metrics.QUEUE_DEPTH.labels(self.kind).set(len(self._queued))
            if self.paused:
                continue
            self._active.add(key)
            started = time.perf_counter()
            requeue: float | None = None
            try:
                requeue = await self.reconcile(*key)
                self._failures.pop(key, None)
                metrics.RECONCILES.labels(self.kind, "ok").inc()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one object's failure is that object's: the worker goes on
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                requeue = min(self.max_backoff, 0.5 * 2 ** (failures - 1))
                self._failed(key, exc, failures, requeue)
            finally:
                metrics.RECONCILE_SECONDS.labels(self.kind).observe(time.perf_counter() - started)
                self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            elif requeue is not None:
                self.add(key, requeue)
            # Yield between keys: a reconcile that needs no I/O never suspends, and
            # ``Queue.get`` does not suspend while keys are waiting, so without this one worker
            # would run a whole resync (thousands of keys) in a single step of the event loop
            # and hold up every probe due meanwhile (bench/results/probes.md).
            await asyncio.sleep(0)

    def _failed(self, key: Key, exc: Exception, failures: int, requeue: float) -> None:
        """Count and log a failed reconcile; never raises (an exception whose ``str()`` or
        ``reason`` is itself broken must not end the worker)."""
        try:
            reason = exc.reason if isinstance(exc, (KubeError, InvalidSpec)) else type(exc).__name__
            metrics.RECONCILES.labels(self.kind, "error").inc()
            metrics.RECONCILE_ERRORS.labels(self.kind, str(reason)[:64]).inc()
            log.warning(
                "reconcile failed (attempt %d, retry in %.1fs): %s",
                failures,
                requeue,
                exc,
                extra={"kind": self.kind, "object": f"{key[0]}/{key[1]}"},
                exc_info=not isinstance(exc, KubeError),
            )
        except Exception:  # noqa: BLE001 - last line of defence of a shared loop
            log.error(
                "reconcile of %s %s/%s failed, and so did reporting it (%s)",
                self.kind,
                *key,
                type(exc).__name__,
            )
