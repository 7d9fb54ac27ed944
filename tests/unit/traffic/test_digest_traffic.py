"""The digest's traffic part: live/sandbox stability and calls against a week ago (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from pitwall.alerts import digest


def product(name: str, env: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"environment": env, "traffic": {}}}


def test_calls_failures_and_week_over_week_per_environment():
    products = [product("pay", "live"), product("fx", "live"), product("pay-sbx", "sandbox")]
    traffic = digest.traffic_by_environment(
        products, {"pay": 900, "fx": 100, "pay-sbx": 50}, {"pay": 10, "fx": 0}, {"pay": 400, "fx": 100}
    )
    assert traffic["live"] == {
        "calls": 1000,
        "failed": 10,
        "weekAgoCalls": 500,
        "successPercent": 99.0,
        "weekOverWeekPercent": 100.0,
    }
    assert traffic["sandbox"]["weekOverWeekPercent"] is None and traffic["sandbox"]["successPercent"] == 100.0
    message = digest.compose(
        "update", "shop", [], [], products, None, datetime(2026, 1, 1, tzinfo=UTC), traffic, "2h"
    )
    assert "Traffic over the last 2h" in message.text
    assert "live: 1,000 calls, 10 failed, 99.00% succeeded; +100.0% vs a week ago (500 calls)" in message.text
    assert "sandbox: 50 calls, 0 failed, 100.00% succeeded; no calls a week ago" in message.text
    assert message.data["traffic"]["environments"]["live"]["weekOverWeekPercent"] == 100.0


def test_without_traffic_the_digest_is_unchanged():
    message = digest.compose("update", "shop", [], [], [], None, datetime(2026, 1, 1, tzinfo=UTC))
    assert "Traffic" not in message.text and "traffic" not in message.data
