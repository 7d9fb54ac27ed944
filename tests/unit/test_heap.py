"""The heap policy: collections skip what was frozen; a deep settle still reclaims frozen cycles;
freed memory goes back to the system."""

from __future__ import annotations

import gc
import os
import weakref

import pytest

from pitwall import heap


class Node:
    """An object that can point at itself (a reference cycle only the collector frees)."""

    me: Node


def cycle() -> tuple[weakref.ref, Node]:
    node = Node()
    node.me = node
    return weakref.ref(node), node


def test_frozen_objects_are_skipped_until_a_deep_settle_collects_their_cycles():
    try:
        kept, alive = cycle()
        frozen = heap.settle()  # no collection: constant time

        assert frozen > 0 and gc.get_freeze_count() == frozen
        del alive  # a frozen cycle outlives its use ...
        gc.collect()
        assert kept() is not None
        young, alive = cycle()
        del alive  # ... while a young one is collected as usual
        gc.collect()
        assert young() is None
        heap.settle(deep=True)  # ... until the deep settle
        assert kept() is None
    finally:
        gc.unfreeze()


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(
    heap._TRIM is None or not os.path.exists("/proc/self/statm"), reason="needs glibc's malloc_trim and /proc"
)
def test_release_gives_freed_memory_back_to_the_system():
    """Memory freed between live blocks stays resident until it is released: what a burst at
    start-up leaves behind in a long-running operator."""
    blocks = [bytes(4000) for _ in range(20_000)]  # 80 MB from the C allocator
    keep = blocks[::16]  # one in 16 stays alive: no trim from the top
    del blocks
    before = resident_bytes()

    assert heap.release()
    assert before - resident_bytes() > 40_000_000
    assert len(keep) == 1250
