"""Which addresses a probe may reach.

Probes are written by tenants and run with the operator's network position, so a probe is a
server-side request forgery waiting to happen: cloud metadata services hand out credentials to
whoever asks from inside the node. Link-local and metadata addresses are therefore denied by
default. The decision is made on the *resolved* addresses at connect time (see
``client.GuardedBackend``), so a name that resolves to a metadata address, or re-resolves to one
later, is refused too.

Order of the decision, per address: the operator's denylist wins; then its allowlist (which may
re-allow part of the built-in defaults, e.g. one link-local service an operator really needs);
then the built-in defaults; then, when an allowlist is configured, anything not on it is denied.
Loopback is allowed by default because development and tests probe 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InvalidSpec

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_NETWORKS: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n) for n in (
    "169.254.0.0/16",  # IPv4 link-local: AWS, GCP, Azure, OCI, OpenStack metadata at 169.254.169.254
    "fe80::/10",  # IPv6 link-local
    "fd00:ec2::254/128",  # AWS metadata over IPv6
    "100.100.100.200/32",  # Alibaba Cloud metadata
))
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "instance-data.ec2.internal"})


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: frozenset[str] = frozenset()
    deny_networks: tuple[IPNetwork, ...] = ()
    deny_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_lists(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> AddressPolicy:
        """Entries are CIDRs, addresses or host names (e.g. from a comma-separated setting)."""
        allow_nets, allow_hosts = _split(allow)
        deny_nets, deny_hosts = _split(deny)
        return cls(allow_nets, allow_hosts, deny_nets, deny_hosts)

    def verdict(self, host: str, addresses: Iterable[IPAddress] = ()) -> str | None:
        """Why ``host`` (resolved to ``addresses``) is denied, or None when it is allowed.

        With no addresses only the name is judged (and the host itself when it is an IP
        literal): that is all that can be known before connecting, or when a proxy connects.
        """
        name = _normalise(host)
        literal = _ip(name)
        if literal is None:
            if name in self.deny_hosts:
                return f"{name} is denied by the operator's address policy (denylist)"
            if name in METADATA_HOSTS and name not in self.allow_hosts:
                return f"{name} is a cloud-metadata host and is denied by policy"
        for address in [literal] if literal is not None else addresses:
            address = _unmap(address)
            reason = self._judge(address, name_allowed=name in self.allow_hosts)
            if reason:
                return f"{address} {reason}" if literal is not None else f"{name} resolves to {address}, which {reason}"
        return None

    def _judge(self, address: IPAddress, *, name_allowed: bool) -> str | None:
        if any(address in net for net in self.deny_networks):
            return "is denied by the operator's address policy (denylist)"
        if any(address in net for net in self.allow_networks):
            return None
        if any(address in net for net in METADATA_NETWORKS):
            return "is a link-local/cloud-metadata address and is denied by policy"
        if self.restrictive and not name_allowed:
            return "is not in the operator's allowlist"
        return None

    def enforce(self, host: str, addresses: Iterable[IPAddress] = ()) -> None:
        """Raise ``InvalidSpec("TargetDenied")``: the probe is Stalled, never counted as a failure."""
        reason = self.verdict(host, addresses)
        if reason:
            raise InvalidSpec("TargetDenied", reason)

    @property
    def restrictive(self) -> bool:
        return bool(self.allow_networks or self.allow_hosts)


def _split(entries: Iterable[str]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    networks, hosts = [], set()
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(_normalise(entry))
    return tuple(networks), frozenset(hosts)


def _normalise(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _unmap(address: IPAddress) -> IPAddress:
    """``::ffff:169.254.169.254`` is 169.254.169.254 to the kernel, so judge it as such."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address
