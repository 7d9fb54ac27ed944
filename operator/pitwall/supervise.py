"""Every task Pitwall starts goes through :func:`spawn`: nothing dies unseen.

A long-lived task (a work-queue worker, the probe scheduler's loop, the heartbeat, leader
election ...) is meant to run until it is cancelled. If one ends anyway (an exception that
escaped every handler, or a plain return), the part of Pitwall it carried has stopped for
every team: the crash is logged with its traceback, counted in
``pitwall_task_crashes_total{task}``, and ``/healthz`` fails so the kubelet restarts the pod
(a restart rebuilds every loop from the caches; limping on would silently stop checks).

A short-lived task (one probe run, one status write) may fail on its own: logged and counted,
and nothing else happens; the loop that started it carries on.

Why not restart the task in place: a loop that died once has lost its in-memory state (queued
keys, timers) and would die again on the same input; a pod restart is the honest recovery and
is what the kubelet is for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from . import metrics

log = logging.getLogger("pitwall.supervise")


def spawn(
    coro: Coroutine[Any, Any, Any], *, name: str, task: str | None = None, long_lived: bool = True
) -> asyncio.Task:
    """Start ``coro`` as a supervised task.

    ``name`` is the asyncio task name (may carry a key); ``task`` the bounded metric label
    (defaults to ``name``: never put an object key there).
    """
    created = asyncio.create_task(coro, name=name)
    label = task or name
    created.add_done_callback(lambda done: _ended(done, label, long_lived))
    return created


def _ended(done: asyncio.Task, label: str, long_lived: bool) -> None:
    if done.cancelled():
        return
    exc = done.exception()
    if exc is None and not long_lived:
        return
    metrics.TASK_CRASHES.labels(label).inc()
    what = "ended" if exc is None else f"crashed: {type(exc).__name__}"
    if long_lived:
        metrics.HEALTH.fail(label, what)
        log.error(
            "task %s %s; /healthz now fails so the pod is restarted",
            done.get_name(),
            what,
            exc_info=exc,
            extra={"task": label},
        )
    else:
        log.error("task %s %s", done.get_name(), what, exc_info=exc, extra={"task": label})
