"""Leader election on a coordination.k8s.io Lease: exactly one replica does the work.

Every replica watches (so its caches are warm and a takeover is quick), but only the holder of
the Lease runs the work queues, the probe scheduler and deliveries. The holder renews every
``renew`` seconds; a replica takes over a Lease not renewed for ``duration`` seconds. A leader
that cannot renew before its Lease expires exits the process rather than risk two leaders:
Kubernetes restarts it as a standby. Takeover is bounded by ``duration + retry`` seconds.

State that matters (alerts, notices, probe counts) lives in the custom resources' status, so
the new leader resumes where the old one stopped, without duplicate notifications.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import metrics
from .errors import Conflict, NotFound
from .kube import Kube

log = logging.getLogger("pitwall.leader")

LEASE_NAME = "pitwall-operator"


def _micro(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class LeaseView:
    holder: str | None
    renewed: datetime | None
    duration: float
    transitions: int


def view(lease: dict) -> LeaseView:
    spec = lease.get("spec") or {}
    return LeaseView(
        spec.get("holderIdentity"),
        _parse(spec.get("renewTime")),
        float(spec.get("leaseDurationSeconds") or 15),
        int(spec.get("leaseTransitions") or 0),
    )


def can_take(lease: LeaseView, me: str, now: datetime) -> bool:
    """A Lease is ours to take when we hold it, nobody does, or its holder stopped renewing."""
    if lease.holder in (None, "", me):
        return True
    return lease.renewed is None or now > lease.renewed + timedelta(seconds=lease.duration)


class Elector:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        *,
        identity: str | None = None,
        duration: float = 15.0,
        renew: float = 5.0,
        retry: float = 2.0,
    ):
        self.kube = kube
        self.namespace = namespace
        self.identity = identity or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.duration, self.renew, self.retry = duration, renew, retry
        self.leading = False

    def _body(self, now: datetime, lease: LeaseView | None, resource_version: str | None) -> dict:
        taking = lease is None or lease.holder != self.identity
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.duration),
            "renewTime": _micro(now),
        }
        if taking:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = (lease.transitions + 1) if lease and lease.holder else 0
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": self.namespace},
            "spec": spec,
        }
        if resource_version:
            body["metadata"]["resourceVersion"] = resource_version
        return body

    async def try_acquire(self) -> bool:
        """One attempt to acquire or renew; True while we lead."""
        now = datetime.now(UTC)
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"
        try:
            current = await self.kube.get("Lease", self.namespace, LEASE_NAME)
            if current is None:
                await self.kube.request("POST", path, body=self._body(now, None, None))
                return True
            lease = view(current)
            if not can_take(lease, self.identity, now):
                return False
            merged = self._body(now, lease, current["metadata"]["resourceVersion"])
            merged["spec"] = {**current.get("spec", {}), **merged["spec"]}
            await self.kube.request("PUT", f"{path}/{LEASE_NAME}", body=merged)
            return True
        except (Conflict, NotFound):
            return False  # somebody else moved first: look again next round

    async def run(self, on_elected: Callable[[], Awaitable[None]]) -> None:
        """Wait to lead, call ``on_elected`` once, then keep renewing; exit if we lose the Lease."""
        while not self.leading:
            try:
                self.leading = await self.try_acquire()
            except Exception as exc:  # the API server may be briefly away
                log.warning("leader election attempt failed: %s", exc)
            if not self.leading:
                await asyncio.sleep(self.retry)
        metrics.LEADER.set(1)
        log.info("became the leader (%s)", self.identity)
        await on_elected()
        deadline = asyncio.get_running_loop().time() + self.duration
        while True:
            await asyncio.sleep(self.renew)
            try:
                renewed = await self.try_acquire()
            except Exception as exc:
                log.warning("lease renewal failed: %s", exc)
                renewed = False
            now = asyncio.get_running_loop().time()
            if renewed:
                deadline = now + self.duration
            elif now >= deadline - self.renew / 2:
                log.error("lost the leader lease; exiting so that exactly one replica leads")
                metrics.LEADER.set(0)
                os._exit(3)
