"""Secrets never shown: each encoding a secret takes on its way into a message is masked."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus, urlencode

import pytest

from pitwall.masking import MASK, Masker, mask

SECRET = "s3cr3t/api+key=v@lue&x y"
FROM_FILE = SECRET + "\n"  # kubectl create secret --from-file keeps the newline


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


ENCODINGS = {
    "exact": lambda s: s,
    "trimmed": lambda s: s.strip(),
    "percent-encoded (no safe chars)": lambda s: quote(s.strip(), safe=""),
    "percent-encoded (path)": lambda s: quote(s.strip()),
    "percent-encoded lower-case hex": lambda s: re.sub(
        r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(s.strip(), safe="")
    ),
    "form/query encoded": lambda s: urlencode({"token": s.strip()}).split("=", 1)[1],
    "quote_plus": lambda s: quote_plus(s),
    "base64 alone": lambda s: b64(s.strip()),
    "base64 with newline": lambda s: b64(s),
    "base64 user:secret": lambda s: b64("homer:" + s.strip()),
    "base64 u:secret": lambda s: b64("u:" + s.strip()),
    "base64 ab:secret": lambda s: b64("ab:" + s.strip()),
    "urlsafe base64 user:secret": lambda s: base64.urlsafe_b64encode(
        ("homer:" + s.strip()).encode()
    ).decode(),
    "JSON-escaped": lambda s: json.dumps(s),
    "repr (str)": lambda s: repr(s),
    "repr (bytes), as h11 quotes it": lambda s: f"Illegal header value {s.encode()!r}",
    "JSON slash-escaped": lambda s: s.strip().replace("/", "\\/"),
}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("stored", [SECRET, FROM_FILE], ids=["plain", "trailing-newline"])
def test_every_encoding_is_masked(encoding, stored):
    shown = ENCODINGS[encoding](stored)
    text = f"request failed: {shown} (while talking to api.example.com)"

    masked = mask(text, [stored])

    assert MASK in masked
    assert masked.startswith("request failed: ") and masked.endswith("(while talking to api.example.com)")
    for part in ("s3cr3t", "api+key", "v@lue", "lue&x"):
        assert part not in masked
    # No base64 run of the secret's bytes is left either.
    assert ENCODINGS["base64 alone"](stored)[4:-4] not in masked


def test_unicode_secret_in_escaped_forms():
    secret = "pässwörd-ünïcode"
    for shown in (json.dumps(secret), repr(secret.encode()), quote(secret), b64("x:" + secret)):
        assert "ss" not in mask(shown, [secret]).replace(MASK, ""), shown


def test_text_without_secrets_is_untouched():
    masker = Masker([SECRET, None, "", "   "])
    text = "HTTP 403 from hooks.example.com: dGhpcyBpcyBub3QgaXQ="
    assert masker(text) == text
    assert Masker()(text) == text and not Masker()


def test_masker_learns_values_as_it_goes():
    masker = Masker()
    masker.add("first-secret-value")
    assert masker("a first-secret-value b") == f"a {MASK} b"
    masker.add("second-secret-value")
    assert masker("first-secret-value second-secret-value") == f"{MASK} {MASK}"
