"""The digest: availability per environment, open alerts, what changed since the last one."""

from datetime import UTC, datetime

from pitwall.alerts.digest import compose, due

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def probe(name, last24h, product=None):
    spec = (
        {"target": {"apiProduct": {"name": product, "version": "v1"}}}
        if product
        else {"target": {"url": "x"}}
    )
    return {"metadata": {"name": name}, "spec": spec, "status": {"availability": {"last24h": last24h}}}


def product(name, env):
    return {"metadata": {"name": name}, "spec": {"environment": env}}


def test_availability_per_environment_open_alerts_and_changes():
    records = [
        {
            "key": "probe-a",
            "subject": "Probe a is down",
            "state": "firing",
            "severity": "critical",
            "since": "2026-11-24T11:30:00Z",
            "acknowledgedBy": "homer",
        },
        {
            "key": "probe-b",
            "subject": "Probe b is down",
            "state": "resolved",
            "severity": "critical",
            "since": "2026-11-24T09:00:00Z",
            "resolvedAt": "2026-11-24T11:00:00Z",
        },
        {
            "key": "probe-c",
            "subject": "Probe c is down",
            "state": "resolved",
            "severity": "critical",
            "since": "2026-11-24T07:00:00Z",
            "resolvedAt": "2026-11-24T08:00:00Z",
        },
    ]
    probes = [probe("a", 99.0, "payments"), probe("b", 97.0, "payments"), probe("s", 50.0, "sandbox-api")]
    products = [product("payments", "live"), product("sandbox-api", "sandbox")]
    message = compose("rule", "ns", records, probes, products, "2026-11-24T10:00:00Z", NOW)
    assert message.data["availability24h"] == {"live": 98.0, "sandbox": 50.0}
    assert message.data["open"] == ["probe-a"]
    assert message.data["fired"] == ["probe-a"]  # since the last digest only
    assert message.data["resolved"] == ["probe-b"]  # c resolved before the last digest
    assert "acknowledged by homer" in message.text
    assert message.subject == "[pitwall] rule: 1 open alerts, live 98.00%, sandbox 50.00%"


def test_due_on_interval():
    assert due(7200, None, NOW)
    assert not due(7200, "2026-11-24T11:00:00Z", NOW)
    assert due(7200, "2026-11-24T10:00:00Z", NOW)
