"""Issue 14: hostile targets and odd specs against the engine and the monitor, on real local
servers. Every check ends in a verdict with a reason, whatever the target sends; a bomb never
decodes past its caps; nothing escapes a check."""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import socket
import zlib

import pytest
from aiohttp import web

from pitwall.egress import Policy as AddressPolicy
from pitwall.errors import InvalidSpec
from pitwall.probes import document
from pitwall.probes.client import make_client
from pitwall.probes.engine import run_check
from pitwall.probes.monitor import JOB_ERRORS, Job, Monitor
from pitwall.probes.spec import parse_check
from pitwall.runtime import Runtime, Settings

from .conftest import secrets


def _app(*routes) -> web.Application:
    app = web.Application()
    app.add_routes(routes)
    return app


@functools.lru_cache
def gzip_bomb(decoded_mib: int, layers: int = 2) -> bytes:
    """``decoded_mib`` MiB of zeros, gzipped ``layers`` times (1.8 KB for 1 GiB in two layers)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * (1 << 20)
    data = b"".join(packer.compress(zeros) for _ in range(decoded_mib)) + packer.flush()
    for _ in range(layers - 1):
        data = gzip.compress(data, 9)
    return data


LARGE = [{"id": i, "name": f"n{i}", "tags": ["a", "b"]} for i in range(300)]


def check_of(url: str, path: str, expect: dict | None = None, **spec) -> object:
    return parse_check(
        {
            "target": {"url": url},
            **spec,
            "steps": [{"name": "get", "request": {"path": path}, "expect": expect or {}}],
        }
    )


@pytest.fixture
async def hostile(serve):
    """A target that misbehaves in every way issue 14 found."""
    bomb = gzip_bomb(64)  # 64 MiB of zeros in two gzip layers: about 200 bytes

    async def double_gzip(request):
        return web.Response(
            body=bomb, headers={"Content-Encoding": "gzip, gzip", "Content-Type": "text/plain"}
        )

    async def big_gzip(request):  # 3 MiB of varied text: a low ratio, but past the absolute cap
        text = "".join(f"line {i} {i * 7919 % 10007}\n" for i in range(200_000)).encode()
        return web.Response(body=gzip.compress(text), headers={"Content-Encoding": "gzip"})

    async def bad_gzip(request):
        return web.Response(body=b"not gzip at all", headers={"Content-Encoding": "gzip"})

    async def good_gzip(request):
        return web.Response(
            body=gzip.compress(b'{"status": "ok"}'),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def deep(request):
        return web.Response(body=b"[" * 15_000 + b"]" * 15_000, content_type="application/json")

    async def wide(request):
        return web.json_response([0] * (document.MAX_VALUES + 10))

    async def large(request):  # within MAX_SCANNED_VALUES, large enough for the worker pool
        return web.json_response(LARGE)

    async def big(request):  # past MAX_SCANNED_VALUES: only paths that descend are evaluated
        return web.json_response([{"id": i} for i in range(20_000)])

    async def redos(request):
        return web.Response(text="a" * 50_000 + "!", headers={"X-Name": "a" * 5000 + "!"})

    async def latin(request):
        return web.json_response({"name": "Zoë"})

    return await serve(
        _app(
            web.get("/double-gzip", double_gzip),
            web.get("/big-gzip", big_gzip),
            web.get("/bad-gzip", bad_gzip),
            web.get("/good-gzip", good_gzip),
            web.get("/deep", deep),
            web.get("/wide", wide),
            web.get("/large", large),
            web.get("/big", big),
            web.get("/redos", redos),
            web.get("/latin", latin),
        )
    )


@pytest.mark.parametrize(
    ("path", "expect", "reason"),
    [
        # The bomb fails even a check that reads only the status: it is the target's fault.
        ("/double-gzip", {}, "response body decodes at more than 200 times its size (a decompression bomb?)"),
        (
            "/double-gzip",
            {"body": {"contains": "x"}},
            "response body decodes at more than 200 times its size (a decompression bomb?)",
        ),
        ("/big-gzip", {"body": {"contains": "x"}}, "response body larger than 1 MiB after decoding"),
        ("/big-gzip", {}, ""),  # past the cap, but the check does not read the body
        (
            "/bad-gzip",
            {},
            "response body is not valid gzip: Error -3 while decompressing data: incorrect header check",
        ),
        ("/good-gzip", {"json": [{"path": "$.status", "equals": "ok"}]}, ""),
        ("/deep", {"json": [{"path": "$[0]"}]}, "response JSON is nested too deeply"),
        (
            "/wide",
            {"json": [{"path": "$[0]"}]},
            f"response JSON has more than {document.MAX_VALUES} values; JSONPath expectations are evaluated on "
            "smaller documents",
        ),
        ("/large", {"json": [{"path": "$..name", "equals": "n0"}, {"path": "$[299].id", "equals": 299}]}, ""),
        (
            "/large",
            {"json": [{"path": "$..*", "equals": "nothing"}]},
            "$..* is {'id': 0, 'name': 'n0', 'tags': ['a', 'b']}, expected 'nothing'",
        ),
        (
            "/large",
            {"json": [{"path": "$", "equals": "nothing"}]},
            f"$ is {repr(LARGE)[:120]}... ({len(repr(LARGE))} characters), expected 'nothing'",
        ),
        ("/big", {"json": [{"path": "$[19999].id", "equals": 19999}]}, ""),
        (
            "/big",
            {"json": [{"path": "$[0].id"}, {"path": "$..id"}]},
            f"response JSON has more than {document.MAX_SCANNED_VALUES} values, too many for ($..id) (.., *, filters, "
            "slices and sorting visit every value); select the value by its path instead",
        ),
        ("/redos", {"body": {"regex": "^(a+)+$"}}, "body does not match '^(a+)+$'"),
        (
            "/redos",
            {"headers": [{"name": "X-Name", "matches": "^(a|aa)+$"}]},
            f"header X-Name {repr('a' * 5000 + '!')[:120]}... (5003 characters) does not match '^(a|aa)+$'",
        ),
        ("/latin", {"json": [{"path": "$.name", "matches": "^Zo.$"}]}, ""),
    ],
)
async def test_hostile_responses_end_in_a_verdict_with_a_reason(hostile, client, path, expect, reason):
    result = await run_check(check_of(hostile, path, expect), client=client, secrets=secrets)

    assert result.steps[0].reason == reason
    assert not result.internal


async def test_a_header_that_is_not_ascii_once_interpolated_stalls_the_probe(hostile, client):
    check = parse_check(
        {
            "target": {"url": hostile},
            "steps": [
                {"name": "name", "request": {"path": "/latin"}, "capture": {"name": "$.name"}},
                {"name": "echo", "request": {"path": "/latin", "headers": {"X-Name": "${name}"}}},
            ],
        }
    )

    with pytest.raises(InvalidSpec) as err:
        await run_check(check, client=client, secrets=secrets)

    assert err.value.reason == "InvalidHeader"
    assert "not ASCII once interpolated" in err.value.message


async def test_an_unforeseen_exception_in_a_check_is_a_failure_with_a_reason(hostile, client, monkeypatch):
    async def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(document, "find", broken)
    result = await run_check(
        check_of(hostile, "/good-gzip", {"json": [{"path": "$.status"}]}), client=client, secrets=secrets
    )

    assert result.failure.reason == "the check failed inside Pitwall: KeyError: 'a bug'"
    assert result.internal


async def test_the_monitor_gives_a_verdict_and_counts_an_exception_around_the_check(hostile, monkeypatch):
    import pitwall.probes.monitor as monitor_module

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug around the check")

    monkeypatch.setattr(monitor_module, "run_check", broken)
    published = []

    async def publish(job, result, transition):
        published.append((job.health.state, result.failure.reason if result else None))

    monitor = Monitor(Runtime(kube=None, settings=Settings()))
    check = check_of(hostile, "/good-gzip", failureThreshold=1)
    monitor.upsert(
        Job(
            key=("Probe", "team-a", "p"),
            generation=1,
            check=check,
            resolve=lambda: None,
            imposed=lambda: None,
            publish=publish,
        ),
        {},
    )
    before = JOB_ERRORS.labels("check")._value.get()
    try:
        result = await monitor.run(("Probe", "team-a", "p"))
        await monitor.writes_done()
    finally:
        await monitor.stop()

    assert result.failure.reason == "the check failed inside Pitwall (RuntimeError)"
    assert published[0] == ("Down", "the check failed inside Pitwall (RuntimeError)")
    assert JOB_ERRORS.labels("check")._value.get() == before + 1


async def test_a_spec_is_parsed_once_per_generation(monkeypatch):
    import pitwall.probes.monitor as monitor_module

    parsed = []
    real = monitor_module.parse_check
    monkeypatch.setattr(
        monitor_module, "parse_check", lambda spec, **kw: parsed.append(1) or real(spec, **kw)
    )
    monitor = Monitor(Runtime(kube=None, settings=Settings()))
    key = ("Probe", "team-a", "p")
    spec = {"target": {"url": "http://127.0.0.1:1"}, "interval": "10s"}
    bad = {"target": {"url": "http://127.0.0.1:1"}, "interval": "0s"}

    first = await monitor.check_for(key, {"uid": "u1", "generation": 1}, spec)
    for _ in range(5):  # status echoes and other events of the same generation
        assert await monitor.check_for(key, {"uid": "u1", "generation": 1}, spec) is first
    assert len(parsed) == 1
    for _ in range(3):  # a refused generation is refused again without parsing again
        with pytest.raises(InvalidSpec, match="below the minimum"):
            await monitor.check_for(key, {"uid": "u1", "generation": 2}, bad)
    assert len(parsed) == 2
    assert await monitor.check_for(key, {"uid": "u2", "generation": 1}, spec) is not first  # recreated object
    assert len(parsed) == 3


async def test_the_operator_wide_floor_applies_when_set():
    settings = Settings()
    settings.min_probe_interval = 60.0  # h2's --min-probe-interval, when present
    monitor = Monitor(Runtime(kube=None, settings=settings))

    with pytest.raises(InvalidSpec, match="interval 10s is below the minimum of 1m"):
        await monitor.check_for(
            ("Probe", "a", "b"),
            {"uid": "u", "generation": 1},
            {"target": {"url": "http://127.0.0.1:1"}, "interval": "10s"},
        )


async def test_many_bombs_at_once_stay_within_their_caps(hostile, client):
    """Twenty bombs in flight together: each stops at its caps (the process would need 1.3 GiB otherwise)."""
    check = check_of(hostile, "/double-gzip")

    results = await asyncio.gather(*(run_check(check, client=client, secrets=secrets) for _ in range(20)))

    assert {r.failure.reason for r in results} == {
        "response body decodes at more than 200 times its size (a decompression bomb?)"
    }


def test_json_evaluation_stops_at_its_deadline():
    body = json.dumps([{"id": i} for i in range(500)]).encode()
    paths = [
        parse_check(
            {"target": {"url": "http://x"}, "steps": [{"name": "a", "expect": {"json": [{"path": "$..id"}]}}]}
        )
        .steps[0]
        .expect.json[0]
        .compiled
    ] * 3

    with pytest.raises(document.JsonProblem, match="ran out of time"):
        document.find_all(body, paths, deadline=0.0)


@pytest.fixture
async def socks5():
    """A minimal SOCKS5 proxy (no auth, CONNECT) on 127.0.0.1; records where it connected."""
    seen: list[tuple[str, int]] = []

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def handle(reader, writer):
        _, methods = await reader.readexactly(2)
        await reader.readexactly(methods)
        writer.write(b"\x05\x00")
        _, _, _, kind = await reader.readexactly(4)
        if kind == 1:
            host = socket.inet_ntoa(await reader.readexactly(4))
        else:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        port = int.from_bytes(await reader.readexactly(2), "big")
        seen.append((host, port))
        up_reader, up_writer = await asyncio.open_connection(host, port)
        writer.write(b"\x05\x00\x00\x01" + bytes(6))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield f"socks5://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen
    server.close()


async def test_a_socks5_proxy_works(demo, socks5):
    """The CRD admits socks5:// proxies; without socksio every run raised and the probe waited forever."""
    proxy, seen = socks5
    check = parse_check({"target": {"url": demo.url + "/isUp"}, "proxy": proxy})
    client = await make_client(check, secrets=secrets, policy=AddressPolicy())
    async with client:
        result = await run_check(check, client=client, secrets=secrets)

    assert result.ok, result.failure
    assert seen == [("127.0.0.1", int(demo.url.rsplit(":", 1)[1]))]
