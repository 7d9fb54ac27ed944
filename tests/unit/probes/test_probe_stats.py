"""Latency percentiles, availability windows, bounded history, persistence round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- the incremental encoding (issue 18: a status write formats one bucket, not the history) ------
def _reference_status(stats: Stats, now: datetime) -> dict:
    """What ``to_status`` wrote before it was incremental: every bucket formatted afresh, the
    availability windows summed bucket by bucket. The incremental code must say the same."""
    from pitwall.probes.stats import WINDOWS, hour_index

    def encode(series, since):
        kept = list(series.buckets(since))
        return (kept[0][0], " ".join(f"{ok}/{total}" for _, ok, total in kept)) if kept else None

    now_h = (now - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() / 3600
    availability = {}
    for name, hours in WINDOWS.items():
        since, ok, total = now_h - hours, 0.0, 0.0
        for index, bucket_ok, bucket_total in stats._hourly.buckets(int(since // 1)):
            if index + 1 <= since or not bucket_total:
                continue
            weight = 1.0 if index >= since else (index + 1 - since)
            ok, total = ok + bucket_ok * weight, total + bucket_total * weight
        if total > 0:
            availability[name] = round(100.0 * ok / total, 3)
    hourly = encode(stats._hourly, hour_index(now) - HOURS + 1)
    daily = encode(stats._daily, now.date().toordinal() - DAYS + 1)
    return {
        "availability": availability,
        "hourly": hourly and (hourly[0], hourly[1]),
        "daily": daily and (daily[0], daily[1]),
    }


def _as_reference(status: dict) -> dict:
    from pitwall import durations
    from pitwall.probes.stats import hour_index

    history = status["history"]
    hourly = history.get("hourly")
    daily = history.get("daily")
    return {
        "availability": status["availability"],
        "hourly": hourly and (hour_index(durations.parse_time(hourly["from"])), hourly["runs"]),
        "daily": daily and (datetime.fromisoformat(daily["from"]).date().toordinal(), daily["runs"]),
    }


@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=40 * 3600),  # seconds to the next run (gaps of days too)
            st.booleans(),
            st.booleans(),  # write a status after this run
            st.integers(min_value=-7200, max_value=0),  # a late result, now and then
        ),
        min_size=1,
        max_size=80,
    ),
    seeded=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_incremental_history_encoding_equals_encoding_afresh(steps, seeded):
    stats = Stats()
    at = T0
    if seeded:  # resumed from a status written by a long-running operator
        for hour in range(0, 24 * 95, 5):
            stats.record(T0 - timedelta(hours=hour), hour % 7 != 0, 10.0)
        stats = Stats.from_status(json.loads(json.dumps(stats.to_status(T0))))
    for gap, ok, write, late in steps:
        at += timedelta(seconds=gap)
        stats.record(at + timedelta(seconds=late) if late > -3600 else at, ok, 5.0)
        if write:
            now = at + timedelta(seconds=gap % 600)
            assert _as_reference(stats.to_status(now)) == _reference_status(stats, now)
    now = at + timedelta(minutes=1)
    assert _as_reference(stats.to_status(now)) == _reference_status(stats, now)


def test_encoding_follows_the_window_as_it_moves_on():
    stats = Stats()
    for hour in range(HOURS + 30):
        at = T0 + timedelta(hours=hour)
        stats.record(at, hour % 3 != 0)
        stats.record(at, True)
        status = stats.to_status(at)
        assert _as_reference(status) == _reference_status(stats, at)
        assert len(decode_runs(status["history"]["hourly"]["runs"])) == min(hour + 1, HOURS)
    # a late result for an hour already encoded still shows
    stats.record(T0 + timedelta(hours=HOURS + 20), False)
    status = stats.to_status(T0 + timedelta(hours=HOURS + 29))
    assert decode_runs(status["history"]["hourly"]["runs"])[-10] == (1, 3)
