"""Spec parsing: defaults, and what only the operator can refuse (the CRD cannot)."""

from __future__ import annotations

import pytest

from pitwall.errors import InvalidSpec
from pitwall.probes.spec import RUN_SLACK, SecretRef, parse_check


def test_defaults_make_one_get_expecting_200():
    check = parse_check({"target": {"url": "https://api.example.com/payments/v2"}})

    assert check.target == "https://api.example.com/payments/v2"
    assert (check.interval, check.timeout, check.failure_threshold, check.success_threshold) == (30.0, 5.0, 3, 1)
    assert not check.follow_redirects and not check.paused
    [step] = check.steps
    assert (step.name, step.request.method, step.expect.status) == ("check", "GET", (200,))
    assert check.run_timeout == 5.0 + RUN_SLACK


def test_backend_health_block_has_the_same_shape():
    check = parse_check({"url": "https://cb.internal/health", "interval": "1m", "timeout": "2s",
                         "failureThreshold": 5, "tls": {"caSecretRef": {"name": "cb-ca", "key": "ca.crt"}}})

    assert (check.target, check.interval, check.timeout, check.failure_threshold) == \
        ("https://cb.internal/health", 60.0, 2.0, 5)
    assert check.tls.ca == SecretRef("cb-ca", "ca.crt")


def test_base_url_is_the_resolved_target():
    spec = {"target": {"apiProduct": {"name": "payments", "version": "v2"}},
            "steps": [{"name": "up", "request": {"path": "/isUp"}}]}

    assert parse_check(spec).target is None  # valid: resolved later
    assert parse_check(spec, base_url="http://10.0.0.7:8080").target == "http://10.0.0.7:8080"


def test_secret_names_cover_templates_and_tls():
    check = parse_check({"target": {"url": "https://x.example"},
                         "tls": {"clientCertSecretRef": {"name": "client-tls"}},
                         "steps": [{"name": "a", "request": {"form": {"p": "${secret:homer/password}"},
                                                             "headers": {"K": "${secret:api/key}"}}}]})

    assert check.secret_names == {"homer", "api", "client-tls"}


@pytest.mark.parametrize(("spec", "reason", "fragment"), [
    ({"steps": [{"name": "a", "capture": {"t": "$.[bad"}}]}, "InvalidJSONPath", "capture 't'"),
    ({"steps": [{"name": "a", "expect": {"json": [{"path": "$..[?(", "exists": True}]}}]}, "InvalidJSONPath", "$..[?("),
    ({"steps": [{"name": "a", "expect": {"json": [{"path": "token_type"}]}}]}, "InvalidJSONPath", "starts with $"),
    ({"steps": [{"name": "a", "capture": {"t": "body:x"}}]}, "InvalidCapture", "header:Name"),
    ({"steps": [{"name": "a", "expect": {"body": {"regex": "("}}}]}, "InvalidRegex", "'('"),
    ({"steps": [{"name": "a", "expect": {"headers": [{"name": "X", "matches": "[z-a]"}]}}]}, "InvalidRegex", "header X"),
    ({"steps": [{"name": "a", "request": {"headers": {"A": "Bearer ${token}"}}}]}, "UnknownVariable",
     "step 'a' uses ${token} but no earlier step captures 'token'"),
    ({"steps": [{"name": "a", "request": {"path": "/x/${id}"}, "capture": {"id": "$.id"}}]}, "UnknownVariable",
     "${id}"),  # a step cannot use what it captures itself
    ({"steps": [{"name": "a", "request": {"body": "${secret:no-key}"}}]}, "InvalidReference", "${secret:no-key}"),
    ({"steps": [{"name": "a"}, {"name": "a"}]}, "InvalidStep", "unique"),
    ({"steps": [{"name": "a", "request": {"url": "https://x", "path": "/y"}}]}, "InvalidStep", "not both"),
    ({"steps": [{"name": "a", "request": {"json": {}, "form": {}}}]}, "InvalidStep", "only one of"),
    ({"steps": [{"name": "a", "request": {"url": "ftp://x/"}}]}, "InvalidURL", "ftp://x/"),
    ({"steps": [{"name": "a", "expect": {"maxLatency": "fast"}}]}, "InvalidDuration", "maxLatency"),
    ({"interval": "soon"}, "InvalidDuration", "interval"),
])
def test_refused_with_a_reason(spec, reason, fragment):
    with pytest.raises(InvalidSpec) as err:
        parse_check({"target": {"url": "https://api.example.com"}, **spec})

    assert err.value.reason == reason
    assert fragment in err.value.message


def test_variables_flow_forward_between_steps():
    check = parse_check({"target": {"url": "https://api.example.com"}, "steps": [
        {"name": "token", "capture": {"token": "$.access_token", "region": "header:X-Region"}},
        {"name": "me", "request": {"path": "/me", "headers": {"Authorization": "Bearer ${token}"},
                                   "query": {"r": "${region}"}}},
    ]})

    assert [c.var for c in check.steps[0].capture] == ["token", "region"]
    assert check.steps[0].capture[1].header == "X-Region"


def test_no_target_and_no_product_is_refused():
    with pytest.raises(InvalidSpec) as err:
        parse_check({"steps": [{"name": "a", "request": {"path": "/x"}}]})

    assert err.value.reason == "NoTarget"
