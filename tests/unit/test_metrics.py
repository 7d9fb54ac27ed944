"""Operator metrics that are not tied to a domain."""

from __future__ import annotations

import gc

from prometheus_client import REGISTRY

from pitwall import metrics


def _count(generation: str) -> float:
    return REGISTRY.get_sample_value("pitwall_gc_pause_seconds_count", {"generation": generation}) or 0.0


def test_garbage_collector_pauses_are_measured_once_per_collection():
    metrics.watch_gc()
    metrics.watch_gc()  # idempotent: one callback, not two
    before = _count("2")

    gc.collect()

    assert _count("2") == before + 1
    assert REGISTRY.get_sample_value("pitwall_gc_pause_seconds_sum", {"generation": "2"}) > 0


def test_created_series_are_not_exported():
    assert "_created" not in metrics.generate_latest().decode()
