"""--log-search-url: correlation ids become links (pure)."""

from __future__ import annotations

import pytest

from pitwall import logsearch
from pitwall.probes.reconcile import probe_conditions
from pitwall.runtime import Settings


def test_an_id_becomes_an_escaped_link_and_messages_carry_it():
    template = "https://kibana.example/app/discover#/?query=correlationId:{correlationId}"
    assert (
        logsearch.link("a b/c", template)
        == "https://kibana.example/app/discover#/?query=correlationId:a%20b%2Fc"
    )
    assert logsearch.link("-", template) is None and logsearch.link(None, template) is None
    logsearch.configure(template)
    try:
        assert logsearch.mention("abc") == f"abc (logs: {template.replace('{correlationId}', 'abc')})"
    finally:
        logsearch.configure(None)
    assert logsearch.mention("abc") == "abc"


@pytest.mark.parametrize(
    "template, problem",
    [
        ("https://logs.example/search", "must contain {correlationId}"),
        ("logs.example/{correlationId}", "http(s) URL"),
    ],
)
def test_a_template_that_cannot_work_stops_the_operator_with_a_reason(template, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(log_search_url=template)


def test_a_down_probe_condition_links_its_correlation_id():
    class Failure:
        name, reason, correlation_id = "isUp", "HTTP 503", "pw-123"

    class Result:
        failure = Failure()

    logsearch.configure("https://logs.example/?q={correlationId}")
    try:
        healthy = probe_conditions("Down", Result())[0]  # type: ignore[arg-type]
    finally:
        logsearch.configure(None)
    assert (
        healthy.message
        == "step isUp: HTTP 503 (correlation id pw-123 (logs: https://logs.example/?q=pw-123))"
    )
