"""The probes' lean HTTP/1.1 transport against raw local servers that send exactly what a test
scripts: framing, keep-alive, odd and hostile answers, cancellation. (Policy enforcement and
the pool limits are shared with httpcore's client in tests/unit/test_egress.py.)"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from pitwall import egress, transport
from pitwall.egress import Policy
from pitwall.probes.client import make_client
from pitwall.probes.engine import run_check
from pitwall.probes.spec import parse_check

from .conftest import secrets, wait_until


class Scripted:
    """A TCP server on 127.0.0.1: for each request it reads the head (and a Content-Length body),
    records it, and writes ``answer(request_number)``; ``None`` hangs, ``b""`` hangs up (so does
    every request number in ``close_after``, once answered)."""

    def __init__(self, answer, close_after=()):
        self.answer, self.close_after = answer, set(close_after)
        self.requests: list[bytes] = []
        self.accepted = self.open = 0

    async def __aenter__(self):
        async def handle(reader, writer):
            self.accepted += 1
            self.open += 1
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":")[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        ),
                        0,
                    )
                    self.requests.append(head + await reader.readexactly(length))
                    answer = self.answer(len(self.requests))
                    if answer is None:
                        await asyncio.Event().wait()
                    if not answer:
                        break
                    writer.write(answer)
                    await writer.drain()
                    if len(self.requests) in self.close_after:
                        break
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
                pass  # the client went away, or the test is over
            finally:
                self.open -= 1
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()


def ok(body: bytes = b"ok", *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), b"".join(extra), body)


@pytest.fixture
async def http():
    async with transport.client(Policy()) as client:
        yield client


async def test_keep_alive_reuses_one_connection(http):
    async with Scripted(lambda n: ok(b"%d" % n)) as server:
        texts = [(await http.get(server.url + "/x")).text for _ in range(5)]
    assert texts == ["1", "2", "3", "4", "5"]
    assert server.accepted == 1


async def test_the_request_is_what_httpx_built(http):
    async with Scripted(lambda n: ok()) as server:
        await http.post(server.url + "/p?q=1", json={"a": 1}, headers={"X-Correlation-ID": "c-1"})
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /p?q=1 HTTP/1.1"
    assert b"X-Correlation-ID: c-1" in lines and b"Content-Length: 7" in lines
    assert any(line.lower().startswith(b"host: 127.0.0.1:") for line in lines)
    assert body == b'{"a":1}'


async def test_a_header_value_with_a_line_break_is_refused_before_any_dial(http):
    async with Scripted(lambda n: ok()) as server:
        with pytest.raises(httpx.LocalProtocolError, match="Illegal header value"):
            await http.get(server.url, headers={"X-Api-Key": "t0ken\r\nX-Injected: 1"})
    assert server.accepted == 0


async def test_chunked_and_until_close_bodies(http):
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    until_close = b"HTTP/1.1 200 OK\r\n\r\nno length, ends with the connection"
    async with Scripted(lambda n: chunked) as server:
        assert (await http.get(server.url)).text == "abcde"
        assert (await http.get(server.url)).text == "abcde"
        assert server.accepted == 1
    async with Scripted(lambda n: until_close if n == 1 else ok(), close_after={1}) as server:
        assert (await http.get(server.url)).text == "no length, ends with the connection"
        assert (await http.get(server.url)).status_code == 200
        assert server.accepted == 2  # a body ended by the close cannot share the connection


async def test_informational_responses_are_skipped_and_head_has_no_body(http):
    answers = {1: b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final"), 2: ok(b"never read")}
    async with Scripted(answers.get) as server:
        assert (await http.get(server.url)).text == "final"
        response = await http.head(server.url)
    assert (response.status_code, response.content) == (200, b"")


async def test_a_body_cut_short_or_stalled(http):
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"
    async with Scripted(lambda n: cut if n == 1 else ok(), close_after={1}) as server:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending complete message body"):
            await http.get(server.url)
        assert (await http.get(server.url)).text == "ok"  # on a new connection
        assert server.accepted == 2
    async with Scripted(lambda n: cut) as server:  # ... and then nothing more
        with pytest.raises(httpx.ReadTimeout):
            await http.get(server.url, timeout=0.3)


async def test_garbage_and_oversized_heads_are_protocol_errors(http):
    async with Scripted(lambda n: b"SMTP ready\r\n\r\n") as server:
        with pytest.raises(httpx.RemoteProtocolError, match="invalid HTTP response"):
            await http.get(server.url)
    endless = b"HTTP/1.1 200 OK\r\n" + (b"X-Pad: " + b"a" * 1000 + b"\r\n") * 200  # no blank line
    async with Scripted(lambda n: endless) as server:
        with pytest.raises(httpx.RemoteProtocolError, match="response head larger than 100 KiB"):
            await http.get(server.url)


async def test_a_server_that_hangs_up_instead_of_answering(http):
    async with Scripted(lambda n: b"") as server:
        with pytest.raises(httpx.RemoteProtocolError, match="Server disconnected"):
            await http.get(server.url)


async def test_idle_connections_past_their_keep_alive_are_closed(monkeypatch):
    monkeypatch.setattr(transport, "SWEEP", 0.0)  # sweep on every release
    lean = transport.LeanTransport(Policy(), keepalive=0.05)
    async with (
        egress.Client(transport=lean) as http,
        Scripted(lambda n: ok()) as a,
        Scripted(lambda n: ok()) as b,
    ):
        await http.get(a.url)
        assert a.open == 1  # kept alive
        await asyncio.sleep(0.1)
        await http.get(b.url)  # its release sweeps a's expired connection
        await wait_until(lambda: a.open == 0)
        assert b.open == 1


async def test_a_cancelled_request_frees_its_slot(http):
    async with transport.client(Policy(), max_connections=1) as one:
        async with Scripted(lambda n: None if n == 1 else ok(b"second")) as server:
            hung = asyncio.ensure_future(one.get(server.url))
            await asyncio.sleep(0.1)
            hung.cancel()
            with pytest.raises(asyncio.CancelledError):
                await hung
            response = await one.get(server.url, timeout=2)
    assert response.text == "second"


async def test_a_large_body_streams_with_reading_paused_in_between(http):
    body = bytes(range(256)) * 8192  # 2 MiB: past the read buffer's high-water mark
    async with Scripted(lambda n: ok(body)) as server:
        async with http.stream("GET", server.url) as response:
            received = [len(chunk) async for chunk in response.aiter_raw()]
    assert sum(received) == len(body)


async def test_the_engine_runs_on_it_for_checks_without_a_proxy():
    check = parse_check({"target": {"url": "http://127.0.0.1:1/"}})
    proxied = parse_check({"target": {"url": "http://127.0.0.1:1/"}, "proxy": "http://127.0.0.1:3128"})
    async with (
        await make_client(check, secrets=secrets, policy=Policy()) as lean,
        await make_client(proxied, secrets=secrets, policy=Policy()) as other,
    ):
        assert isinstance(lean._transport, transport.LeanTransport)
        assert not isinstance(other._transport, transport.LeanTransport)
        async with Scripted(lambda n: ok(b'{"status": "UP"}')) as server:
            result = await run_check(
                parse_check({"target": {"url": server.url + "/isUp"}}), client=lean, secrets=secrets
            )
    assert result.ok, result.failure
    assert b"X-Correlation-ID: " + result.steps[0].correlation_id.encode() in server.requests[0]
