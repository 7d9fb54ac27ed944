"""Thresholds, flapping, imposed states, resuming from status, and when to write status."""

from __future__ import annotations

from pitwall.probes.coalesce import should_write
from pitwall.probes.state import DOWN, MAINTENANCE, PAUSED, UNKNOWN, UP, Health, observe, settle


def fold(
    results: str,
    *,
    start: Health | None = None,
    failure: int = 3,
    success: int = 1,
    imposed: str | None = None,
) -> list[tuple[str, bool]]:
    """Feed 'S'/'F' results; return (state, transition) after each."""
    health, out = start or Health(), []
    for r in results:
        outcome = observe(
            health, r == "S", failure_threshold=failure, success_threshold=success, imposed=imposed
        )
        health = outcome.health
        out.append((outcome.state, outcome.transition))
    return out


def test_down_only_after_failure_threshold():
    assert fold("FFF", start=Health(UP)) == [(UP, False), (UP, False), (DOWN, True)]


def test_up_after_success_threshold():
    assert fold("SSS", start=Health(DOWN, consecutive_failures=5), success=2) == [
        (DOWN, False),
        (UP, True),
        (UP, False),
    ]


def test_from_unknown():
    assert fold("S") == [(UP, True)]
    assert fold("SS", success=2) == [(UNKNOWN, False), (UP, True)]
    assert fold("FFF") == [(UNKNOWN, False), (UNKNOWN, False), (DOWN, True)]


def test_flapping_never_flips():
    for start in (Health(UP), Health(DOWN)):
        states = fold("FS" * 20, start=start, success=2)
        assert {s for s, _ in states} == {start.state}
        assert not any(t for _, t in states)


def test_a_failure_streak_is_reset_by_a_success():
    assert fold("FFSFF", start=Health(UP))[-1] == (UP, False)


def test_maintenance_never_produces_down_and_counts_keep_going():
    states = fold("FFFFF", start=Health(UP), imposed=MAINTENANCE)

    assert states[0] == (MAINTENANCE, True)
    assert all(s == (MAINTENANCE, False) for s in states[1:])


def test_lifting_an_imposed_state_follows_the_counts():
    kept_failing = Health(MAINTENANCE, consecutive_failures=4)
    kept_answering = Health(PAUSED, consecutive_successes=1)
    undecided = Health(MAINTENANCE, consecutive_failures=1)

    assert settle(kept_failing, failure_threshold=3, success_threshold=1).state == DOWN
    assert settle(kept_answering, failure_threshold=3, success_threshold=1).state == UP
    lifted = settle(undecided, failure_threshold=3, success_threshold=1)
    assert (lifted.state, lifted.transition) == (UNKNOWN, True)
    assert not settle(Health(PAUSED), failure_threshold=3, success_threshold=1, imposed=PAUSED).transition


def test_resume_from_persisted_status():
    health = Health.from_status({"state": "Up", "consecutiveFailures": 2, "consecutiveSuccesses": 0})

    outcome = observe(health, False, failure_threshold=3, success_threshold=1)

    assert (outcome.state, outcome.transition) == (DOWN, True)
    assert Health.from_status(outcome.health.to_status()) == outcome.health
    assert Health.from_status(None) == Health(UNKNOWN)
    assert Health.from_status({"state": "Bogus"}).state == UNKNOWN


def test_status_writes_are_coalesced():
    assert should_write(None, 0.0, transition=False)  # never written: write
    assert should_write(100.0, 101.0, transition=True)  # a transition: at once
    assert not should_write(100.0, 159.9, transition=False)
    assert should_write(100.0, 160.0, transition=False)
    assert not should_write(100.0, 110.0, transition=False, min_interval=30)


def test_the_states_are_the_models_enum():
    from pitwall.api.probe import ProbeStatus

    # Taken from the model in its order: a reordered enum must not swap their meanings.
    assert (UP, DOWN, UNKNOWN, MAINTENANCE, PAUSED) == ("Up", "Down", "Unknown", "Maintenance", "Paused")
    assert all(ProbeStatus(state=state).state == state for state in (UP, DOWN, UNKNOWN, MAINTENANCE, PAUSED))
    assert Health.from_status({"state": "Sideways", "consecutiveFailures": 2}) == Health(UNKNOWN, 2, 0)
