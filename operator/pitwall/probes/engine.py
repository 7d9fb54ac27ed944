"""Run a check once: its steps in order, with interpolation, captures and expectations.

``run_check`` returns a ``RunResult`` for every run that reached a verdict about the target,
pass or fail. It raises ``InvalidSpec`` when the check cannot run at all (a missing Secret, a
target the address policy denies, no target): that is the probe's fault, not the target's, so
the caller marks the probe Stalled instead of counting a failure.

Secrets never reach the result: every value read from a Secret, and every captured value whose
name looks like a credential, is masked in URLs, reasons and the step log.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
import re
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from .. import durations, egress
from ..errors import InvalidSpec
from ..masking import MASK, Masker
from . import document
from .decode import BodyTooLarge, BoundedDecoder, DecompressionBomb, Undecodable
from .document import Found, JsonProblem
from .spec import REFERENCE, SECRET, Capture, Check, Expect, JsonExpect, Request, Step, join

Secrets = Callable[[str, str], Awaitable[str | None]]

_log = logging.getLogger("pitwall.probes.engine")

MAX_REASON = 300  # characters of a library's error message kept in a reason
MAX_BODY = 1024 * 1024  # bytes read from a response; enough for any health or API answer
MAX_RATIO = 200  # decoded bytes per received byte past which a compressed body is a bomb (decode.py)
USER_AGENT = "pitwall-probe/0.1"
SENSITIVE = re.compile(r"token|passw|secret|key|auth|cookie|session|credential|bearer", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class StepLog:
    """One request as the CLI prints it and metrics label it (per step). Secrets are masked."""

    name: str
    method: str
    url: str
    correlation_id: str
    status: int | None = None
    latency_ms: float | None = None
    captured: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""  # empty when the step passed
    internal: bool = False  # failed on an unforeseen exception inside Pitwall (counted, logged)

    @property
    def ok(self) -> bool:
        return not self.reason


@dataclass(frozen=True, slots=True)
class RunResult:
    at: datetime
    trace_id: str
    steps: tuple[StepLog, ...]

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def latency_ms(self) -> float:
        """Time spent in requests, summed over the steps that ran."""
        return round(sum(step.latency_ms or 0.0 for step in self.steps), 1)

    @property
    def internal(self) -> bool:
        """A step failed on an unforeseen exception inside Pitwall (a bug to count and fix)."""
        return any(step.internal for step in self.steps)

    @property
    def failure(self) -> StepLog | None:
        return next((step for step in self.steps if not step.ok), None)

    @property
    def correlation_id(self) -> str:
        """The failing request's id, else the last request's: the one to search the API's logs for."""
        return (self.failure or self.steps[-1]).correlation_id

    def last_run(self) -> dict:
        """``status.lastRun``."""
        return {
            "at": durations.rfc3339(self.at),
            "result": "Success" if self.ok else "Failure",
            "latencyMs": self.latency_ms,
            "correlationId": self.correlation_id,
        }

    def last_failure(self) -> dict | None:
        """``status.lastFailure`` for a failed run, else None (keep the previous one)."""
        failed = self.failure
        if failed is None:
            return None
        out: dict[str, Any] = {
            "at": durations.rfc3339(self.at),
            "step": failed.name,
            "reason": failed.reason,
            "correlationId": failed.correlation_id,
        }
        if failed.status is not None:
            out["httpStatus"] = failed.status
        return out


async def run_check(
    check: Check, *, client: httpx.AsyncClient, secrets: Secrets, base_url: str | None = None
) -> RunResult:
    """Run ``check`` once against ``base_url`` (default: ``check.target``).

    Each request is cut at ``check.timeout`` and the whole run at ``check.run_timeout``. The
    address policy lives in the client (``client.make_client``); its refusal surfaces here as
    ``InvalidSpec("TargetDenied")``.
    """
    run = _Run(check, client, secrets, base_url or check.target)
    try:
        async with asyncio.timeout(check.run_timeout):
            for step in check.steps:
                log = await run.step(step)
                if not log.ok:
                    break
    except TimeoutError:
        run.cut()
    except InvalidSpec as exc:  # e.g. a denied host built from a secret: Stalled, masked
        exc.message = run.mask(exc.message)
        exc.args = (exc.message,)
        raise
    except Exception as exc:  # outside a step's own handling (building a request ...)
        _log_unexpected(exc)
        run.fail(exc)
    return RunResult(at=run.at, trace_id=run.trace_id, steps=tuple(run.logs))


def new_uuid() -> str:
    """A version 4 UUID's text, as ``str(uuid.uuid4())`` but from ``random`` (reseeded in a
    forked child) instead of a ``getrandom`` call and a ``UUID`` object each: two per check
    were ~2.5% of the operator's CPU at 500 checks a second (issue 18). Correlation and trace
    ids must be unique, not secret."""
    n = random.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48) | (4 << 76) | (0x8000 << 48)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _hex(bits: int) -> str:
    """A random id of ``bits`` bits in lowercase hex (W3C trace and span ids)."""
    return f"{random.getrandbits(bits):0{bits // 4}x}"


def _log_unexpected(exc: BaseException) -> None:
    """Where it happened, not the traceback: an exception's text may quote a secret (the reason
    carries its masked text)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name}"
        if frames
        else ""
    )
    _log.warning("unexpected %s in a check%s", type(exc).__name__, where)


def failed_result(check: Check, reason: str) -> RunResult:
    """A run that failed before or around its first request, for an unforeseen exception."""
    step = check.steps[0]
    log = StepLog(step.name, step.request.method, "", new_uuid(), reason=reason, internal=True)
    return RunResult(at=durations.now(), trace_id=_hex(128), steps=(log,))


class _Run:
    """The state one run carries from step to step: variables, secrets read, the step log."""

    def __init__(self, check: Check, client: httpx.AsyncClient, secrets: Secrets, target: str | None):
        self.check = check
        self.client = client
        self.secrets = secrets
        self.target = target
        self.at = durations.now()
        self.trace_id = _hex(128)
        self.variables: dict[str, Any] = {}
        self.secret_values: dict[tuple[str, str], str] = {}
        self.masked = Masker()  # secrets never to print, in any encoding (masking.py)
        self.logs: list[StepLog] = []
        self.pending: _Pending | None = None  # the step in flight, for a run cut by its deadline

    async def step(self, step: Step) -> StepLog:
        pending = self.pending = _Pending(step, new_uuid(), time.perf_counter())
        request = await self.build(step, pending.correlation_id)
        pending.url = self.display_url(request.url, static=_static(step.request) and not step.request.query)
        status, latency, internal = None, None, False
        captured: dict[str, str] = {}
        try:
            async with asyncio.timeout(self.check.timeout):
                response = await self.client.send(
                    request, stream=True, follow_redirects=self.check.follow_redirects
                )
                status = response.status_code
                try:
                    body = await _read(response)
                finally:
                    await response.aclose()
                    egress.unbind(response)
            latency = (time.perf_counter() - pending.started) * 1000
            reason = body.problem or await self.judge(step, response, body, latency, captured)
        except TimeoutError:
            reason = f"timed out after {durations.format(self.check.timeout)}"
        except httpx.TimeoutException as exc:
            reason = f"timed out after {durations.format(self.check.timeout)} ({type(exc).__name__})"
        except httpx.ConnectError as exc:
            reason = f"cannot connect to {request.url.host}: {_describe(exc)}"
        except httpx.HTTPError as exc:
            reason = _describe(exc)
        except InvalidSpec:
            raise
        except Exception as exc:  # every check ends in a verdict, never a traceback per run
            # Unforeseen (a library's error on odd input, a bug): the run fails with a reason and
            # the monitor counts it, instead of the probe waiting for results forever.
            reason, internal = f"the check failed inside Pitwall: {_describe(exc)}"[:MAX_REASON], True
            _log_unexpected(exc)
        self.pending = None
        log = pending.log(
            status=status, latency_ms=latency, captured=captured, reason=self.mask(reason), internal=internal
        )
        self.logs.append(log)
        return log

    def fail(self, exc: Exception) -> None:
        """An unforeseen exception outside a request: the step it happened in is the failure."""
        pending = self.pending or _Pending(
            self.check.steps[len(self.logs)]
            if len(self.logs) < len(self.check.steps)
            else self.check.steps[-1],
            new_uuid(),
            time.perf_counter(),
        )
        reason = f"the check failed inside Pitwall: {_describe(exc)}"[:MAX_REASON]
        self.logs.append(pending.log(reason=self.mask(reason), internal=True))
        self.pending = None

    def cut(self) -> None:
        """The run deadline hit during a step: that step is the failure."""
        if self.pending is not None:
            reason = f"run exceeded {durations.format(self.check.run_timeout)}"
            self.logs.append(self.pending.log(reason=reason))

    async def build(self, step: Step, correlation_id: str) -> httpx.Request:
        spec = step.request
        if spec.url:
            url = await self.render(spec.url)
        elif self.target:
            url = join(self.target, await self.render(spec.path)) if spec.path else self.target
        else:
            raise InvalidSpec("NoTarget", f"step {step.name!r} has no url and the target is not resolved yet")
        try:
            # Bytes, as httpx.Headers would encode them (names are RFC 9110 tokens: spec.py).
            headers = [(k.encode(), (await self.render(v)).encode("ascii")) for k, v in spec.headers.items()]
        except UnicodeError as exc:
            raise InvalidSpec(
                "InvalidHeader",
                f"step {step.name!r}: a header value is not ASCII once interpolated ({type(exc).__name__})",
            ) from None
        names = {name.lower() for name, _ in headers}
        if b"x-correlation-id" in names or b"traceparent" in names:  # ours, whatever the spec says
            headers = [h for h in headers if h[0].lower() not in (b"x-correlation-id", b"traceparent")]
        if b"user-agent" not in names:
            headers.append((b"User-Agent", USER_AGENT.encode()))
        if b"accept-encoding" not in names:
            headers.append((b"Accept-Encoding", b"gzip, deflate"))  # what decode.py decodes, bounded
        headers.append((b"X-Correlation-ID", correlation_id.encode()))
        span = _hex(64)  # a new span per request
        headers.append((b"traceparent", f"00-{self.trace_id}-{span}-01".encode()))
        try:
            return httpx.Request(
                spec.method,
                _parsed(url) if _static(spec) else url,
                headers=headers,
                params={k: await self.render(v) for k, v in spec.query.items()} or None,
                content=await self.render(spec.body) if spec.body is not None else None,
                data={k: await self.render(v) for k, v in spec.form.items()}
                if spec.form is not None
                else None,
                json=await self.render_json(spec.json) if spec.json is not None else None,
                # The client's own timeouts must not cut earlier than the check's; reading is
                # bounded by the step's own deadline (``step``), so no second timer per read.
                extensions={"timeout": _timeouts(self.check.timeout)},
            )
        except httpx.InvalidURL as exc:
            raise InvalidSpec("InvalidURL", f"step {step.name!r}: {self.mask(str(exc))}") from None
        except (UnicodeError, ValueError, TypeError) as exc:  # e.g. a json body that cannot be encoded
            raise InvalidSpec(
                "InvalidRequest", f"step {step.name!r}: the request cannot be built ({type(exc).__name__})"
            ) from None

    async def render(self, text: str) -> str:
        """Interpolate ``${var}`` and ``${secret:name/key}``."""
        parts, pos = [], 0
        for match in REFERENCE.finditer(text):
            parts += [text[pos : match.start()], _text(await self.lookup(match.group(1)))]
            pos = match.end()
        return "".join(parts) + text[pos:] if parts else text

    async def render_json(self, value: Any) -> Any:
        """Like ``render`` on every string; a string that is a single ``${var}`` keeps the
        captured value's JSON type (``"${accountId}"`` can stay a number)."""
        if isinstance(value, str):
            whole = REFERENCE.fullmatch(value)
            return await self.lookup(whole.group(1)) if whole else await self.render(value)
        if isinstance(value, Mapping):
            return {k: await self.render_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [await self.render_json(v) for v in value]
        return value

    async def lookup(self, reference: str) -> Any:
        secret = SECRET.fullmatch(reference)
        if not secret:
            return self.variables[reference]  # spec parsing guarantees an earlier capture
        key = (secret.group(1), secret.group(3))
        if key not in self.secret_values:
            value = await self.secrets(*key)
            if value is None:
                raise InvalidSpec(
                    "SecretNotFound", f"Secret {key[0]!r} has no key {key[1]!r} (or does not exist)"
                )
            self.secret_values[key] = value
            self.masked.add(value)
        return self.secret_values[key]

    async def judge(
        self, step: Step, response: httpx.Response, body: _Body, latency_ms: float, shown: dict[str, str]
    ) -> str:
        """The first unmet expectation, else capture; return the reason ("" when the step passed)."""
        expect = step.expect
        reason = _verify_response(expect, response, latency_ms, self.mask)
        if reason:
            return reason
        paths = [rule.compiled for rule in expect.json] + [
            c.compiled for c in step.capture if c.compiled is not None
        ]
        found: list[Found] = []
        if paths:
            if not body.complete:
                problem = body.too_large()
            else:
                try:
                    found, problem = await document.find(body.data, paths, budget=self.check.timeout), ""
                except JsonProblem as exc:
                    problem = str(exc)
            if problem:
                first = next((c.var for c in step.capture if c.path is not None), None)
                return problem if expect.json or first is None else f"capture {first}: {problem}"
        return (
            _verify_json(expect.json, found[: len(expect.json)], self.mask)
            or _verify_body(expect, response, body)
            or self.capture(step.capture, response, found[len(expect.json) :], shown)
        )

    def capture(
        self,
        captures: tuple[Capture, ...],
        response: httpx.Response,
        found: list[Found],
        shown: dict[str, str],
    ) -> str:
        """Store captured variables; return the reason when one cannot be captured."""
        json_found = iter(found)
        for cap in captures:
            if cap.header is not None:
                if cap.header not in response.headers:
                    return f"capture {cap.var}: header {cap.header} is missing"
                value: Any = response.headers[cap.header]
            else:
                match = next(json_found)
                if not match.found:
                    return f"capture {cap.var}: {cap.path} not found in the response"
                value = match.value
            self.variables[cap.var] = value
            text = _text(value)
            if SENSITIVE.search(cap.var) or any(secret in text for secret in self.secret_values.values()):
                self.masked.add(text)
            shown[cap.var] = _clip(self.mask(text))
        return ""

    def mask(self, text: str) -> str:
        return self.masked(text)

    def display_url(self, url: httpx.URL, *, static: bool = False) -> str:
        """The URL for people: decoded (so masking sees values as they were interpolated), without
        the userinfo password, values of credential-like query parameters, or secrets. A
        ``static`` URL (nothing interpolated) is the same on every run: shown from a cache."""
        return self.mask(_shown_static(url) if static else _shown(url))


@dataclass(slots=True)
class _Pending:
    step: Step
    correlation_id: str
    started: float
    url: str = ""

    def log(
        self,
        *,
        status: int | None = None,
        latency_ms: float | None = None,
        captured: Mapping[str, str] | None = None,
        reason: str = "",
        internal: bool = False,
    ) -> StepLog:
        if latency_ms is None:
            latency_ms = (time.perf_counter() - self.started) * 1000
        return StepLog(
            self.step.name,
            self.step.request.method,
            self.url,
            self.correlation_id,
            status,
            round(latency_ms, 1),
            dict(captured or {}),
            reason,
            internal,
        )


@dataclass(frozen=True, slots=True)
class _Body:
    data: bytes
    complete: bool  # the whole body (else the first MAX_BODY bytes)
    encoded: bool = False  # it came with a Content-Encoding Pitwall decoded
    problem: str = ""  # a failure whatever the check reads (a decompression bomb, bad gzip)

    def too_large(self) -> str:
        return f"response body larger than 1 MiB{' after decoding' if self.encoded else ''}"


async def _read(response: httpx.Response) -> _Body:
    """At most ``MAX_BODY`` decoded bytes, decoded here with every Content-Encoding layer capped
    while it streams (``decode``), never by httpx, which caps nothing."""
    try:
        decoder = BoundedDecoder(response.headers.get("content-encoding"), limit=MAX_BODY, ratio=MAX_RATIO)
    except DecompressionBomb as exc:
        return _Body(b"", False, True, str(exc))
    chunks, received = [], 0
    # The lean transport hands over a body that has all arrived (most answers to a check) at
    # once: the same bytes without iterating three async layers per check (issue 18).
    arrived = getattr(response.stream, "arrived", None)
    ready = arrived() if arrived is not None and not response.is_stream_consumed else None
    try:
        async for raw in _listed(ready) if ready is not None else response.aiter_raw():
            received += len(raw)
            chunks.append(decoder.feed(raw))
            if received > MAX_BODY:
                return _Body(b"".join(chunks)[:MAX_BODY], False, decoder.encoded)
        return _Body(b"".join(chunks), True, decoder.encoded)
    except DecompressionBomb as exc:
        return _Body(b"", False, True, str(exc))
    except BodyTooLarge:
        return _Body(b"".join(chunks)[:MAX_BODY], False, decoder.encoded)
    except Undecodable as exc:
        return _Body(b"", False, True, str(exc))


async def _listed(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _static(spec: Request) -> bool:
    """Whether the request's URL is the same on every run (no ``${...}`` in its url or path)."""
    return "${" not in (spec.url or "") and "${" not in (spec.path or "")


@functools.lru_cache(maxsize=4096)
def _parsed(url: str) -> httpx.URL:
    """A static URL parsed once (httpx's parser is pure Python: ~8% of a plain check);
    ``httpx.URL`` is immutable, so requests can share it."""
    return httpx.URL(url)


@functools.lru_cache(maxsize=64)
def _timeouts(seconds: float) -> dict[str, float | None]:
    """httpx's per-request timeouts (read only by the transports): connecting and waiting for a
    pooled connection at the check's timeout; reading and writing unbounded there, because
    ``_Run.step`` cuts the whole request at the same timeout (two timers a check fewer: at 500
    checks a second their creation and cancellation were ~3% of the operator's CPU, issue 18)."""
    return httpx.Timeout(seconds, read=None, write=None).as_dict()


def _shown(url: httpx.URL) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host
    userinfo = f"{url.username}:{MASK}@" if url.password else f"{url.username}@" if url.username else ""
    shown = f"{url.scheme}://{userinfo}{host}{f':{url.port}' if url.port else ''}{url.path}"
    if url.params:
        shown += "?" + "&".join(
            f"{k}={MASK if SENSITIVE.search(k) else v}" for k, v in url.params.multi_items()
        )
    return shown


_shown_static = functools.lru_cache(maxsize=4096)(_shown)


def _verify_response(
    expect: Expect, response: httpx.Response, latency_ms: float, mask: Callable[[str], str]
) -> str:
    """Status, latency and headers: the first unmet, in the order a person debugging would want."""
    if response.status_code not in expect.status:
        wanted = " or ".join(str(s) for s in expect.status)
        return f"status {response.status_code}, expected {wanted}"
    if expect.max_latency is not None and latency_ms > expect.max_latency * 1000:
        return f"latency {latency_ms:.0f}ms, expected at most {durations.format(expect.max_latency)}"
    for header in expect.headers:
        value = response.headers.get(header.name)
        if value is None and header.present:
            return f"header {header.name} is missing"
        if value is not None and not header.present:
            return f"header {header.name} is present, expected absent"
        if value is not None and header.matches and not header.matches.search(value):
            return f"header {header.name} {_show(value, header.name, mask)} does not match {header.matches.pattern!r}"
    return ""


def _verify_json(rules: tuple[JsonExpect, ...], found: list[Found], mask: Callable[[str], str]) -> str:
    for rule, match in zip(rules, found, strict=True):
        if not match.found:
            if rule.exists:
                return f"{rule.path} does not exist"
            continue
        if not rule.exists:
            return f"{rule.path} exists, expected absent"
        if rule.has_equals and not _equal(match.value, rule.equals):
            return (
                f"{rule.path} is {_show(match.value, rule.path, mask)}, expected {_clip(repr(rule.equals))}"
            )
        if rule.matches and not rule.matches.search(_text(match.value)):
            return f"{rule.path} is {_show(match.value, rule.path, mask)}, does not match {rule.matches.pattern!r}"
    return ""


def _verify_body(expect: Expect, response: httpx.Response, body: _Body) -> str:
    if expect.body_contains is None and expect.body_regex is None:
        return ""
    if not body.complete:
        return body.too_large()
    text = body.data.decode(response.charset_encoding or "utf-8", errors="replace")
    if expect.body_contains is not None and expect.body_contains not in text:
        return f"body does not contain {_clip(repr(expect.body_contains))}"
    if expect.body_regex is not None and not expect.body_regex.search(text):
        return f"body does not match {_clip(repr(expect.body_regex.pattern))}"
    return ""


def _equal(actual: Any, expected: Any) -> bool:
    """YAML authors write ``equals: "42"`` for a JSON 42 and ``equals: true`` for "true"."""
    return actual == expected or _text(actual) == _text(expected)


def _describe(exc: Exception) -> str:
    """httpx errors often carry no message (a TLS peer hanging up): keep at least their kind."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _show(value: Any, name: str, mask: Callable[[str], str]) -> str:
    """A response value for a reason, unless it is named like a credential; masked before it is
    clipped, so a clip never cuts a secret in two and shows half of it."""
    return MASK if SENSITIVE.search(name) else _clip(mask(repr(value)))


def _clip(text: str, limit: int = 120) -> str:
    """A reason quotes at most ``limit`` characters of a value (a status field, not a dump)."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"
