"""Keep Python's full garbage collections short, so they do not delay probes.

A full (generation 2) collection walks every container object in the process and stops the
event loop meanwhile. With 5,000 probes that is some 500,000 objects (caches, jobs, metric
series, kopf's per-object memories) and 300-500 ms, several times a minute: that was most of
the probes' scheduling-lag tail (bench/results/probes.md). Almost all of those objects live as
long as the process, so scanning them again and again finds nothing.

The policy, once the caches are synced:

- every ``interval``, a collection of the young generations (a few ms), then ``gc.freeze()``:
  everything alive moves to the permanent generation, which collections skip. Frozen objects
  are still freed by reference counting as usual; only a reference *cycle* among them outlives
  its use (without the young collection, cycles that had just died were frozen: the frozen
  count and RSS crept up about 13 MB a minute at 5,000 probes), until:
- every ``deep_every``, ``gc.unfreeze()``, ``gc.collect()``, ``gc.freeze()``: one full pause
  every 15 minutes (about 0.3 s at 5,000 probes) reclaims such cycles, so they stay bounded.

Automatic collections stay on; they only ever see what was created since the last freeze.
Their pauses are measured by ``pitwall_gc_pause_seconds``, the frozen count by
``pitwall_gc_frozen_objects``.

Freed memory goes back to the system: glibc's malloc keeps what the process freed (after the
start-up listing and the first reconcile of every object; one worker thread's arena held 21 MB
for 27 KB in use) for reuse, which at 5,000 probes was some 30 MB of resident memory nobody
used. Every ``trim_every``, ``malloc_trim(0)`` hands its free pages back (a few ms; a
no-op where the C library has no such call).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time

from prometheus_client import Gauge

log = logging.getLogger("pitwall.heap")

INTERVAL = 10.0
DEEP_EVERY = 900.0
TRIM_EVERY = 60.0
# Young collections every 20,000 net allocations instead of 700: a probe run's short-lived
# objects then die by reference counting before any collection sees them, instead of being
# promoted towards generation 2 only because a run was in flight when a collection started.
THRESHOLDS = (20_000, 10, 10)

FROZEN = Gauge("pitwall_gc_frozen_objects", "Objects in the permanent generation (gc.freeze)")


def settle(*, deep: bool = False) -> int:
    """Freeze what is alive; ``deep`` first unfreezes everything and collects. Returns the
    number of objects now frozen."""
    if deep:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)  # the young generations only: cycles that just died are not frozen
    gc.freeze()
    return gc.get_freeze_count()


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None


_TRIM = _malloc_trim()


def release() -> bool:
    """Return the C allocator's free pages to the system; True when it released some."""
    return bool(_TRIM(0)) if _TRIM is not None else False


async def keep_collections_short(
    interval: float = INTERVAL, deep_every: float = DEEP_EVERY, trim_every: float = TRIM_EVERY
) -> None:
    gc.set_threshold(*THRESHOLDS)
    last_deep = last_trim = time.monotonic()
    FROZEN.set(settle(deep=True))
    while True:
        await asyncio.sleep(interval)
        now = time.monotonic()
        deep = now - last_deep >= deep_every
        if deep:
            last_deep = now
        frozen = settle(deep=deep)
        FROZEN.set(frozen)
        log.debug("heap settled (%s): %d objects frozen", "deep" if deep else "young", frozen)
        if now - last_trim >= trim_every:
            last_trim = now
            release()
