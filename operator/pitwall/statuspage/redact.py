"""A safety net for the free text the public page shows.

The public page shows a few strings people typed: a product's ``displayName`` and
``description``, a window's ``reason`` and the product's maintenance page message. They are
written for consumers, but a reason like "patch core-banking on 10.1.2.3" would leak exactly
what the page must never show. :class:`Redactor` replaces, in such text, the names of backends,
consumers, probes, alert rules and maintenance windows and the display names of backends (whole
words, in any letter case: "Core-Banking" is core-banking), e-mail addresses, IP addresses,
cluster-internal host names (``*.svc``, ``*.cluster.local``, ``*.internal``, ``*.local``,
``localhost``) and other host names: three labels or more (``db01.corp.example``), or two with
a common top-level domain (``acme-db.com``). "Node.js", "config.yaml" and "v2.1" stay.

A backend display name that is part of a public product's own display name is left alone: the
product's name is on the page anyway, and "Payments" would otherwise turn "Payments API" into
"a provider system API".
"""

from __future__ import annotations

import re

from .relations import Snapshot, key, spec

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])\[?[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}\]?(?![\w:])")
_DOMAIN = re.compile(
    r"(?<![\w.@-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,24}))(?::\d+)?(?![\w-])", re.IGNORECASE
)
COMMON_TLDS = frozenset(
    "com net org io dev app cloud co biz info me us uk de fr nl eu ch at be ca au jp in br "
    "ru cn za ai sh tech xyz site online systems services bank".split()
)
_HOST = re.compile(
    r"(?<![\w.-])(?:[\w-]+\.)*[\w-]+\.(?:svc(?:\.cluster\.local)?|cluster\.local|internal|local)"
    r"(?::\d+)?(?![\w-])|\blocalhost(?::\d+)?\b"
)


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
        shown = " ".join(str(spec(p).get("displayName") or "") for p in snapshot.products).lower()
        for backend in snapshot.backends:
            replacements[key(backend)[1]] = "a provider system"
            display = " ".join(str(spec(backend).get("displayName") or "").split())
            if len(display) >= 3 and display.lower() not in shown:
                replacements[display] = "a provider system"
        replacements = {n.lower(): r for n, r in replacements.items() if n}
        names = sorted(replacements, key=len, reverse=True)
        self._names = (
            re.compile(r"(?<![\w-])(" + "|".join(_loose(n) for n in names) + r")(?![\w-])", re.IGNORECASE)
            if names
            else None
        )
        self._replacements = replacements

    def __call__(self, text: str | None) -> str:
        if not text:
            return ""
        text = _EMAIL.sub("[email]", str(text))
        text = _HOST.sub("[internal host]", text)
        text = _IPV4.sub("[address]", text)
        text = _IPV6.sub(_ipv6, text)
        text = _DOMAIN.sub(_domain, text)
        if self._names is not None:
            text = self._names.sub(self._name, text)
        return text

    def _name(self, match: re.Match) -> str:
        return self._replacements.get(" ".join(match.group(1).lower().split()), "[internal]")


def _loose(name: str) -> str:
    """``name`` as a pattern in which any run of white space matches any other."""
    return r"\s+".join(re.escape(part) for part in name.split())


def _domain(match: re.Match) -> str:
    host, tld = match.group(1), match.group(2).lower()
    return "[host]" if host.count(".") >= 2 or tld in COMMON_TLDS else match.group(0)


def _ipv6(match: re.Match) -> str:
    """An IPv6 address has "::" or at least four colons; "22:00:00" is a time of day."""
    found = match.group(0)
    return "[address]" if "::" in found or found.count(":") >= 4 else found
