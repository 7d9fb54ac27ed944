"""Parse a JSON response and evaluate a step's JSONPaths on it, bounded in size and time.

jsonpath-ng is pure Python: ``$..*`` visits every value at a few microseconds each, and
``$..*..*`` on a 440 KB body took 7 s on the event loop (issue 14). The bounds:

- Spec parsing refuses more than one recursive descent and regexes inside a JSONPath
  (``spec._jsonpath``), so the work is linear in the number of values.
- A path that only descends (``$.a.b[0]``) costs its depth, whatever the document; one that
  scans (``..``, ``*``, filters, slices, sorting, functions) costs every value it passes. So a
  document is refused (the step fails with a reason) past ``MAX_VALUES`` values for any path,
  and past ``MAX_SCANNED_VALUES`` when a path scans, counted from its bytes before parsing
  (commas and brackets: an upper bound, and C-speed).
- Nesting beyond the interpreter's recursion limit fails the step with a reason (the C JSON
  decoder raises RecursionError), never an exception out of the check.
- Small bodies (``INLINE_BYTES``, nearly every health answer) are evaluated on the event loop:
  a few milliseconds at worst. Larger ones run on a small thread pool, so the loop keeps
  serving other probes (it waits at most the interpreter's switch interval for the GIL); the
  step's deadline is checked between paths, and a run cut meanwhile stops the rest.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from jsonpath_ng import JSONPath

MAX_VALUES = 200_000  # json.loads in C: ~20 ms for 1 MiB
MAX_SCANNED_VALUES = 2_000  # jsonpath-ng: ~5 µs a value per scanning path (bench/results/hostile.md)
SCANS = re.compile(
    r"\.\.|\*|\?|:|`|\[[/\\]"
)  # in str(JSONPath): descent, wildcard, filter, slice, function, sort
INLINE_BYTES = 4096
WORKERS = 2

_pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="pitwall-jsonpath")


class JsonProblem(Exception):
    """The body cannot be judged by JSONPath; the message is the step's reason."""


@dataclass(frozen=True, slots=True)
class Found:
    found: bool
    value: Any = None  # the first match


def find_all(
    body: bytes, paths: Sequence[JSONPath], *, deadline: float, cancelled: threading.Event | None = None
) -> list[Found]:
    """The first match of each path in ``body`` (raises ``JsonProblem``)."""
    estimate = body.count(b",") + body.count(b"[") + body.count(b"{") + 1
    if estimate > MAX_VALUES:
        raise JsonProblem(
            f"response JSON has more than {MAX_VALUES} values; JSONPath expectations are "
            "evaluated on smaller documents"
        )
    scanning = [str(path) for path in paths if SCANS.search(str(path))]
    if scanning and estimate > MAX_SCANNED_VALUES:
        raise JsonProblem(
            f"response JSON has more than {MAX_SCANNED_VALUES} values, too many for {scanning[0]} "
            "(.., *, filters, slices and sorting visit every value); select the value by its "
            "path instead"
        )
    try:
        document = json.loads(body)
    except RecursionError:
        raise JsonProblem("response JSON is nested too deeply") from None
    except ValueError:
        raise JsonProblem("response is not JSON") from None
    out = []
    for path in paths:
        if time.monotonic() > deadline or (cancelled is not None and cancelled.is_set()):
            raise JsonProblem("JSONPath evaluation ran out of time")
        try:
            matches = path.find(document)
        except RecursionError:
            raise JsonProblem("response JSON is nested too deeply") from None
        except Exception as exc:  # jsonpath-ng on values it did not expect (sorting mixed types ...)
            raise JsonProblem(f"{path} cannot be evaluated on this response ({type(exc).__name__})") from None
        out.append(Found(True, matches[0].value) if matches else Found(False))
    return out


async def find(body: bytes, paths: Sequence[JSONPath], *, budget: float) -> list[Found]:
    """``find_all`` within ``budget`` seconds: inline for small bodies, else on the pool."""
    deadline = time.monotonic() + budget
    if len(body) <= INLINE_BYTES:
        return find_all(body, paths, deadline=deadline)
    cancelled = threading.Event()
    try:
        return await asyncio.get_running_loop().run_in_executor(
            _pool, partial(find_all, body, paths, deadline=deadline, cancelled=cancelled)
        )
    finally:
        cancelled.set()  # cut (the run's deadline) or done: the worker stops at the next path
