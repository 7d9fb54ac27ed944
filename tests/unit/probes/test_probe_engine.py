"""The engine against real local HTTP servers: flows, expectations, correlation, secrets, timeouts."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from aiohttp import web

from pitwall.errors import InvalidSpec
from pitwall.probes.engine import MASK, run_check
from pitwall.probes.spec import parse_check

from .conftest import SECRETS, secrets

OAUTH_STEPS = [
    {
        "name": "token",
        "request": {
            "method": "POST",
            "path": "/oauth/token",
            "form": {"grant_type": "password", "username": "homer", "password": "${secret:homer/password}"},
        },
        "expect": {"status": [200], "json": [{"path": "$.token_type", "equals": "Bearer"}]},
        "capture": {"token": "$.access_token"},
    },
    {
        "name": "profile",
        "request": {"path": "/accounts/me", "headers": {"Authorization": "Bearer ${token}"}},
        "expect": {"json": [{"path": "$.name", "equals": "Homer"}]},
        "capture": {"accountId": "$.id"},
    },
    {
        "name": "balance",
        "request": {
            "path": "/accounts/${accountId}/balance",
            "headers": {"Authorization": "Bearer ${token}"},
        },
        "expect": {"json": [{"path": "$.currency", "equals": "ZAR"}, {"path": "$.amount", "exists": True}]},
    },
]


def probe(url: str, **spec) -> dict:
    return {"target": {"url": url}, **spec}


async def test_healthy_is_up(demo, client):
    result = await run_check(parse_check(probe(demo.url + "/isUp")), client=client, secrets=secrets)

    assert result.ok
    [step] = result.steps
    assert (step.name, step.method, step.url, step.status) == ("check", "GET", demo.url + "/isUp", 200)
    assert result.last_run()["result"] == "Success"
    assert result.last_run()["correlationId"] == step.correlation_id
    assert result.last_failure() is None


async def test_oauth_flow_passes_and_captures(demo, client):
    check = parse_check(probe(demo.url, steps=OAUTH_STEPS))

    result = await run_check(check, client=client, secrets=secrets)

    assert result.ok, result.failure
    assert [s.name for s in result.steps] == ["token", "profile", "balance"]
    assert [s.status for s in result.steps] == [200, 200, 200]
    assert result.steps[0].captured == {"token": MASK}  # a bearer token is a credential
    assert result.steps[1].captured == {"accountId": "acc-42"}
    assert result.steps[2].url == demo.url + "/accounts/acc-42/balance"


async def test_token_401_fails_at_token_step(demo, client):
    demo.state.down["token"] = 401
    check = parse_check(probe(demo.url, steps=OAUTH_STEPS))

    result = await run_check(check, client=client, secrets=secrets)

    assert not result.ok
    assert [s.name for s in result.steps] == ["token"]  # the flow stopped there
    failure = result.last_failure()
    assert failure["step"] == "token"
    assert failure["reason"] == "status 401, expected 200"
    assert failure["httpStatus"] == 401
    assert failure["correlationId"] == result.steps[0].correlation_id
    assert result.last_run()["result"] == "Failure"


async def test_every_request_has_fresh_correlation_headers(demo, client):
    check = parse_check(probe(demo.url, steps=OAUTH_STEPS))

    runs = [await run_check(check, client=client, secrets=secrets) for _ in range(2)]

    seen = [r for r in demo.state.requests]
    ids = [r["correlationId"] for r in seen]
    assert len(ids) == 6 and len(set(ids)) == 6
    assert all(uuid.UUID(i).version == 4 for i in ids)
    assert ids == [s.correlation_id for run in runs for s in run.steps]  # what the API logs is in status
    parents = [re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01", r["traceparent"]) for r in seen]
    assert all(parents)
    trace_ids = [p.group(1) for p in parents]
    assert trace_ids[:3] == [runs[0].trace_id] * 3 and trace_ids[3:] == [runs[1].trace_id] * 3
    assert len({p.group(2) for p in parents}) == 6  # a new span per request


async def test_correlation_headers_are_ours_and_other_defaults_yield_to_the_spec(serve, client):
    seen = []

    async def echo(request):
        seen.append(request.headers)
        return web.json_response({})

    url = await serve(_app(web.get("/echo", echo)))
    headers = {"x-correlation-id": "mine", "TRACEPARENT": "00-x-y-01", "User-Agent": "team-bot/2"}
    check = parse_check(
        probe(url, steps=[{"name": "echo", "request": {"path": "/echo", "headers": headers}}])
    )

    result = await run_check(check, client=client, secrets=secrets)

    [sent] = seen
    assert sent.getall("X-Correlation-ID") == [result.steps[0].correlation_id]
    assert sent.getall("traceparent")[0].startswith(f"00-{result.trace_id}-")
    assert (sent.getall("User-Agent"), sent["Accept-Encoding"]) == (["team-bot/2"], "gzip, deflate")


async def test_secrets_are_interpolated_and_masked(serve, client):
    received = {}

    async def echo(request):
        received.update(query=dict(request.query), header=request.headers.get("X-Api-Key"))
        return web.json_response({"echo": request.query.get("k"), "session": "sess-1"})

    url = await serve(_app(web.get("/echo", echo)))
    check = parse_check(
        probe(
            url,
            steps=[
                {
                    "name": "echo",
                    "request": {
                        "path": "/echo",
                        "query": {"k": "${secret:api/key}"},
                        "headers": {"X-Api-Key": "${secret:api/key}"},
                    },
                    "capture": {"echoed": "$.echo", "sessionId": "$.session"},
                    "expect": {"json": [{"path": "$.echo", "equals": "something else"}]},
                },
            ],
        )
    )

    result = await run_check(check, client=client, secrets=secrets)

    secret = SECRETS[("api", "key")]
    assert received == {"query": {"k": secret}, "header": secret}  # the target got the real value
    [step] = result.steps
    assert secret not in repr(result)
    assert step.url == f"{url}/echo?k={MASK}"
    assert step.reason == f"$.echo is '{MASK}', expected 'something else'"


async def test_secret_derived_and_sensitive_captures_are_masked(serve, client):
    async def echo(request):
        return web.json_response({"echo": request.query.get("k"), "session": "sess-1", "plain": "x"})

    url = await serve(_app(web.get("/echo", echo)))
    check = parse_check(
        probe(
            url,
            steps=[
                {
                    "name": "echo",
                    "request": {"path": "/echo", "query": {"k": "${secret:api/key}"}},
                    "capture": {"echoed": "$.echo", "sessionId": "$.session", "plain": "$.plain"},
                },
                {"name": "again", "request": {"path": "/echo", "query": {"sid": "${sessionId}"}}},
            ],
        )
    )

    result = await run_check(check, client=client, secrets=secrets)

    assert result.ok
    assert result.steps[0].captured == {"echoed": MASK, "sessionId": MASK, "plain": "x"}
    assert result.steps[1].url == f"{url}/echo?sid={MASK}"


async def test_secrets_are_masked_however_the_url_encodes_them(serve, client):
    async def anything(request):
        return web.json_response({})

    url = await serve(_app(web.get("/{tail:.*}", anything)))
    check = parse_check(
        probe(
            url,
            steps=[
                {
                    "name": "odd",
                    "request": {"path": "/a/${secret:odd/value}", "query": {"q": "${secret:odd/value}"}},
                }
            ],
        )
    )

    result = await run_check(check, client=client, secrets=secrets)

    assert result.steps[0].url == f"{url}/a/{MASK}?q={MASK}"


async def test_cookies_do_not_leak_between_probes(serve, client):
    """One client serves many probes: a session cookie one probe got must never reach another's
    requests (httpx would replay its jar on redirects)."""

    async def login(request):
        response = web.json_response({})
        response.set_cookie("session", "abc")
        return response

    async def bounce(request):
        raise web.HTTPFound("/whoami")

    async def whoami(request):
        return web.json_response({"cookie": request.headers.get("Cookie", "")})

    url = await serve(_app(web.get("/login", login), web.get("/bounce", bounce), web.get("/whoami", whoami)))
    other = parse_check(
        probe(
            url + "/bounce",
            followRedirects=True,
            steps=[{"name": "who", "expect": {"json": [{"path": "$.cookie", "equals": ""}]}}],
        )
    )

    await run_check(parse_check(probe(url + "/login")), client=client, secrets=secrets)
    result = await run_check(other, client=client, secrets=secrets)

    assert result.ok, result.failure


async def test_missing_secret_is_invalid_spec_not_a_failure(demo, client):
    check = parse_check(
        probe(
            demo.url,
            steps=[
                {"name": "token", "request": {"path": "/isUp", "headers": {"X-Key": "${secret:nope/key}"}}}
            ],
        )
    )

    with pytest.raises(InvalidSpec) as err:
        await run_check(check, client=client, secrets=secrets)

    assert err.value.reason == "SecretNotFound"
    assert "nope" in err.value.message


async def test_hanging_target_is_cut_at_timeout(demo, client):
    demo.state.down["isUp"] = 0  # HANG
    check = parse_check(probe(demo.url + "/isUp", timeout="200ms"))

    result = await run_check(check, client=client, secrets=secrets)

    [step] = result.steps
    assert not result.ok
    assert step.reason == "timed out after 200ms"
    assert step.status is None


async def test_run_is_cut_at_its_deadline(demo, client):
    async def stuck_secrets(name, key):
        await asyncio.Event().wait()

    check = parse_check(
        probe(
            demo.url,
            timeout="100ms",
            steps=[{"name": "slow-secret", "request": {"path": "/isUp", "headers": {"X": "${secret:a/b}"}}}],
        )
    )

    result = await run_check(check, client=client, secrets=stuck_secrets)

    assert result.failure.name == "slow-secret"
    assert result.failure.reason.startswith("run exceeded")


async def test_connection_refused_is_a_failure(client):
    check = parse_check(probe("http://127.0.0.1:9/isUp"))

    result = await run_check(check, client=client, secrets=secrets)

    assert not result.ok
    assert result.failure.reason.startswith("cannot connect to 127.0.0.1")


@pytest.mark.parametrize(
    ("expect", "reason"),
    [
        ({"status": [200, 204]}, ""),
        ({"status": [204]}, "status 200, expected 204"),
        ({"headers": [{"name": "X-Version", "matches": r"^2\."}]}, ""),
        (
            {"headers": [{"name": "X-Version", "matches": r"^3\."}]},
            r"header X-Version '2.3.0' does not match '^3\\.'",
        ),
        ({"headers": [{"name": "X-Missing"}]}, "header X-Missing is missing"),
        (
            {"headers": [{"name": "X-Version", "present": False}]},
            "header X-Version is present, expected absent",
        ),
        ({"json": [{"path": "$.count", "equals": "3"}]}, ""),  # YAML strings compare with JSON numbers
        ({"json": [{"path": "$.count", "equals": 4}]}, "$.count is 3, expected 4"),
        ({"json": [{"path": "$.items[*].id", "matches": "^a-"}]}, ""),
        ({"json": [{"path": "$.name", "matches": "^b"}]}, "$.name is 'alpha', does not match '^b'"),
        ({"json": [{"path": "$.nope"}]}, "$.nope does not exist"),
        ({"json": [{"path": "$.nope", "exists": False}]}, ""),
        ({"json": [{"path": "$.name", "exists": False}]}, "$.name exists, expected absent"),
        ({"json": [{"path": "$.flag", "equals": True}]}, ""),
        ({"body": {"contains": '"alpha"'}}, ""),
        ({"body": {"contains": "omega"}}, "body does not contain 'omega'"),
        ({"body": {"regex": r"count\W+3"}}, ""),
        ({"body": {"regex": "^x"}}, "body does not match '^x'"),
    ],
)
async def test_expectations(serve, client, expect, reason):
    async def item(request):
        return web.json_response(
            {"name": "alpha", "count": 3, "flag": True, "items": [{"id": "a-1"}]},
            headers={"X-Version": "2.3.0"},
        )

    url = await serve(_app(web.get("/item", item)))
    check = parse_check(probe(url, steps=[{"name": "item", "request": {"path": "/item"}, "expect": expect}]))

    result = await run_check(check, client=client, secrets=secrets)

    assert result.steps[0].reason == reason


async def test_max_latency(serve, client):
    async def slow(request):
        await asyncio.sleep(0.05)
        return web.json_response({})

    url = await serve(_app(web.get("/slow", slow)))
    check = parse_check(
        probe(url, steps=[{"name": "slow", "request": {"path": "/slow"}, "expect": {"maxLatency": "10ms"}}])
    )

    result = await run_check(check, client=client, secrets=secrets)

    assert re.fullmatch(r"latency \d+ms, expected at most 10ms", result.failure.reason)
    assert result.failure.status == 200


async def test_not_json_and_header_capture(serve, client):
    async def text(request):
        return web.Response(text="plain", headers={"X-Request-Token": "abc", "X-Region": "za-1"})

    url = await serve(_app(web.get("/text", text)))
    ok = parse_check(
        probe(
            url,
            steps=[{"name": "text", "request": {"path": "/text"}, "capture": {"region": "header:x-region"}}],
        )
    )
    bad = parse_check(
        probe(url, steps=[{"name": "text", "request": {"path": "/text"}, "capture": {"id": "$.id"}}])
    )
    missing = parse_check(
        probe(url, steps=[{"name": "text", "request": {"path": "/text"}, "capture": {"id": "header:X-Id"}}])
    )

    assert (await run_check(ok, client=client, secrets=secrets)).steps[0].captured == {"region": "za-1"}
    assert (
        await run_check(bad, client=client, secrets=secrets)
    ).failure.reason == "capture id: response is not JSON"
    assert (
        await run_check(missing, client=client, secrets=secrets)
    ).failure.reason == "capture id: header X-Id is missing"


async def test_json_body_keeps_captured_types(serve, client):
    got = {}

    async def count(request):
        return web.json_response({"n": 42})

    async def submit(request):
        got.update(await request.json())
        return web.json_response({"ok": True})

    url = await serve(_app(web.get("/count", count), web.post("/submit", submit)))
    check = parse_check(
        probe(
            url,
            steps=[
                {"name": "count", "request": {"path": "/count"}, "capture": {"n": "$.n"}},
                {
                    "name": "submit",
                    "request": {
                        "method": "POST",
                        "path": "/submit",
                        "json": {"n": "${n}", "label": "n=${n}", "list": ["${n}"]},
                    },
                },
            ],
        )
    )

    assert (await run_check(check, client=client, secrets=secrets)).ok
    assert got == {"n": 42, "label": "n=42", "list": [42]}


async def test_redirects_are_off_by_default(serve, client):
    async def moved(request):
        raise web.HTTPFound("/isUp")

    async def is_up(request):
        return web.json_response({"status": "up"})

    url = await serve(_app(web.get("/old", moved), web.get("/isUp", is_up)))

    plain = await run_check(parse_check(probe(url + "/old")), client=client, secrets=secrets)
    follow = await run_check(
        parse_check(probe(url + "/old", followRedirects=True)), client=client, secrets=secrets
    )

    assert plain.failure.reason == "status 302, expected 200"
    assert follow.ok


async def test_base_url_resolves_a_product_target(demo, client):
    check = parse_check(
        {
            "target": {"apiProduct": {"name": "payments", "version": "v2"}},
            "steps": [{"name": "up", "request": {"path": "/isUp"}}],
        }
    )

    with pytest.raises(InvalidSpec) as err:
        await run_check(check, client=client, secrets=secrets)
    result = await run_check(check, client=client, secrets=secrets, base_url=demo.url)

    assert err.value.reason == "NoTarget"
    assert result.ok and result.steps[0].url == demo.url + "/isUp"


async def test_userinfo_and_sensitive_query_are_masked_in_the_log(demo, client):
    check = parse_check(probe(demo.url.replace("http://", "http://bot:pw@") + "/isUp?access_token=abc&x=1"))

    result = await run_check(check, client=client, secrets=secrets)

    assert (
        result.steps[0].url
        == demo.url.replace("http://", f"http://bot:{MASK}@") + f"/isUp?access_token={MASK}&x=1"
    )


def _app(*routes) -> web.Application:
    app = web.Application()
    app.add_routes(routes)
    return app


async def test_a_check_leaves_no_garbage_for_the_collector(demo, client):
    # httpx binds every response and its stream in a reference cycle; the engine breaks it once
    # the response is read (egress.unbind), so 500 checks a second leave nothing for the
    # garbage collector's young collections to walk (issue 18).
    import gc

    check = parse_check(probe(demo.url + "/isUp"))
    await run_check(check, client=client, secrets=secrets)  # connections, caches
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(20):
            assert (await run_check(check, client=client, secrets=secrets)).ok
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []
