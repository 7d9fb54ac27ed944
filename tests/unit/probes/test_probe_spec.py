"""Spec parsing: defaults, and what only the operator can refuse (the CRD cannot)."""

from __future__ import annotations

import pytest

from pitwall.api.backend import Health
from pitwall.api.base import parse
from pitwall.errors import InvalidSpec
from pitwall.probes.spec import RUN_SLACK, SecretRef, parse_check


def test_defaults_make_one_get_expecting_200():
    check = parse_check({"target": {"url": "https://api.example.com/payments/v2"}})

    assert check.target == "https://api.example.com/payments/v2"
    assert (check.interval, check.timeout, check.failure_threshold, check.success_threshold) == (
        30.0,
        5.0,
        3,
        1,
    )
    assert not check.follow_redirects and not check.paused
    [step] = check.steps
    assert (step.name, step.request.method, step.expect.status) == ("check", "GET", (200,))
    assert check.run_timeout == 5.0 + RUN_SLACK


def test_backend_health_block_has_the_same_shape():
    health = {
        "url": "https://cb.internal/health",
        "interval": "1m",
        "timeout": "2s",
        "failureThreshold": 5,
        "tls": {"caSecretRef": {"name": "cb-ca", "key": "ca.crt"}},
    }
    check = parse_check(parse(Health, health, "spec.health"))

    assert (check.target, check.interval, check.timeout, check.failure_threshold) == (
        "https://cb.internal/health",
        60.0,
        2.0,
        5,
    )
    assert check.tls.ca == SecretRef("cb-ca", "ca.crt")


def test_base_url_is_the_resolved_target():
    spec = {
        "target": {"apiProduct": {"name": "payments", "version": "v2"}},
        "steps": [{"name": "up", "request": {"path": "/isUp"}}],
    }

    assert parse_check(spec).target is None  # valid: resolved later
    assert parse_check(spec, base_url="http://10.0.0.7:8080").target == "http://10.0.0.7:8080"


def test_secret_names_cover_templates_and_tls():
    check = parse_check(
        {
            "target": {"url": "https://x.example"},
            "tls": {"clientCertSecretRef": {"name": "client-tls"}},
            "steps": [
                {
                    "name": "a",
                    "request": {
                        "form": {"p": "${secret:homer/password}"},
                        "headers": {"K": "${secret:api/key}"},
                    },
                }
            ],
        }
    )

    assert check.secret_names == {"homer", "api", "client-tls"}


@pytest.mark.parametrize(
    ("spec", "reason", "fragment"),
    [
        ({"steps": [{"name": "a", "capture": {"t": "$.[bad"}}]}, "InvalidJSONPath", "capture 't'"),
        (
            {"steps": [{"name": "a", "expect": {"json": [{"path": "$..[?(", "exists": True}]}}]},
            "InvalidJSONPath",
            "$..[?(",
        ),
        (
            {"steps": [{"name": "a", "expect": {"json": [{"path": "token_type"}]}}]},
            "InvalidSpec",
            "spec.steps[0].expect.json[0].path: String should match pattern '^\\$'",
        ),
        (
            {"steps": [{"name": "a", "capture": {"t": "body:x"}}]},
            "InvalidSpec",
            "spec.steps[0].capture.t: String should match pattern",
        ),
        ({"steps": [{"name": "a", "capture": {"t": "header:  "}}]}, "InvalidCapture", "header:Name"),
        ({"steps": [{"name": "a", "expect": {"body": {"regex": "("}}}]}, "InvalidRegex", "'('"),
        (
            {"steps": [{"name": "a", "expect": {"headers": [{"name": "X", "matches": "[z-a]"}]}}]},
            "InvalidRegex",
            "header X",
        ),
        (
            {"steps": [{"name": "a", "request": {"headers": {"A": "Bearer ${token}"}}}]},
            "UnknownVariable",
            "step 'a' uses ${token} but no earlier step captures 'token'",
        ),
        (
            {"steps": [{"name": "a", "request": {"path": "/x/${id}"}, "capture": {"id": "$.id"}}]},
            "UnknownVariable",
            "${id}",
        ),  # a step cannot use what it captures itself
        (
            {"steps": [{"name": "a", "request": {"body": "${secret:no-key}"}}]},
            "InvalidReference",
            "${secret:no-key}",
        ),
        (
            {"steps": [{"name": "a"}, {"name": "a"}]},
            "InvalidStep",
            "step names must be unique ('a' is used twice)",
        ),
        (
            {"steps": [{"name": "a", "request": {"url": "https://x", "path": "/y"}}]},
            "InvalidStep",
            "not both",
        ),
        ({"steps": [{"name": "a", "request": {"json": {}, "form": {}}}]}, "InvalidStep", "only one of"),
        ({"steps": [{"name": "a", "request": {"url": "ftp://x/"}}]}, "InvalidURL", "ftp://x/"),
        ({"steps": [{"name": "a", "expect": {"maxLatency": "fast"}}]}, "InvalidDuration", "maxLatency"),
        ({"interval": "soon"}, "InvalidDuration", "interval"),
        # What the schema refuses at admission, the model refuses too, naming the field (a spec
        # stored before a bound existed).
        (
            {"steps": [{"name": "a", "request": {"method": "FETCH"}}]},
            "InvalidSpec",
            "spec.steps[0].request.method: Input should be 'GET', 'POST', 'PUT', 'PATCH', 'DELETE', "
            "'HEAD' or 'OPTIONS'",
        ),
        (
            {"steps": [{"name": "a", "expect": {"status": [200, 700]}}]},
            "InvalidSpec",
            "spec.steps[0].expect.status[1]: Input should be less than or equal to 599",
        ),
        (
            {"steps": [{"name": ""}]},
            "InvalidSpec",
            "spec.steps[0].name: String should have at least 1 character",
        ),
        (
            {"failureThreshold": 0},
            "InvalidSpec",
            "spec.failureThreshold: Input should be greater than or equal to 1",
        ),
    ],
)
def test_refused_with_a_reason(spec, reason, fragment):
    with pytest.raises(InvalidSpec) as err:
        parse_check({"target": {"url": "https://api.example.com"}, **spec})

    assert err.value.reason == reason
    assert fragment in err.value.message


def test_variables_flow_forward_between_steps():
    check = parse_check(
        {
            "target": {"url": "https://api.example.com"},
            "steps": [
                {"name": "token", "capture": {"token": "$.access_token", "region": "header:X-Region"}},
                {
                    "name": "me",
                    "request": {
                        "path": "/me",
                        "headers": {"Authorization": "Bearer ${token}"},
                        "query": {"r": "${region}"},
                    },
                },
            ],
        }
    )

    assert [c.var for c in check.steps[0].capture] == ["token", "region"]
    assert check.steps[0].capture[1].header == "X-Region"


def test_no_target_and_no_product_is_refused():
    with pytest.raises(InvalidSpec) as err:
        parse_check({"target": {}, "steps": [{"name": "a", "request": {"path": "/x"}}]})
    assert err.value.reason == "NoTarget"

    with pytest.raises(InvalidSpec) as err:
        parse_check({"steps": [{"name": "a", "request": {"path": "/x"}}]})
    assert (err.value.reason, err.value.message) == ("InvalidSpec", "spec.target: Field required")


# -- issue 14: what a check may cost is bounded when the spec is parsed -------------------------
@pytest.mark.parametrize(
    ("spec", "reason", "fragment"),
    [
        ({"interval": "0s"}, "IntervalTooShort", "interval 0ms is below the minimum of 1s"),
        ({"interval": "1ms"}, "IntervalTooShort", "below the minimum"),
        (
            {"interval": "10s", "timeout": "0s"},
            "TimeoutTooShort",
            "timeout 0ms is below the minimum of 100ms",
        ),
        ({"interval": "10s", "timeout": "20s"}, "TimeoutAboveInterval", "longer than the interval 10s"),
        (
            {"interval": "9" * 400 + "s"},
            "InvalidSpec",
            "spec.interval: String should have at most 32 characters",
        ),
        ({"interval": 1e400}, "InvalidSpec", "spec.interval: Input should be a valid string"),
        ({"steps": [{"name": "a", "expect": {"body": {"regex": "(a)\\1"}}}]}, "InvalidRegex", "RE2"),
        ({"steps": [{"name": "a", "expect": {"body": {"regex": "(?<=a)b"}}}]}, "InvalidRegex", "lookaround"),
        (
            {"steps": [{"name": "a", "expect": {"headers": [{"name": "X", "matches": "(?!x)"}]}}]},
            "InvalidRegex",
            "header X",
        ),
        (
            {"steps": [{"name": "a", "expect": {"json": [{"path": "$.a", "matches": "(\\w)\\1"}]}}]},
            "InvalidRegex",
            "$.a",
        ),
        (
            {"steps": [{"name": "a", "expect": {"json": [{"path": "$..*..*"}]}}]},
            "InvalidJSONPath",
            "at most one recursive descent",
        ),
        (
            {"steps": [{"name": "a", "expect": {"json": [{"path": "$[?(@.name =~ '(a+)+$')]"}]}}]},
            "InvalidJSONPath",
            "use `matches` (RE2)",
        ),
        (
            {"steps": [{"name": "a", "capture": {"x": "$.a.`sub(/(a+)+$/, b)`"}}]},
            "InvalidJSONPath",
            "=~, sub",
        ),
        (
            {"steps": [{"name": "a", "request": {"headers": {"X-Name": "caf\u00e9"}}}]},
            "InvalidHeader",
            "printable ASCII",
        ),
        (
            {"steps": [{"name": "a", "request": {"headers": {"X-Name": "a\r\nInjected: 1"}}}]},
            "InvalidHeader",
            "no line breaks",
        ),
        (
            {"steps": [{"name": "a", "request": {"headers": {"Bad Name": "x"}}}]},
            "InvalidHeader",
            "header name",
        ),
        (
            {"steps": [{"name": "a", "expect": {"headers": [{"matches": "x"}]}}]},
            "InvalidSpec",
            "spec.steps[0].expect.headers[0].name: Field required",
        ),
        (
            {
                "steps": [
                    {"name": f"s{i}", "expect": {"json": [{"path": "$." + "a" * 500}] * 2}} for i in range(5)
                ]
            },
            "SpecTooCostly",
            "the check's JSONPaths total 5020 characters, more than 4096",
        ),
    ],
)
def test_costly_or_broken_specs_are_refused_with_a_reason(spec, reason, fragment):
    with pytest.raises(InvalidSpec) as err:
        parse_check({"target": {"url": "https://api.example.com"}, **spec})

    assert err.value.reason == reason
    assert fragment in err.value.message


def test_the_operator_may_raise_the_interval_floor():
    spec = {"target": {"url": "https://api.example.com"}, "interval": "5s", "timeout": "1s"}
    assert parse_check(spec).interval == 5.0

    with pytest.raises(InvalidSpec) as err:
        parse_check(spec, min_interval=10.0)

    assert err.value.message == "interval 5s is below the minimum of 10s"


def test_an_unset_timeout_fits_a_short_interval():
    assert parse_check({"target": {"url": "https://api.example.com"}, "interval": "2s"}).timeout == 2.0
    assert parse_check({"target": {"url": "https://api.example.com"}}).timeout == 5.0


def test_user_regexes_run_on_re2_in_linear_time():
    check = parse_check(
        {
            "target": {"url": "https://api.example.com"},
            "steps": [
                {
                    "name": "a",
                    "expect": {
                        "body": {"regex": "(a+)+$"},
                        "headers": [{"name": "X", "matches": "(x+x+)+y"}],
                        "json": [{"path": "$.a", "matches": "^(\\d+)*$"}],
                    },
                }
            ],
        }
    )
    expect = check.steps[0].expect

    # Catastrophic on a backtracking engine; RE2 answers at once (a hang here would time the test out).
    assert expect.body_regex.search("a" * 5000 + "b") is None
    assert expect.headers[0].matches.search("x" * 5000) is None
    assert expect.json[0].matches.search("1" * 5000 + "x") is None
    assert expect.body_regex.search("baaa")


# -- issue 15: parsed through the API model ---------------------------------------------------------
def test_an_explicit_equals_null_is_an_expectation_a_missing_equals_is_none():
    def rule(**fields):
        check = parse_check(
            {
                "target": {"url": "https://api.example.com"},
                "steps": [{"name": "a", "expect": {"json": [{"path": "$.gone", **fields}]}}],
            }
        )
        return check.steps[0].expect.json[0]

    null, missing = rule(equals=None), rule()

    assert (null.has_equals, null.equals) == (True, None)
    assert (missing.has_equals, missing.equals) == (False, None)
    assert null.exists and missing.exists  # the model leaves exists unset: the path must exist

    # A Backend's health block, validated with its BackendSpec, keeps the difference too.
    from pitwall.api.backend import BackendSpec

    steps = [{"name": "a", "expect": {"json": [{"path": "$.gone", "equals": None}, {"path": "$.here"}]}}]
    backend = parse(BackendSpec, {"health": {"url": "https://cb.internal", "steps": steps}})
    assert backend.health is not None
    rules = parse_check(backend.health).steps[0].expect.json
    assert [(r.path, r.has_equals) for r in rules] == [("$.gone", True), ("$.here", False)]


async def test_equals_null_passes_on_a_json_null_only():
    import httpx

    from pitwall.probes.engine import run_check

    class Body(httpx.AsyncByteStream):  # read by the engine as from a socket
        async def __aiter__(self):
            yield b'{"gone": null, "count": 3}'

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "application/json"}, stream=Body())

    async def no_secrets(name: str, key: str) -> None:
        return None

    async def reason(json_rule: dict) -> str:
        check = parse_check(
            {
                "target": {"url": "http://api.example.test"},
                "steps": [{"name": "a", "expect": {"json": [json_rule]}}],
            }
        )
        async with httpx.AsyncClient(transport=httpx.MockTransport(reply)) as client:
            result = await run_check(check, client=client, secrets=no_secrets)
        return result.steps[0].reason

    assert await reason({"path": "$.gone", "equals": None}) == ""
    assert await reason({"path": "$.count", "equals": None}) == "$.count is 3, expected None"
    assert await reason({"path": "$.count"}) == ""  # no equals: the path must exist, nothing more


def test_defaults_inside_steps_are_the_models():
    from pitwall.api import check as model

    check = parse_check(
        {"target": {"url": "https://api.example.com"}, "steps": [{"name": "a"}, {"name": "b", "request": {}}]}
    )

    for step in check.steps:
        assert step.request.method == model.Request().method == "GET"
        assert step.expect.status == tuple(model.Expect().status) == (200,)
        assert step.request.headers == {} and step.request.form is None and step.capture == ()
    assert check.tls.insecure_skip_verify is model.Tls().insecure_skip_verify is False
    assert check.follow_redirects is model.Check().follow_redirects is False


def test_unknown_fields_are_ignored_as_the_api_server_prunes_them():
    check = parse_check(
        {"target": {"url": "https://api.example.com"}, "retries": 3, "steps": [{"name": "a", "x": 1}]}
    )

    assert [s.name for s in check.steps] == ["a"]
