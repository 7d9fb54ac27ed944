"""Operator-wide floors: read from flags/env, never below admission, enforced when specs are parsed."""

from __future__ import annotations

import pytest

from pitwall import floors
from pitwall.alerts.rules import parse_rule
from pitwall.errors import InvalidSpec
from pitwall.probes.spec import parse_check
from pitwall.runtime import Settings


@pytest.fixture
def raised():
    floors.configure(floors.build({"probe_interval": "10s", "repeat_interval": "10m"}, env={}))
    yield floors.current()
    floors.configure(floors.ADMISSION)


def test_defaults_are_the_admission_floors():
    assert floors.build({}, env={}) == floors.ADMISSION


def test_flag_wins_over_environment():
    env = {"PITWALL_MIN_PROBE_INTERVAL": "5s", "PITWALL_MIN_DIGEST_INTERVAL": "1h"}
    got = floors.build({"probe_interval": "20s"}, env=env)
    assert (got.probe_interval, got.digest_interval) == (20, 3600)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"probe_interval": "100ms"}, "--min-probe-interval 100ms: below the admission floor 1s"),
        ({"repeat_interval": "5 minutes"}, "not a duration"),
    ],
)
def test_bad_floor_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        floors.build(values, env={})


def test_probe_below_the_operator_floor_is_stalled_with_the_flag_named():
    settings = Settings(floors=floors.build({"probe_interval": "10s"}, env={}))
    with pytest.raises(InvalidSpec) as exc:
        parse_check(
            {"target": {"url": "http://127.0.0.1/"}, "interval": "5s", "timeout": "1s"},
            min_interval=settings.min_probe_interval,
        )
    assert exc.value.reason == "IntervalTooShort"
    assert exc.value.message == "interval 5s is below the minimum of 10s"


def test_probe_timeout_floor_follows_the_operator(raised_timeout):
    with pytest.raises(InvalidSpec) as exc:
        parse_check({"target": {"url": "http://127.0.0.1/"}, "interval": "5s", "timeout": "200ms"})
    assert exc.value.reason == "TimeoutTooShort" and "below the minimum of 500ms" in exc.value.message


@pytest.fixture
def raised_timeout():
    floors.configure(floors.build({"probe_timeout": "500ms"}, env={}))
    yield
    floors.configure(floors.ADMISSION)


@pytest.mark.parametrize(
    "spec, reason",
    [
        ({"interval": "0s"}, "IntervalTooShort"),
        ({"interval": "1ms"}, "IntervalTooShort"),
        ({"timeout": "0s"}, "TimeoutTooShort"),
        ({"interval": "1d", "timeout": "2d"}, "TimeoutAboveInterval"),
    ],
)
def test_probe_specs_admission_cannot_see_are_refused_in_code(spec, reason):
    # e.g. stored before the CRD floors existed, or d/w units CEL cannot compare
    with pytest.raises(InvalidSpec) as exc:
        parse_check({"target": {"url": "http://127.0.0.1/"}, **spec})
    assert exc.value.reason == reason


RULE = {
    "severity": "high",
    "selector": {"kinds": ["Probe"]},
    "receivers": [{"name": "ops", "type": "webhook", "url": "http://127.0.0.1/"}],
}


@pytest.mark.parametrize(
    "extra, words",
    [
        (
            {"repeatInterval": "1ms"},
            "repeatInterval 1ms is below the operator's floor 1m (--min-repeat-interval)",
        ),
        ({"escalation": [{"after": "0s", "receivers": ["ops"]}]}, "escalation[0].after 0ms is below"),
        ({"digest": {"interval": "10ms", "receivers": ["ops"]}}, "digest.interval 10ms is below"),
    ],
)
def test_alert_rules_below_the_floors_are_refused(extra, words):
    with pytest.raises(InvalidSpec) as exc:
        parse_rule("ns", "r", {**RULE, **extra})
    assert exc.value.reason == "BelowFloor" and words in exc.value.message


def test_repeat_interval_zero_turns_reminders_off_and_is_allowed(raised):
    assert parse_rule("ns", "r", {**RULE, "repeatInterval": "0s"}).repeat_interval == 0
    with pytest.raises(InvalidSpec, match="floor 10m"):
        parse_rule("ns", "r", {**RULE, "repeatInterval": "5m"})
