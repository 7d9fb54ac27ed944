"""Latency percentiles, availability windows, bounded history, persistence round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pitwall.probes.stats import DAYS, HOURS, Stats, daily_runs, decode_runs

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
    restored = Stats.from_status(json.loads(json.dumps(status)))  # as it comes back from the API
    hourly, daily = status["history"]["hourly"], status["history"]["daily"]

    assert len(decode_runs(hourly["runs"])) <= HOURS
    assert len(decode_runs(daily["runs"])) <= DAYS
    assert hourly["from"] == "2026-02-22T12:00:00Z"  # 7 days and the current hour
    assert hourly["runs"].endswith(" 1/1 0/0 0/0 0/1")  # every 3 h, ending 09:00 (failed)
    assert daily["from"] == "2025-12-02"  # 90 days up to today
    assert decode_runs(daily["runs"])[-1] == (2, 4)  # 2026-03-01: 09:00 failed, 00:00 / 03:00 / 06:00
    assert restored.availability(now) == stats.availability(now)
    assert restored.to_status(now)["history"] == status["history"]
    assert "latency" not in restored.to_status(now)  # not persisted: the status keeps its last numbers

    restored.record(now, True, 12.0)  # and counting continues where it was
    assert decode_runs(restored.to_status(now)["history"]["daily"]["runs"])[-1] == (3, 5)


def test_ninety_days_of_history_stay_small_in_status():
    # Every probe's status is stored in etcd, sent on each write and held in the watch cache.
    stats = Stats()
    at = T0 - timedelta(days=DAYS)
    while at <= T0:
        stats.record(at, True, 15.0)
        at += timedelta(seconds=10)

    history = stats.to_status(T0)["history"]

    assert len(decode_runs(history["hourly"]["runs"])) == HOURS
    assert len(decode_runs(history["daily"]["runs"])) == DAYS
    assert len(json.dumps(history)) < 3000
    assert decode_runs(history["daily"]["runs"])[-2] == (8640, 8640)


def test_history_written_by_an_older_version_is_read():
    old = {
        "history": {
            "hourly": [
                {"at": "2026-03-01T10:00:00Z", "ok": 5, "total": 6},
                {"at": "2026-03-01T12:00:00Z", "ok": 6, "total": 6},
            ],
            "daily": [
                {"day": "2026-02-28", "ok": 100, "total": 100},
                {"day": "2026-03-01", "ok": 11, "total": 12},
            ],
        }
    }

    history = Stats.from_status(old).to_status(T0)["history"]

    assert history["hourly"] == {"from": "2026-03-01T10:00:00Z", "runs": "5/6 0/0 6/6"}
    assert history["daily"] == {"from": "2026-02-28", "runs": "100/100 11/12"}
    assert list(daily_runs(old)) == [("2026-02-28", 100, 100), ("2026-03-01", 11, 12)]


def test_unreadable_history_starts_afresh():
    assert Stats.from_status(
        {
            "history": {
                "hourly": {"from": "yesterday", "runs": "1/1"},
                "daily": {"from": "2026-03-01", "runs": "x 3/4"},
            }
        }
    ).to_status(T0)["history"] == {"daily": {"from": "2026-03-01", "runs": "0/0 3/4"}}


def test_old_buckets_age_out_of_status():
    stats = Stats()
    stats.record(T0, True)

    status = stats.to_status(T0 + timedelta(days=DAYS + 1))

    assert status["history"] == {}
    assert status["availability"] == {}
