"""The hostile target for ``bench/hostile.py``: every response issue 14 found harmful, served from
its own process so the checker's memory is measured alone.

    python -m bench.hostile_target --port 18999
"""

from __future__ import annotations

import argparse
import gzip
import json
import zlib

from aiohttp import web


def gzip_bomb(decoded_mib: int) -> bytes:
    """``decoded_mib`` MiB of zeros in two gzip layers (about 1.8 KB for 1 GiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * (1 << 20)
    inner = b"".join(packer.compress(zeros) for _ in range(decoded_mib)) + packer.flush()
    return gzip.compress(inner, 9)


def app() -> web.Application:
    bomb = gzip_bomb(1024)
    redos = ("a" * 50_000 + "!").encode()
    deep = b'{"a":' * 30_000 + b"1" + b"}" * 30_000  # parsed: nested too deeply
    deeper = b"[" * 500_000 + b"]" * 500_000  # 1 MB of brackets: refused by count

    def catalogue(n: int) -> bytes:
        return json.dumps(
            [
                {"id": i, "name": f"item-{i}", "tags": ["a", "b"], "price": {"amount": i, "cur": "ZAR"}}
                for i in range(n)
            ]
        ).encode()

    items = catalogue(220)  # ~22 KB, just under the 2,000 values a scanning path runs on
    catalog = catalogue(4_400)  # ~440 KB, the body
    wide = json.dumps(list(range(200_000))).encode()  # 1.3 MB of numbers: over the cap

    def fixed(body: bytes, **headers) -> web.RequestHandler:
        async def handle(request: web.Request) -> web.Response:
            return web.Response(body=body, headers={"Content-Type": "application/json", **headers})

        return handle

    application = web.Application()
    application.add_routes(
        [
            web.get("/ready", fixed(b"{}")),
            web.get("/ok", fixed(b'{"status": "ok"}')),
            web.get("/bomb", fixed(bomb, **{"Content-Encoding": "gzip, gzip"})),
            web.get("/redos", fixed(redos, **{"X-Name": "a" * 5000 + "!"})),
            web.get("/deep", fixed(deep)),
            web.get("/deeper", fixed(deeper)),
            web.get("/items", fixed(items)),
            web.get("/catalog", fixed(catalog)),
            web.get("/wide", fixed(wide)),
        ]
    )
    return application


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    web.run_app(app(), host="127.0.0.1", port=parser.parse_args().port, print=None)


if __name__ == "__main__":
    main()
