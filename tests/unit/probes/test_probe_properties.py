"""Property-based tests (hypothesis) of the engine's promise in issue 14.

For any spec a tenant may write, parsing either yields a check within the floors or refuses it
with ``InvalidSpec``; nothing else escapes. For any response a target may send (any status,
headers, bytes, layered or lying Content-Encoding, JSON of any shape, echoes of the request's
secret), a run ends in a verdict within its run deadline plus a small bound, raises nothing but
``InvalidSpec``, and no reason, URL or captured value shows the secret.

The responses come through ``httpx.MockTransport`` at the engine's transport seam (the client it
is handed): the property is about what the engine does with bytes, and hundreds of examples
need no sockets. What the network adds (streaming, slow targets, real gzip bombs) is covered on
real local servers in ``test_probe_bounds.py``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib

import httpx
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pitwall.errors import InvalidSpec
from pitwall.probes.engine import run_check
from pitwall.probes.spec import MIN_INTERVAL, MIN_TIMEOUT, parse_check

SECRET = "s3cr3t-Value-42\n"  # a trailing newline, as `kubectl create secret --from-file` leaves it
BOUND = 2.0  # seconds past the run deadline (generous: a loaded 2-core machine)

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- specs -----------------------------------------------------------------------------------------
durations = st.one_of(
    st.sampled_from(
        [
            "0s",
            "1ms",
            "50ms",
            "100ms",
            "500ms",
            "1s",
            "2s",
            "10s",
            "1m",
            "1h",
            "1d",
            "1w",
            "1h30m",
            "5 minutes",
            "",
            "-1s",
            "1e400s",
            "NaN",
            "0.05s",
            "99999999999999999999d",
        ]
    ),
    st.from_regex(r"[0-9]{1,4}(ms|s|m|h)", fullmatch=True),
    st.text(max_size=8),
)
regexes = st.one_of(
    st.sampled_from(
        [
            "^(a+)+$",
            "(x+x+)+y",
            "(a|aa)+$",
            "(\\w)\\1",
            "(?<=a)b",
            "[",
            "^ok$",
            ".*",
            "ok",
            "(?i)UP",
            "\\d+",
            "(.*a){20}",
            "^(([a-z])+.)+[A-Z]([a-z])+$",
        ]
    ),
    st.text(max_size=30),
)
jsonpaths = st.one_of(
    st.sampled_from(
        [
            "$",
            "$.a",
            "$.a.b",
            "$[0]",
            "$..a",
            "$..*",
            "$..*..*",
            "$.a[*].b",
            "$[?(@.x > 1)]",
            "$[?(@.name =~ 'a.*')]",
            "$.a.`sub(/(a+)+$/, b)`",
            "$.[bad",
            "a",
            "$.a[-1:]",
            "$['a']",
            "$.a.`len`",
            "$..a..b",
        ]
    ),
    st.text(max_size=20).map(lambda s: "$" + s),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.sampled_from("abxy"), inner, max_size=4)
    ),
    max_leaves=30,
)
header_values = st.one_of(
    st.text(max_size=20),
    st.just("Bearer ${secret:api/key}"),
    st.just("caf\u00e9"),
    st.just("a\r\nInjected: 1"),
)


@st.composite
def specs(draw) -> dict:
    steps = []
    for index in range(draw(st.integers(1, 3))):
        expect: dict = {}
        if draw(st.booleans()):
            expect["status"] = draw(st.lists(st.integers(100, 599), min_size=1, max_size=3))
        if draw(st.booleans()):
            expect["json"] = [
                {
                    "path": draw(jsonpaths),
                    **draw(
                        st.fixed_dictionaries(
                            {}, optional={"equals": json_values, "matches": regexes, "exists": st.booleans()}
                        )
                    ),
                }
                for _ in range(draw(st.integers(1, 2)))
            ]
        if draw(st.booleans()):
            expect["headers"] = [
                {
                    "name": draw(st.sampled_from(["X-Echo", "Content-Type", "X-Missing"])),
                    "matches": draw(regexes),
                }
            ]
        if draw(st.booleans()):
            expect["body"] = draw(
                st.fixed_dictionaries({}, optional={"contains": st.text(max_size=10), "regex": regexes})
            )
        request = {
            "path": "/r",
            "headers": draw(
                st.dictionaries(st.sampled_from(["Authorization", "X-Key", "X y"]), header_values, max_size=2)
            ),
        }
        if draw(st.booleans()):
            request["query"] = {"key": "${secret:api/key}"}
        step = {"name": f"s{index}", "request": request, "expect": expect}
        if draw(st.booleans()):
            step["capture"] = {
                draw(st.sampled_from(["token", "id"])): draw(st.one_of(jsonpaths, st.just("header:X-Echo")))
            }
        steps.append(step)
    spec: dict = {"target": {"url": "http://target.test"}, "steps": steps}
    for field in ("interval", "timeout"):
        if draw(st.booleans()):
            spec[field] = draw(durations)
    return spec


@PROPERTY
@given(specs())
def test_any_spec_parses_within_the_floors_or_is_refused_with_a_reason(spec):
    try:
        check = parse_check(spec)
    except InvalidSpec as exc:
        assert exc.reason and exc.message
        return
    assert check.interval >= MIN_INTERVAL
    assert MIN_TIMEOUT <= check.timeout <= check.interval


# -- responses -------------------------------------------------------------------------------------
def encode(body: bytes, encodings: list[str]) -> bytes:
    for name in encodings:
        if name in ("gzip", "x-gzip"):
            body = gzip.compress(body, 6)
        elif name == "deflate":
            body = zlib.compress(body)
    return body


@st.composite
def responses(draw) -> dict:
    kind = draw(st.sampled_from(["json", "bytes", "deep", "echo", "bomb", "wide"]))
    if kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=300))
    elif kind == "deep":
        depth = draw(st.integers(10, 5000))
        body = b'{"a":' * depth + b"1" + b"}" * depth
    elif kind == "bomb":
        body = b"\0" * draw(st.integers(1, 8)) * (1 << 20)
    elif kind == "wide":
        body = json.dumps(list(range(draw(st.integers(1000, 60000))))).encode()
    else:
        body = b""  # filled with the request's own headers when it arrives
    encodings = draw(st.lists(st.sampled_from(["gzip", "deflate", "identity", "br", "x-gzip"]), max_size=4))
    lie = draw(st.booleans())  # claim the encodings without applying them
    headers = [
        (name.encode(), value.encode("latin-1"))
        for name, value in draw(
            st.dictionaries(
                st.sampled_from(["X-Echo", "Content-Type", "Set-Cookie", "X-Other"]),
                st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=30),
                max_size=3,
            )
        ).items()
    ]
    return {
        "status": draw(st.integers(200, 599)),
        "kind": kind,
        "body": body,
        "encodings": encodings,
        "lie": lie,
        "headers": headers,
        "hang": draw(st.sampled_from([0.0] * 9 + [30.0])),
    }


def transport(response: dict) -> httpx.MockTransport:
    async def handle(request: httpx.Request) -> httpx.Response:
        if response["hang"]:
            await asyncio.sleep(response["hang"])
        body, headers = response["body"], list(response["headers"])
        if response["kind"] == "echo":  # a hostile target reflects what it was sent, secrets included
            sent = {k: v for k, v in request.headers.items()}
            body = json.dumps({"a": sent, "id": str(request.url), "x": [sent]}).encode()
            headers.append(
                (b"X-Echo", request.headers.get("authorization", str(request.url)).encode("latin-1"))
            )
        if response["encodings"]:
            if not response["lie"]:
                body = encode(body, response["encodings"])
            headers.append((b"Content-Encoding", ", ".join(response["encodings"]).encode()))
        return httpx.Response(response["status"], headers=headers, stream=Stream(body))

    return httpx.MockTransport(handle)


class Stream(httpx.AsyncByteStream):
    """The body in 64 KiB chunks, read by the engine as from a socket (``content=`` would make
    httpx read, and decode, the whole body before the engine sees it)."""

    def __init__(self, body: bytes):
        self.body = body

    async def __aiter__(self):
        for start in range(0, len(self.body), 65536):
            yield self.body[start : start + 65536]


async def secrets(name: str, key: str) -> str | None:
    return SECRET if (name, key) == ("api", "key") else None


def shows_secret(text: str) -> bool:
    return SECRET.strip() in text


@PROPERTY
@given(spec=specs(), response=responses(), timeout=st.sampled_from(["100ms", "200ms"]))
def test_any_response_ends_in_a_verdict_in_time_without_showing_a_secret(spec, response, timeout):
    spec = {**spec, "interval": "10s", "timeout": timeout}
    try:
        check = parse_check(spec)
    except InvalidSpec:
        assume(False)
        return

    async def run():
        async with httpx.AsyncClient(transport=transport(response)) as client:
            async with asyncio.timeout(check.run_timeout + BOUND):
                return await run_check(check, client=client, secrets=secrets)

    try:
        result = asyncio.run(run())
    except InvalidSpec as exc:  # the spec's fault (a header not ASCII once interpolated ...): Stalled
        assert exc.reason and not shows_secret(exc.message)
        return
    assert result.steps, "a run always reports at least the step that decided it"
    assert not result.internal, result.failure
    for step in result.steps:
        assert not shows_secret(step.reason), step.reason
        assert not shows_secret(step.url), step.url
        assert not any(shows_secret(v) for v in step.captured.values()), step.captured
    assert result.ok or result.failure.reason
