"""The GC policy: collections skip what was frozen; a deep settle still reclaims frozen cycles."""

from __future__ import annotations

import gc
import weakref

from pitwall import heap


class Node:
    pass


def cycle() -> weakref.ref:
    node = Node()
    node.me = node
    return weakref.ref(node), node


def test_settle_collects_garbage_and_freezes_the_survivors():
    try:
        gone, node = cycle()
        del node                               # garbage already: collected, not frozen
        kept, alive = cycle()

        frozen = heap.settle()

        assert gone() is None
        assert frozen > 0 and gc.get_freeze_count() == frozen
        del alive                              # a frozen cycle outlives its use ...
        gc.collect()
        assert kept() is not None
        heap.settle(deep=True)                 # ... until the daily deep settle
        assert kept() is None
    finally:
        gc.unfreeze()
