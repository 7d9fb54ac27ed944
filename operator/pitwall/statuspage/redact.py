"""A safety net for the free text the public page shows.

The public page shows a few strings people typed: a product's ``displayName`` and
``description``, a window's ``reason`` and the product's maintenance page message. They are
written for consumers, but a reason like "patch core-banking on 10.1.2.3" would leak exactly
what the page must never show. :class:`Redactor` replaces, in such text, the names of backends,
consumers, probes, alert rules and maintenance windows (whole words, case-sensitive, as
Kubernetes names are lower case), e-mail addresses, IP addresses and cluster-internal host
names (``*.svc``, ``*.cluster.local``, ``*.internal``, ``*.local``, ``localhost``).
"""

from __future__ import annotations

import re

from .relations import Snapshot, key, spec

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])\[?[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}\]?(?![\w:])")
_HOST = re.compile(r"(?<![\w.-])(?:[\w-]+\.)*[\w-]+\.(?:svc(?:\.cluster\.local)?|cluster\.local|internal|local)"
                   r"(?::\d+)?(?![\w-])|\blocalhost(?::\d+)?\b")


class Redactor:
    def __init__(self, snapshot: Snapshot):
        replacements: dict[str, str] = {}
        for obj in [*snapshot.probes, *snapshot.rules, *snapshot.windows]:
            replacements[key(obj)[1]] = "[internal]"
        for product in snapshot.products:
            for consumer in spec(product).get("consumers") or []:
                if consumer.get("name"):
                    replacements[consumer["name"]] = "a consumer"
            for ref in spec(product).get("backends") or []:
                if ref.get("name"):
                    replacements[ref["name"]] = "a provider system"
        for backend in snapshot.backends:
            replacements[key(backend)[1]] = "a provider system"
        names = sorted((n for n in replacements if n), key=len, reverse=True)
        self._names = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, names)) + r")(?![\w-])") if names else None
        self._replacements = replacements

    def __call__(self, text: str | None) -> str:
        if not text:
            return ""
        text = _EMAIL.sub("[email]", str(text))
        text = _HOST.sub("[internal host]", text)
        text = _IPV4.sub("[address]", text)
        text = _IPV6.sub(_ipv6, text)
        if self._names is not None:
            text = self._names.sub(lambda m: self._replacements[m.group(1)], text)
        return text


def _ipv6(match: re.Match) -> str:
    """An IPv6 address has "::" or at least four colons; "22:00:00" is a time of day."""
    found = match.group(0)
    return "[address]" if "::" in found or found.count(":") >= 4 else found
