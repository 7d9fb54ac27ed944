"""Each version's state from maintenance, probes, conditions and its workload."""

from __future__ import annotations

from datetime import timedelta

from pitwall.statuspage.health import overall, version_verdict, worst

from .builders import NOW, cond, healthy_conditions, probe, product, stamp, window


def verdict(prod, version="v1", probes=(), windows=()):
    entries = [(w, e) for w in windows for e in w["status"]["affected"]["apiProducts"]]
    spec_version = next(v for v in prod["spec"]["versions"] if v["name"] == version)
    return version_verdict(prod, spec_version, list(probes), entries)


def test_healthy_version_is_operational():
    result = verdict(product("orders"), probes=[probe("p", product="orders", version="v1")])
    assert (result.state, result.text) == ("operational", "Operating normally")


def test_all_probes_down_is_an_outage_since_the_first_went_down():
    early, late = NOW - timedelta(minutes=9), NOW - timedelta(minutes=2)
    probes = [
        probe("a", product="orders", version="v1", state="Down", since=late),
        probe("b", product="orders", version="v1", state="Down", since=early),
    ]
    result = verdict(product("orders"), probes=probes)
    assert result.state == "outage" and result.reason == "checks-failing"
    assert result.since == stamp(early)
    assert "probe a Down" in result.detail  # internal detail names the probes ...
    assert "probe" not in result.text  # ... the public text never does


def test_some_probes_down_is_degraded():
    probes = [
        probe("a", product="orders", version="v1", state="Down"),
        probe("b", product="orders", version="v1", state="Up"),
    ]
    assert verdict(product("orders"), probes=probes).state == "degraded"


def test_unknown_and_paused_probes_are_not_evidence():
    probes = [
        probe("a", product="orders", version="v1", state="Unknown"),
        probe("b", product="orders", version="v1", state="Paused"),
    ]
    assert verdict(product("orders"), probes=probes).state == "operational"


def test_active_window_beats_a_failing_probe():
    start = NOW - timedelta(minutes=5)
    mw = window("w", "Active", [{"name": "orders", "versions": ["v1"], "effect": "Unavailable"}], start=start)
    result = verdict(
        product("orders"), probes=[probe("a", product="orders", version="v1", state="Down")], windows=[mw]
    )
    assert result.state == "maintenance" and result.since == stamp(start)


def test_window_only_covers_its_versions():
    mw = window(
        "w",
        "Active",
        [{"name": "orders", "versions": ["v2"], "effect": "Unavailable"}],
        start=NOW - timedelta(minutes=5),
    )
    prod = product(
        "orders", versions=["v1", "v2"], conditions=[*healthy_conditions()[:3], cond("InMaintenance", "True")]
    )
    assert verdict(prod, "v1", windows=[mw]).state == "operational"
    assert verdict(prod, "v2", windows=[mw]).state == "maintenance"


def test_degrading_window_is_degraded_not_maintenance():
    mw = window(
        "w",
        "Active",
        [{"name": "orders", "versions": ["v1"], "effect": "Degraded"}],
        start=NOW - timedelta(minutes=5),
    )
    assert verdict(product("orders"), windows=[mw]).reason == "maintenance-degraded"


def test_backend_in_maintenance_without_a_window_listing_the_product():
    prod = product(
        "orders",
        conditions=[
            *healthy_conditions()[:3],
            cond("InMaintenance", "True", message="backend core-banking is in maintenance"),
        ],
    )
    assert verdict(prod).state == "maintenance"


def test_critical_backend_down_is_an_outage_and_degradable_is_degraded():
    down = product(
        "orders",
        conditions=[
            cond("Available", "False", "BackendUnavailable", "critical backend core-banking is unavailable")
        ],
    )
    result = verdict(down)
    assert (result.state, result.reason) == ("outage", "provider-down")
    assert "core-banking" in result.detail and "core-banking" not in result.text
    slow = product(
        "orders",
        conditions=[
            cond("Available", "True"),
            cond("Degraded", "True", "BackendDegraded", "degradable backend x"),
        ],
    )
    assert verdict(slow).reason == "provider-degraded"


def test_workload_evidence():
    none_ready = product("orders", ready={"v1": 0})
    assert verdict(none_ready).state == "outage"
    some_ready = product("orders", ready={"v1": 1})
    assert verdict(some_ready).reason == "reduced-capacity"
    rolling = product("orders", ready={"v1": 1})
    rolling["status"]["versions"][0]["state"] = "Progressing"
    assert verdict(rolling).state == "operational"  # a rolling update is not a degradation
    first = product("orders", ready={"v1": 0})
    first["status"]["versions"][0].update(state="Progressing", lastGoodImage=None)
    assert verdict(first).reason == "starting"  # never ran: not an outage yet


def test_no_status_and_no_probe_data_is_unknown():
    assert verdict(product("orders", with_status=False)).state == "unknown"


def test_worst_and_overall():
    ok, bad = verdict(product("a")), verdict(product("b", ready={"v1": 0}))
    assert worst([ok, bad]) is bad
    assert worst([]).state == "unknown"
    assert overall(["operational", "operational"]) == ("operational", "All APIs operational")
    assert overall(["operational", "outage"]) == ("outage", "Partial outage")
    assert overall(["outage"]) == ("outage", "Major outage")
    assert overall(["maintenance", "operational"])[0] == "maintenance"


def test_erroring_real_traffic_is_degraded_and_named_in_consumer_words():
    prod = product("orders")
    prod["status"]["traffic"] = {
        "state": "erroring",
        "versions": [{"name": "v1", "rps": 12.0, "errorRatio": 0.2}],
    }
    result = verdict(prod, probes=[probe("p", product="orders", version="v1")])
    assert (result.state, result.text) == ("degraded", "An elevated share of requests is failing")
    assert "20.0%" in result.detail
    prod["status"]["traffic"]["versions"][0]["errorRatio"] = 0.01  # under the default 5%
    assert verdict(prod, probes=[probe("p", product="orders", version="v1")]).state == "operational"
