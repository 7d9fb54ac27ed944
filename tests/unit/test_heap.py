"""The GC policy: collections skip what was frozen; a deep settle still reclaims frozen cycles."""

from __future__ import annotations

import gc
import weakref

from pitwall import heap


class Node:
    pass


def cycle() -> tuple[weakref.ref, Node]:
    node = Node()
    node.me = node
    return weakref.ref(node), node


def test_frozen_objects_are_skipped_until_a_deep_settle_collects_their_cycles():
    try:
        kept, alive = cycle()
        frozen = heap.settle()                 # no collection: constant time

        assert frozen > 0 and gc.get_freeze_count() == frozen
        del alive                              # a frozen cycle outlives its use ...
        gc.collect()
        assert kept() is not None
        young, alive = cycle()
        del alive                              # ... while a young one is collected as usual
        gc.collect()
        assert young() is None
        heap.settle(deep=True)                 # ... until the deep settle
        assert kept() is None
    finally:
        gc.unfreeze()
