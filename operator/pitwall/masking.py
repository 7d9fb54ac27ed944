"""Secrets never shown: every form a secret value takes on its way into a message.

A secret rarely reaches a message as itself. ``kubectl create secret --from-file`` keeps the
file's trailing newline, and h11 refuses that header with "Illegal header value b'...\\n'" (the
repr of the bytes); a query string carries it percent-encoded; a ``user:secret`` userinfo comes
back base64-encoded in an echoed ``Authorization`` header; JSON and ``repr`` escape it. So a
:class:`Masker` replaces, for each secret and its whitespace-trimmed value: the value itself,
its JSON, ``repr`` (str and bytes) and HTML escapes, its percent-encodings (each safe set httpx
and ``urllib`` use, upper- and lower-case hex, ``+`` for spaces), and any base64 text that
contains it at any of the three byte alignments (so ``base64("user:" + secret)`` is caught
without knowing the user). Base64 matching needs secrets of at least 6 bytes; shorter ones are
masked in every other form.

One Masker per run (probes) or delivery (receivers, notices): what it has seen is what it hides.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "****"
_SAFE_SETS = ("", "/", "-._~", "/:@!$&'()*+,;=", "/:@!$'()*+,;=?")  # quote()s that httpx/urllib apply
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-")
_URLSAFE = str.maketrans("+/", "-_")


def forms(secret: str) -> set[str]:
    """Every literal form of ``secret`` (and of its trimmed value) that a message may carry."""
    out: set[str] = set()
    for value in {secret, secret.strip()}:
        if not value:
            continue
        out |= {
            value,
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
            repr(value)[1:-1],
            repr(value.encode())[2:-1],
            html.escape(value),
            value.replace("/", "\\/"),
            quote_plus(value),
        }
        for safe in _SAFE_SETS:
            encoded = quote(value, safe=safe)
            out |= {encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)}
    return {form for form in out if form}


def base64_cores(secret: str) -> set[str]:
    """Base64 substrings present in *any* encoding of a byte string containing ``secret``.

    Base64 works on 3-byte groups, so the secret's bytes land at one of three alignments; for
    each, the 4-character groups made only of the secret's bytes are fixed whatever surrounds
    them (standard and URL-safe alphabets).
    """
    cores: set[str] = set()
    for value in {secret.encode(), secret.strip().encode()}:
        for offset in range(3):
            encoded = base64.b64encode(b"\0" * offset + value).decode()
            start = 4 if offset else 0
            end = (offset + len(value)) // 3 * 4
            core = encoded[start:end]
            if len(core) >= 8 or (len(core) >= 4 and len(value) >= 6):
                cores |= {core, core.translate(_URLSAFE)}
    return cores


class Masker:
    """Replaces every form of every secret it was given with ``****``."""

    def __init__(self, secrets: Iterable[str | None] = ()):
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if secret and secret.strip() and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)  # a secret inside a longer one goes last

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if not text:
                break
            literal, cores = _needles(secret)
            for core in cores:
                text = _mask_base64(text, core)
            for form in literal:
                text = text.replace(form, MASK)
        return text


@functools.lru_cache(maxsize=1024)
def _needles(secret: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(literal forms, base64 cores) of ``secret``, longest first. Plain string searches, not a
    regex: compiling one per secret cost ~0.5 ms, and captured tokens are new on every run."""
    return (
        tuple(sorted(forms(secret), key=len, reverse=True)),
        tuple(sorted(base64_cores(secret), key=len, reverse=True)),
    )


def _mask_base64(text: str, core: str) -> str:
    """Replace each occurrence of ``core`` with the base64 characters around it (up to 3 each
    side, they still carry a few bits of the secret) and any ``=`` padding."""
    start = text.find(core)
    while start >= 0:
        end = start + len(core)
        left = start
        while left > 0 and start - left < 3 and text[left - 1] in _B64_CHARS:
            left -= 1
        right = end
        while right < len(text) and right - end < 3 and text[right] in _B64_CHARS:
            right += 1
        while right < len(text) and text[right] == "=":
            right += 1
        text = text[:left] + MASK + text[right:]
        start = text.find(core, left + len(MASK))
    return text


def mask(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every form of every secret replaced by ``****``."""
    return Masker(secrets)(text)
