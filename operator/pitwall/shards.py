"""Probe shards on coordination.k8s.io Leases: N replicas run N times the probes.

With ``--probe-shards N`` the probes are split into N shards, each guarded by a Lease
``pitwall-shard-<i>`` in the lease namespace. A probe belongs to one shard for its whole life:
rendezvous hashing of its UID over the shard numbers (:func:`shard_of`), stable across
processes and restarts. A replica runs the probes of the shards whose Lease it holds, and only
those, so each probe has one owner at a time.

Who holds what: every replica renews its entry in the Lease ``pitwall-shard-members`` (an
annotation mapping each replica to its last renewal; entries 3 lease durations old are dropped)
so the others know how many replicas are alive, and holds at most its fair share,
``ceil(N / live members)``, of the shard Leases (:func:`plan`). Every Lease has a fixed name,
so the RBAC Role can name them. A replica with
more than its share releases the extra shards (after stopping their probes and writing their
latest numbers, in the background: a round renews the shards it keeps without waiting for
that), one with less takes free or expired ones. A round's Lease reads and writes go out
together, so it lasts a few round trips however many shards there are, also on a replica
whose event loop is busy with an overload. A replica that dies stops renewing:
its membership and its shard Leases expire after ``duration`` seconds, and the others take
its shards at that moment (they wait for the exact expiry time they read, not the next
round), so a probe misses at most the lease duration plus one interval. A replica that cannot
renew a shard drops it locally half a renew period before its Lease can expire, so two
replicas never run a probe at once.

Alerts, notices and everything else stay with the single leader (``leader.py``); the status
page and the CLI read the API, so they work on every replica.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from prometheus_client import Gauge

from .errors import Conflict, Forbidden, NotFound
from .kube import Kube
from .leader import LeaseView, _micro, can_take, view
from .supervise import spawn

log = logging.getLogger("pitwall.shards")

SHARD_PREFIX = "pitwall-shard-"
MEMBERS = "pitwall-shard-members"
MEMBERS_ANNOTATION = "pitwall.dev/members"
MAX_SHARDS = 256

SHARDS_HELD = Gauge("pitwall_probe_shards_held", "Probe shards whose Lease this replica holds")
SHARDS_TOTAL = Gauge("pitwall_probe_shards", "Probe shards configured (--probe-shards)")


@lru_cache(maxsize=65536)
def shard_of(uid: str, count: int) -> int:
    """The shard of the object with ``uid``: rendezvous (highest random weight) hashing, so
    changing the number of shards moves only the probes of the shards added or removed."""
    best, best_weight = 0, -1
    for index in range(count):
        weight = int.from_bytes(hashlib.blake2b(f"{uid}/{index}".encode(), digest_size=8).digest(), "big")
        if weight > best_weight:
            best, best_weight = index, weight
    return best


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index}"


def members_of(lease: dict | None) -> dict[str, datetime]:
    """The replicas in the members Lease and when each last renewed (unreadable entries: none)."""
    raw = (((lease or {}).get("metadata") or {}).get("annotations") or {}).get(MEMBERS_ANNOTATION) or "{}"
    try:
        found = json.loads(raw)
        return (
            {str(k): datetime.fromisoformat(str(v)) for k, v in found.items()}
            if isinstance(found, dict)
            else {}
        )
    except ValueError:
        return {}


def renewed_members(
    members: dict[str, datetime], me: str | None, now: datetime, duration: float
) -> dict[str, datetime]:
    """``members`` with ``me`` renewed now (``me=None``: nobody renewed) and entries older than
    three lease durations dropped (replicas that died)."""
    kept = {k: v for k, v in members.items() if now - v <= timedelta(seconds=3 * duration)}
    if me is not None:
        kept[me] = now
    return kept


@dataclass(frozen=True)
class Plan:
    renew: tuple[int, ...]  # held, keep
    release: tuple[int, ...]  # held beyond the fair share: hand over
    take: tuple[int, ...]  # free or expired, within the fair share


def plan(shards: list[LeaseView | None], members: int, me: str, now: datetime) -> Plan:
    """What to do with each shard Lease (``None``: it does not exist yet), given ``members``
    live replicas (this one included): hold at most ``ceil(N / members)``, lowest numbers first."""
    quota = math.ceil(len(shards) / max(1, members))
    held = [i for i, lease in enumerate(shards) if lease is not None and lease.holder == me]
    keep, release = held[:quota], held[quota:]
    take: list[int] = []
    for index, lease in enumerate(shards):
        if len(keep) + len(take) >= quota:
            break
        if index not in held and (lease is None or can_take(lease, me, now)):
            take.append(index)
    return Plan(tuple(keep), tuple(release), tuple(take))


Callback = Callable[[frozenset[int]], Awaitable[None]]


class Shards:
    """Holds this replica's share of the shard Leases; ``owns(uid)`` says whether to run a probe.

    ``on_gain`` is awaited after shards were taken (schedule their probes), ``on_loss`` before a
    shard is released and when one was lost (stop their probes)."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        count: int,
        identity: str,
        *,
        on_gain: Callback,
        on_loss: Callback,
        duration: float = 15.0,
        renew: float = 5.0,
    ):
        if not 1 <= count <= MAX_SHARDS:
            raise ValueError(f"--probe-shards must be between 1 and {MAX_SHARDS}, got {count}")
        self.kube, self.namespace, self.count, self.identity = kube, namespace, count, identity
        self.on_gain, self.on_loss = on_gain, on_loss
        self.duration, self.renew = duration, renew
        self.owned: dict[int, float] = {}  # shard -> loop time by which it must be dropped
        # Shards being handed over in the background (their probes stopped and their numbers
        # written, then their Lease freed): neither renewed nor taken again until that is done.
        self.handing: set[int] = set()
        self._handovers: set[asyncio.Task] = set()
        SHARDS_TOTAL.set(count)

    def owns(self, uid: str | None) -> bool:
        return uid is not None and shard_of(uid, self.count) in self.owned

    def owned_by_me(self, uids: Iterable[str]) -> list[str]:
        return [uid for uid in uids if self.owns(uid)]

    # -- the API ---------------------------------------------------------------------------------
    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    def _body(
        self, name: str, now: datetime, holder: str, current: dict | None, annotations: dict | None = None
    ) -> dict:
        spec: dict[str, Any] = dict((current or {}).get("spec") or {})
        previous = view(current) if current else None
        if holder and (previous is None or previous.holder != holder):
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = (previous.transitions + 1) if previous and previous.holder else 0
        spec.update(
            {
                "holderIdentity": holder,
                "leaseDurationSeconds": max(1, int(self.duration)),
                "renewTime": _micro(now),
            }
        )
        metadata: dict[str, Any] = {"name": name, "namespace": self.namespace}
        if annotations is not None:
            metadata["annotations"] = annotations
        if current:
            metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    async def _write(
        self, name: str, holder: str, current: dict | None, annotations: dict | None = None
    ) -> bool:
        """Create or update (optimistically, on the version read) one Lease; False if someone
        else moved first."""
        body = self._body(name, datetime.now(UTC), holder, current, annotations)
        try:
            if current is None:
                await self.kube.request("POST", self._path, body=body)
            else:
                await self.kube.request("PUT", f"{self._path}/{name}", body=body)
            return True
        except (Conflict, NotFound):
            return False

    # -- one round -------------------------------------------------------------------------------
    async def step(self) -> float:
        """Renew, release and take Leases once; returns how long to wait before the next round."""
        loop = asyncio.get_running_loop()
        known = await self._renew_membership(self.identity)
        now = datetime.now(UTC)
        members = {
            name
            for name, at in known.items()
            if name == self.identity or now - at <= timedelta(seconds=self.duration)
        }
        # The shard Leases at once, not one after another: on an overloaded (or CPU-starved)
        # replica every await waits for a busy event loop, and a round of 2 + 2N sequential
        # requests outlasted the lease (bench/results/probes.md, 2026-11-29), so a live replica
        # lost its shards to the others. Now a round is four round trips whatever N is.
        current = list(
            await asyncio.gather(
                *(self.kube.get("Lease", self.namespace, shard_name(i)) for i in range(self.count))
            )
        )
        views = [view(item) if item else None for item in current]
        # A shard we believe ours but whose Lease names someone else (or is gone) is lost.
        lost = {i for i in self.owned if (lease := views[i]) is None or lease.holder != self.identity}
        decided = plan(views, len(members), self.identity, now)
        if decided.release:
            lost |= set(decided.release)
        # Handing over never holds up this round: its writes of 1,000s of probes' numbers
        # would keep the shards this replica keeps from being renewed in time.
        self._drop(lost - set(decided.release))
        self._drop(set(decided.release), release=True)
        started = loop.time()
        renewing = [i for i in decided.renew if i not in lost and i not in self.handing]
        taking = [i for i in decided.take if i not in self.handing]
        written = await asyncio.gather(
            *(self._write(shard_name(i), self.identity, current[i]) for i in (*renewing, *taking))
        )
        outcome = dict(zip((*renewing, *taking), written, strict=True))
        for index in renewing:
            if outcome[index]:
                self.owned[index] = started + self.duration - self.renew / 2
        self._drop({index for index in renewing if not outcome[index]})
        gained = set()
        for index in taking:
            if outcome[index]:
                self.owned[index] = started + self.duration - self.renew / 2
                gained.add(index)
        SHARDS_HELD.set(len(self.owned))
        if gained:
            log.info(
                "took probe shards %s (%d of %d held, %d replicas)",
                sorted(gained),
                len(self.owned),
                self.count,
                len(members),
            )
            await self.on_gain(frozenset(gained))
        # Wake exactly when another replica's shard Lease expires, so a dead replica's probes
        # move after the lease duration, not up to a renew period later.
        wait = self.renew
        for lease in views:
            if lease is not None and lease.holder and lease.holder != self.identity and lease.renewed:
                expiry = (lease.renewed + timedelta(seconds=lease.duration) - now).total_seconds()
                wait = min(wait, max(0.05, expiry + 0.05))
        return wait

    def _drop(self, indexes: set[int], *, release: bool = False) -> asyncio.Task | None:
        """Stop holding ``indexes`` now and hand them over in the background: ``on_loss`` (stop
        their probes, write their latest numbers), then, with ``release``, free their Leases
        (still ours) so another replica takes them at once. Returns the hand-over task."""
        indexes = {i for i in indexes if i in self.owned}
        if not indexes:
            return None
        for index in indexes:
            self.owned.pop(index, None)
        SHARDS_HELD.set(len(self.owned))
        log.info("handing over probe shards %s", sorted(indexes))
        self.handing |= indexes
        task = spawn(
            self._hand_over(frozenset(indexes), release), name="probe shard hand-over", long_lived=False
        )
        self._handovers.add(task)
        task.add_done_callback(self._handovers.discard)
        return task

    async def _hand_over(self, indexes: frozenset[int], release: bool) -> None:
        try:
            await self.on_loss(indexes)
            if release:
                await asyncio.gather(*(self._free(index) for index in indexes))
        finally:
            self.handing -= indexes

    async def _free(self, index: int) -> None:
        try:
            current = await self.kube.get("Lease", self.namespace, shard_name(index))
            if current is not None and view(current).holder == self.identity:
                await self._write(shard_name(index), "", current)
        except Exception as exc:
            log.warning("could not release probe shard %d: %s", index, exc)

    async def _renew_membership(self, me: str | None) -> dict[str, datetime]:
        """Renew (or with ``me=None``, remove) this replica's entry; the members as written."""
        for _ in range(3):  # another replica may write between our read and our write
            current = await self.kube.get("Lease", self.namespace, MEMBERS)
            now = datetime.now(UTC)
            known = members_of(current)
            if me is None:
                known.pop(self.identity, None)
            members = renewed_members(known, me, now, self.duration)
            annotations = {
                **((current or {}).get("metadata", {}).get("annotations") or {}),
                MEMBERS_ANNOTATION: json.dumps({k: v.isoformat() for k, v in sorted(members.items())}),
            }
            if await self._write(MEMBERS, "", current, annotations):
                return members
        return members

    async def run(self) -> None:
        """Rounds until cancelled; a shard not renewed in time is dropped locally first."""
        loop = asyncio.get_running_loop()
        while True:
            wait = self.renew
            try:
                wait = await self.step()
            except asyncio.CancelledError:
                raise
            except Forbidden as exc:  # a Role that names fewer shard Leases than --probe-shards
                log.error(
                    "probe shard round failed: %s; --probe-shards %d needs get and update on the "
                    "Leases %s and %s0 to %s%d in %s (the manifests' Role names 32 shards)",
                    exc,
                    self.count,
                    MEMBERS,
                    SHARD_PREFIX,
                    SHARD_PREFIX,
                    self.count - 1,
                    self.namespace,
                )
                wait = self.renew
            except Exception as exc:  # the API server may be briefly away
                log.warning("probe shard round failed: %s", exc)
                wait = min(self.renew, 1.0)
            overdue = {index for index, deadline in self.owned.items() if loop.time() >= deadline}
            if overdue:
                log.error("could not renew probe shards %s in time; stopped their probes", sorted(overdue))
                self._drop(overdue)
            await asyncio.sleep(max(0.0, min([wait, *(d - loop.time() for d in self.owned.values())])))

    async def release(self) -> None:
        """Graceful shutdown: stop this replica's probes, free its shards and its member Lease,
        so the others take over at once instead of after the lease duration."""
        self._drop(set(self.owned), release=True)
        await asyncio.gather(*self._handovers, return_exceptions=True)
        try:
            await self._renew_membership(None)
        except Exception as exc:
            log.warning("could not leave the probe shard members: %s", exc)
