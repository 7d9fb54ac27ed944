"""The probe benchmark's phases and its reuse of reference measurements (bench/probes.py):
a re-measured Pitwall phase is put beside Gatus and blackbox_exporter numbers of the same day,
machine and size only, and says where they came from."""

from __future__ import annotations

import json

import pytest
from bench import probes
from bench.common import machine

WINDOW = {
    "seconds": 60.0,
    "checks": 3000,
    "cpu_seconds": 2.0,
    "machine_cpu_seconds": 30.0,
    "targets_cpu_seconds": 1.0,
    "max_rss": 30_000_000,
    "hwm": 31_000_000,
}


def test_phases_are_checked_and_kept_in_order():
    assert probes.parse_phases(None) == probes.PHASES
    assert probes.parse_phases("scale, pitwall") == ("pitwall", "scale")
    with pytest.raises(ValueError, match="unknown probe benchmark phase.*gatsu"):
        probes.parse_phases("pitwall,gatsu")


def run_record(date: str, *, cpu_model: str | None = None, quick: bool = True, reused=None) -> dict:
    here = machine()
    return {
        "params": {"quick": quick, "probes": probes.QUICK.probes, "interval_s": 10, "window_s": 60},
        "machine": {
            **here,
            "date": date,
            "cpu_model": cpu_model or here["cpu_model"],
            "loadavg": "1.0 1.0 1.0",
        },
        "extra": {
            "gatus": [{"concurrency": 3, "off": {"window": WINDOW}, "on": {"window": WINDOW}}],
            "blackbox_exporter": {"unavailable": "no binary"},
            "reused": reused or {},
        },
    }


def test_reference_phases_of_today_on_this_machine_are_reused_with_their_origin(tmp_path):
    today = machine()["date"]
    path = tmp_path / "probes.json"
    path.write_text(
        json.dumps(
            [
                run_record(today),
                run_record(today, cpu_model="another CPU"),  # newer, but another machine
                run_record(today, quick=False),  # newer, but another size
            ]
        )
    )
    data, origin = probes.reusable("gatus", probes.QUICK, True, path)
    assert origin["date"] == today and origin["loadavg"] == "1.0 1.0 1.0"
    assert isinstance(data[0]["off"]["window"], probes.Window)  # usable as if measured now
    assert data[0]["off"]["window"].checks == 3000
    assert probes.reusable("blackbox", probes.QUICK, True, path) is None  # it was not measured
    assert probes.reusable("pitwall", probes.QUICK, True, path) is None


def test_nothing_of_another_day_is_reused_not_even_through_a_reuse(tmp_path):
    path = tmp_path / "probes.json"
    old = {"date": "2026-11-01 10:00 UTC", "loadavg": "0.1", "commit": "abc"}
    path.write_text(
        json.dumps([run_record("2026-11-01 10:00 UTC"), run_record(machine()["date"], reused={"gatus": old})])
    )
    assert probes.reusable("gatus", probes.QUICK, True, path) is None
