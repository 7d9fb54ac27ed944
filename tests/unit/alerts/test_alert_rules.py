"""Parsing AlertRule specs and matching label selectors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pitwall.alerts.rules import label_selector, matches, parse_rule
from pitwall.errors import InvalidSpec

TEAMS = {"name": "ops", "type": "msteams", "secretRef": {"name": "teams", "key": "url"}}


def spec(**extra):
    return {"severity": "high", "selector": {}, "receivers": [TEAMS], **extra}


def test_defaults_follow_the_crd():
    rule = parse_rule("shop", "down", spec())
    assert rule.selector.kinds == ("ApiProduct", "Probe", "Backend")
    assert (rule.when.condition, rule.when.status, rule.when.for_) == ("Ready", "False", 0.0)
    assert rule.repeat_interval == 4 * 3600
    assert rule.send_resolved is True
    assert rule.group_wait == 0.0
    assert rule.escalation == () and rule.digest is None


def test_full_spec_is_parsed():
    rule = parse_rule(
        "shop",
        "down",
        {
            "severity": "critical",
            "summary": "{name} down",
            "selector": {
                "kinds": ["Probe", "Backend"],
                "matchLabels": {"tier": "gold"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["live"]}],
            },
            "when": {"condition": "Healthy", "status": "False", "for": "1m30s"},
            "receivers": [
                TEAMS,
                {
                    "name": "og",
                    "type": "opsgenie",
                    "secretRef": {"name": "og", "key": "key"},
                    "url": "https://api.eu.opsgenie.com",
                    "escalationOnly": True,
                },
                {"name": "hook", "type": "webhook", "url": "http://tooling.example/alerts"},
            ],
            "escalation": [
                {"after": "30m", "receivers": ["og"]},
                {"after": "2h", "receivers": ["og", "ops"]},
            ],
            "repeatInterval": "1h",
            "sendResolved": False,
            "groupWait": "10s",
            "digest": {"interval": "2h", "receivers": ["ops"]},
        },
    )
    assert rule.when.for_ == 90.0
    assert rule.ack_window == 1800
    assert [r.name for r in rule.initial_receivers] == ["ops", "hook"]
    assert rule.receiver("og").url == "https://api.eu.opsgenie.com"
    assert [(s.after, s.receivers) for s in rule.escalation] == [(1800, ("og",)), (7200, ("og", "ops"))]
    assert (rule.repeat_interval, rule.send_resolved, rule.group_wait) == (3600, False, 10)
    assert rule.digest.interval == 7200


@pytest.mark.parametrize(
    "severity, window",
    [("critical", 1800), ("high", 7200), ("medium", 86400), ("low", 172800), ("blocked", None)],
)
def test_severities_carry_their_response_target(severity, window):
    rule = parse_rule("shop", "r", spec(severity=severity))
    assert rule.ack_window == window
    assert rule.pages is (window is not None)


@pytest.mark.parametrize(
    "bad, reason, words",
    [
        ({"receivers": [TEAMS, TEAMS]}, "DuplicateReceiver", "receiver names must be unique: ops"),
        (
            {"receivers": [{"name": "ops", "type": "slack"}]},
            "MissingSecretRef",
            "ops (slack) needs a secretRef",
        ),
        ({"receivers": [{"name": "hook", "type": "webhook"}]}, "MissingSecretRef", "a secretRef or a url"),
        (
            {"receivers": [{"name": "og", "type": "opsgenie", "url": "https://api.opsgenie.com"}]},
            "MissingSecretRef",
            "og (opsgenie) needs a secretRef",
        ),
        ({"receivers": [{**TEAMS, "url": "ftp://x"}]}, "InvalidReceiver", "url must be http(s)"),
        (
            {"receivers": [{"name": "m", "type": "email", "secretRef": {"name": "s", "key": "k"}}]},
            "InvalidReceiver",
            "spec.receivers[0]: receiver m: email needs email.to",
        ),
        (
            {"escalation": [{"after": "30m", "receivers": ["nobody"]}]},
            "UnknownReceiver",
            "spec.escalation[0] names receivers this rule does not define: nobody",
        ),
        ({"digest": {"interval": "2h", "receivers": ["nobody"]}}, "UnknownReceiver", "spec.digest names"),
        (
            {"escalation": [{"after": "2h", "receivers": ["ops"]}, {"after": "30m", "receivers": ["ops"]}]},
            "InvalidEscalation",
            "spec.escalation[1].after must be later than spec.escalation[0].after",
        ),
        ({"repeatInterval": "soon"}, "InvalidDuration", "spec.repeatInterval: 'soon' is not a duration"),
        ({"when": {"for": "1 minute"}}, "InvalidDuration", "spec.when.for: '1 minute' is not a duration"),
        (
            {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
            "InvalidSelector",
            "spec.selector.matchExpressions[0]: In needs at least one value",
        ),
        (
            {"selector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]}},
            "InvalidSelector",
            "Exists takes no values",
        ),
    ],
)
def test_what_the_model_cannot_catch_is_refused_with_a_reason(bad, reason, words):
    # Checked by CEL at admission (or needing the whole rule): judged again here, for objects
    # stored before a rule existed, each with a reason of its own.
    with pytest.raises(InvalidSpec) as caught:
        parse_rule("shop", "r", spec(**bad))
    assert caught.value.reason == reason
    assert words in caught.value.message


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            {"severity": "urgent"},
            "spec.severity: Input should be 'critical', 'high', 'medium', 'low' or 'blocked'",
        ),
        (
            {"receivers": [{**TEAMS, "type": "carrier-pigeon"}]},
            "spec.receivers[0].type: Input should be 'msteams', 'slack', 'opsgenie', 'pagerduty', 'email' "
            "or 'webhook'",
        ),
        (
            {"receivers": [{**TEAMS, "secretRef": {"name": "teams"}}]},
            "spec.receivers[0].secretRef.key: Field required",
        ),
        (
            {"selector": {"kinds": ["Pod"]}},
            "spec.selector.kinds[0]: Input should be 'ApiProduct', 'Probe' or 'Backend'",
        ),
        (
            {"selector": {"matchExpressions": [{"key": "a", "operator": "Like", "values": ["b"]}]}},
            "spec.selector.matchExpressions[0].operator: Input should be 'In', 'NotIn', 'Exists' or 'DoesNotExist'",
        ),
        ({"when": {"status": "Maybe"}}, "spec.when.status: Input should be 'True', 'False' or 'Unknown'"),
        ({"selector": None}, "spec.selector: Input should be a valid dictionary or instance of Selector"),
        ({"escalation": [{"receivers": ["ops"]}]}, "spec.escalation[0].after: Field required"),
    ],
)
def test_what_the_model_refuses_is_refused_with_the_field_named(bad, message):
    # The API server admits none of these (the CRD is generated from the same model).
    with pytest.raises(InvalidSpec) as caught:
        parse_rule("shop", "r", spec(**bad))
    assert (caught.value.reason, caught.value.message) == ("InvalidSpec", message)


def test_a_rule_without_a_selector_is_refused_as_the_api_server_would():
    with pytest.raises(InvalidSpec) as caught:
        parse_rule("shop", "r", {"severity": "low"})
    assert caught.value.message == "spec.selector: Field required"


def test_a_rule_without_receivers_only_records():
    rule = parse_rule("shop", "r", {"severity": "low", "selector": {}})
    assert rule.receivers == () and rule.initial_receivers == ()


def selector(**raw):
    return parse_rule("shop", "r", spec(selector=raw)).selector


def test_kinds_restrict_what_is_selected():
    sel = selector(kinds=["Probe"])
    assert matches(sel, "Probe", {})
    assert not matches(sel, "Backend", {})


def test_match_labels_need_every_label():
    sel = selector(matchLabels={"tier": "gold", "env": "live"})
    assert matches(sel, "Probe", {"tier": "gold", "env": "live", "extra": "x"})
    assert not matches(sel, "Probe", {"tier": "gold"})
    assert not matches(sel, "Probe", None)


@pytest.mark.parametrize(
    "expression, labels, expected",
    [
        ({"key": "env", "operator": "In", "values": ["live", "sandbox"]}, {"env": "live"}, True),
        ({"key": "env", "operator": "In", "values": ["live"]}, {"env": "dev"}, False),
        ({"key": "env", "operator": "In", "values": ["live"]}, {}, False),
        ({"key": "env", "operator": "NotIn", "values": ["dev"]}, {"env": "live"}, True),
        ({"key": "env", "operator": "NotIn", "values": ["dev"]}, {"env": "dev"}, False),
        ({"key": "env", "operator": "NotIn", "values": ["dev"]}, {}, True),  # Kubernetes semantics
        ({"key": "env", "operator": "Exists"}, {"env": ""}, True),
        ({"key": "env", "operator": "Exists"}, {}, False),
        ({"key": "env", "operator": "DoesNotExist"}, {}, True),
        ({"key": "env", "operator": "DoesNotExist"}, {"env": "x"}, False),
    ],
)
def test_match_expressions(expression, labels, expected):
    assert matches(selector(matchExpressions=[expression]), "Probe", labels) is expected


def test_label_selector_string_for_list_calls():
    sel = selector(
        matchLabels={"tier": "gold"},
        matchExpressions=[
            {"key": "env", "operator": "In", "values": ["live", "sandbox"]},
            {"key": "team", "operator": "NotIn", "values": ["x"]},
            {"key": "owner", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    )
    assert label_selector(sel) == "tier=gold,env in (live,sandbox),team notin (x),owner,!legacy"


def example_rules():
    for path in sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "AlertRule":
                yield pytest.param(doc, id=doc["metadata"]["name"])


@pytest.mark.parametrize("doc", list(example_rules()))
def test_every_example_rule_parses_into_a_rule(doc):
    rule = parse_rule("shop", doc["metadata"]["name"], doc["spec"])
    assert rule.severity == doc["spec"]["severity"]
    assert [r.name for r in rule.receivers] == [r["name"] for r in doc["spec"].get("receivers") or []]
