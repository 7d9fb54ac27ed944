"""Decode a response body's ``Content-Encoding`` layers with the output bounded while it streams.

httpx decodes each raw chunk through every layer at once, and caps nothing: with
``Content-Encoding: gzip, gzip`` a 1.8 KB response decodes in one call into gigabytes (issue 14:
the operator grew to 2 GB). Here every layer inflates at most ``CHUNK`` bytes at a time
(zlib's ``max_length``), each layer's output counts against ``limit``, and the whole is
stopped when the decoded size passes ``limit`` or the ratio of decoded to received bytes passes
``ratio`` (once ``RATIO_AFTER`` bytes are decoded, so small bodies are never judged by ratio).
Memory per body stays within ``limit`` plus a chunk per layer, whatever the encoding claims.

Encodings Pitwall does not decode (``br``, ``zstd`` ... it does not ask for them) pass through
as they are, like httpx does; more than ``MAX_LAYERS`` layers is refused.
"""

from __future__ import annotations

import zlib

CHUNK = 64 * 1024
MAX_LAYERS = 3
RATIO_AFTER = 64 * 1024


class BodyTooLarge(Exception):
    """Decoding stopped at a cap; the message says which, for a person."""


class DecompressionBomb(BodyTooLarge):
    """Too many layers, or a ratio no honest body has: the target's fault whatever the check reads."""


class Undecodable(Exception):
    """The body is not what its Content-Encoding says."""


class _Inflate:
    """One gzip or deflate layer (deflate: zlib-wrapped, or raw as some servers send it)."""

    def __init__(self, name: str):
        self.name = name
        self._wbits = zlib.MAX_WBITS | 16 if name in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._zlib = zlib.decompressobj(self._wbits)
        self._started = False

    def decompress(self, data: bytes, max_length: int) -> bytes:
        try:
            out = self._zlib.decompress(data, max_length)
        except zlib.error as exc:
            if self.name == "deflate" and not self._started:  # raw deflate, without the zlib header
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                self._started = True
                return self.decompress(data, max_length)
            raise Undecodable(f"response body is not valid {self.name}: {exc}") from None
        self._started = True
        return out

    @property
    def unconsumed_tail(self) -> bytes:
        return self._zlib.unconsumed_tail


class BoundedDecoder:
    """Feed raw chunks, get decoded bytes; raises ``BodyTooLarge`` or ``Undecodable``."""

    def __init__(self, content_encoding: str | None, *, limit: int, ratio: float):
        names = [n.strip().lower() for n in (content_encoding or "").split(",") if n.strip()]
        layers = [n for n in names if n in ("gzip", "x-gzip", "deflate")]
        if len(layers) > MAX_LAYERS:
            raise DecompressionBomb(
                f"response has {len(layers)} content encodings (at most {MAX_LAYERS} are decoded)"
            )
        self._layers = [_Inflate(n) for n in reversed(layers)]  # the last applied comes off first
        self._produced = [0] * len(self._layers)
        self.limit = limit
        self.ratio = ratio
        self.received = 0
        self.decoded = 0
        self._out: list[bytes] = []

    @property
    def encoded(self) -> bool:
        return bool(self._layers)

    def feed(self, raw: bytes) -> bytes:
        self.received += len(raw)
        self._push(0, raw)
        out, self._out = b"".join(self._out), []
        return out

    def _push(self, index: int, data: bytes) -> None:
        if index == len(self._layers):
            self.decoded += len(data)
            self._out.append(data)
            if self.decoded > self.limit:
                raise BodyTooLarge(f"response body larger than {_size(self.limit)} after decoding")
            if self.decoded > RATIO_AFTER and self.decoded > self.ratio * max(self.received, 1):
                raise DecompressionBomb(
                    f"response body decodes at more than {self.ratio:.0f} times its size "
                    "(a decompression bomb?)"
                )
            return
        layer = self._layers[index]
        while True:
            chunk = layer.decompress(data, CHUNK)
            self._produced[index] += len(chunk)
            if self._produced[index] > self.limit:
                raise BodyTooLarge(f"response body larger than {_size(self.limit)} after decoding")
            if chunk:
                self._push(index + 1, chunk)
            data = layer.unconsumed_tail
            if not data and len(chunk) < CHUNK:
                return


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n} bytes"
