"""When to write a probe's status: at once on a transition, otherwise at most once a minute.

Steady-state numbers (counts, latency, availability) change on every run; writing them on
every run would make 5,000 probes at 10 s some 500 writes a second against the API server.
A transition (Up/Down, Stalled, a condition) is what people and alerts wait for, so it is never
delayed. Clock values are the caller's monotonic seconds.
"""

from __future__ import annotations

MIN_INTERVAL = 60.0


def should_write(
    last_written: float | None, now: float, *, transition: bool, min_interval: float = MIN_INTERVAL
) -> bool:
    if transition or last_written is None:
        return True
    return now - last_written >= min_interval
