"""Latency percentiles, availability windows, bounded history, persistence round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pitwall.probes.stats import DAYS, HOURS, Stats

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_latency_percentiles_over_successes_only():
    stats = Stats()
    for ms in range(1, 101):
        stats.record(T0, True, float(ms))
    stats.record(T0, False, 5000.0)  # a timeout says nothing about speed

    assert stats.latency() == {"p50Ms": 50.0, "p95Ms": 95.0}


def test_latency_window_is_bounded():
    stats = Stats()
    for _ in range(1000):
        stats.record(T0, True, 900.0)
    for _ in range(1000):
        stats.record(T0, True, 10.0)

    assert stats.latency() == {"p50Ms": 10.0, "p95Ms": 10.0}


def test_availability_windows():
    stats = Stats()
    # 6 days ago: an hour of failures; the last hour: 3 of 4 succeed.
    for minute in range(0, 60, 10):
        stats.record(T0 - timedelta(days=6) + timedelta(minutes=minute), False)
    for ok in (True, True, True, False):
        stats.record(T0 + timedelta(minutes=20), ok)

    availability = stats.availability(T0 + timedelta(minutes=30))

    assert availability["last1h"] == 75.0
    assert availability["last24h"] == 75.0
    assert availability["last7d"] == 30.0  # 3 ok of 10


def test_a_partly_covered_hour_is_weighted():
    stats = Stats()
    for _ in range(10):
        stats.record(T0 + timedelta(minutes=5), False)  # the 12:00 hour: all failed
    for _ in range(10):
        stats.record(T0 + timedelta(hours=1, minutes=5), True)  # the 13:00 hour: all ok

    # At 13:30 the last hour covers half of the 12:00 bucket: 5 failures, 10 successes.
    assert stats.availability(T0 + timedelta(hours=1, minutes=30))["last1h"] == 66.667
    assert "last1h" not in stats.availability(T0 + timedelta(hours=5))  # no runs in that hour


def test_history_is_bounded_and_resumes_from_status():
    stats = Stats()
    start = T0 - timedelta(days=120)
    for hour in range(0, 120 * 24, 3):
        at = start + timedelta(hours=hour)
        stats.record(at, hour % 2 == 0, 20.0)
    now = T0

    status = stats.to_status(now)
    restored = Stats.from_status(status)

    assert len(status["history"]["hourly"]) <= HOURS
    assert len(status["history"]["daily"]) <= DAYS
    assert status["history"]["hourly"][-1] == {"at": "2026-03-01T09:00:00Z", "ok": 0, "total": 1}
    assert status["history"]["daily"][-1]["day"] == "2026-03-01"
    assert restored.availability(now) == stats.availability(now)
    assert restored.to_status(now)["history"] == status["history"]
    assert "latency" not in restored.to_status(now)  # not persisted: the status keeps its last numbers

    restored.record(now, True, 12.0)  # and counting continues where it was
    assert restored.to_status(now)["history"]["daily"][-1]["total"] == status["history"]["daily"][-1]["total"] + 1


def test_old_buckets_age_out_of_status():
    stats = Stats()
    stats.record(T0, True)

    status = stats.to_status(T0 + timedelta(days=DAYS + 1))

    assert status["history"] == {"hourly": [], "daily": []}
    assert status["availability"] == {}
