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
import json
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from .. import durations
from ..errors import InvalidSpec
from ..masking import MASK, Masker
from .spec import REFERENCE, SECRET, Capture, Check, Expect, Step, join

Secrets = Callable[[str, str], Awaitable[str | None]]

MAX_BODY = 1024 * 1024  # bytes read from a response; enough for any health or API answer
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
    def failure(self) -> StepLog | None:
        return next((step for step in self.steps if not step.ok), None)

    @property
    def correlation_id(self) -> str:
        """The failing request's id, else the last request's: the one to search the API's logs for."""
        return (self.failure or self.steps[-1]).correlation_id

    def last_run(self) -> dict:
        """``status.lastRun``."""
        return {"at": durations.rfc3339(self.at), "result": "Success" if self.ok else "Failure",
                "latencyMs": self.latency_ms, "correlationId": self.correlation_id}

    def last_failure(self) -> dict | None:
        """``status.lastFailure`` for a failed run, else None (keep the previous one)."""
        failed = self.failure
        if failed is None:
            return None
        out = {"at": durations.rfc3339(self.at), "step": failed.name, "reason": failed.reason,
               "correlationId": failed.correlation_id}
        if failed.status is not None:
            out["httpStatus"] = failed.status
        return out


async def run_check(check: Check, *, client: httpx.AsyncClient, secrets: Secrets,
                    base_url: str | None = None) -> RunResult:
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
    except InvalidSpec as exc:     # e.g. a denied host built from a secret: Stalled, masked
        exc.message = run.mask(exc.message)
        exc.args = (exc.message,)
        raise
    return RunResult(at=run.at, trace_id=run.trace_id, steps=tuple(run.logs))


class _Run:
    """The state one run carries from step to step: variables, secrets read, the step log."""

    def __init__(self, check: Check, client: httpx.AsyncClient, secrets: Secrets, target: str | None):
        self.check = check
        self.client = client
        self.secrets = secrets
        self.target = target
        self.at = durations.now()
        self.trace_id = uuid.uuid4().hex
        self.variables: dict[str, Any] = {}
        self.secret_values: dict[tuple[str, str], str] = {}
        self.masked = Masker()  # secrets never to print, in any encoding (masking.py)
        self.logs: list[StepLog] = []
        self.pending: _Pending | None = None  # the step in flight, for a run cut by its deadline

    async def step(self, step: Step) -> StepLog:
        pending = self.pending = _Pending(step, str(uuid.uuid4()), time.perf_counter())
        request = await self.build(step, pending.correlation_id)
        pending.url = self.display_url(request.url)
        status, latency, captured = None, None, {}
        try:
            async with asyncio.timeout(self.check.timeout):
                response = await self.client.send(request, stream=True,
                                                  follow_redirects=self.check.follow_redirects)
                status = response.status_code
                try:
                    body, complete = await _read(response)
                finally:
                    await response.aclose()
            latency = (time.perf_counter() - pending.started) * 1000
            reason = _verify(step.expect, response, body, complete, latency) \
                or self.capture(step.capture, response, body, complete, captured)
        except TimeoutError:
            reason = f"timed out after {durations.format(self.check.timeout)}"
        except httpx.TimeoutException as exc:
            reason = f"timed out after {durations.format(self.check.timeout)} ({type(exc).__name__})"
        except httpx.ConnectError as exc:
            reason = f"cannot connect to {request.url.host}: {_describe(exc)}"
        except httpx.HTTPError as exc:
            reason = _describe(exc)
        self.pending = None
        log = pending.log(status=status, latency_ms=latency, captured=captured, reason=self.mask(reason))
        self.logs.append(log)
        return log

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
        headers = httpx.Headers({k: await self.render(v) for k, v in spec.headers.items()})
        headers.setdefault("User-Agent", USER_AGENT)
        headers["X-Correlation-ID"] = correlation_id
        headers["traceparent"] = f"00-{self.trace_id}-{os.urandom(8).hex()}-01"  # a new span per request
        try:
            return httpx.Request(
                spec.method, url, headers=headers,
                params={k: await self.render(v) for k, v in spec.query.items()} or None,
                content=await self.render(spec.body) if spec.body is not None else None,
                data={k: await self.render(v) for k, v in spec.form.items()} if spec.form is not None else None,
                json=await self.render_json(spec.json) if spec.json is not None else None,
                # The client's own timeouts must not cut earlier than the check's.
                extensions={"timeout": httpx.Timeout(self.check.timeout).as_dict()},
            )
        except httpx.InvalidURL as exc:
            raise InvalidSpec("InvalidURL", f"step {step.name!r}: {self.mask(str(exc))}") from exc

    async def render(self, text: str) -> str:
        """Interpolate ``${var}`` and ``${secret:name/key}``."""
        parts, pos = [], 0
        for match in REFERENCE.finditer(text):
            parts += [text[pos:match.start()], _text(await self.lookup(match.group(1)))]
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
                raise InvalidSpec("SecretNotFound",
                                  f"Secret {key[0]!r} has no key {key[1]!r} (or does not exist)")
            self.secret_values[key] = value
            self.masked.add(value)
        return self.secret_values[key]

    def capture(self, captures: tuple[Capture, ...], response: httpx.Response, body: bytes,
                complete: bool, shown: dict[str, str]) -> str:
        """Store captured variables; return the reason when one cannot be captured."""
        for cap in captures:
            if cap.header is not None:
                if cap.header not in response.headers:
                    return f"capture {cap.var}: header {cap.header} is missing"
                value: Any = response.headers[cap.header]
            else:
                document, problem = _json(body, complete)
                if problem:
                    return f"capture {cap.var}: {problem}"
                found = cap.compiled.find(document)
                if not found:
                    return f"capture {cap.var}: {cap.path} not found in the response"
                value = found[0].value
            self.variables[cap.var] = value
            text = _text(value)
            if SENSITIVE.search(cap.var) or any(secret in text for secret in self.secret_values.values()):
                self.masked.add(text)
            shown[cap.var] = self.mask(text)
        return ""

    def mask(self, text: str) -> str:
        return self.masked(text)

    def display_url(self, url: httpx.URL) -> str:
        """The URL for people: decoded (so masking sees values as they were interpolated), without
        the userinfo password, values of credential-like query parameters, or secrets."""
        host = f"[{url.host}]" if ":" in url.host else url.host
        userinfo = f"{url.username}:{MASK}@" if url.password else f"{url.username}@" if url.username else ""
        shown = f"{url.scheme}://{userinfo}{host}{f':{url.port}' if url.port else ''}{url.path}"
        if url.params:
            shown += "?" + "&".join(f"{k}={MASK if SENSITIVE.search(k) else v}" for k, v in url.params.multi_items())
        return self.mask(shown)


@dataclass(slots=True)
class _Pending:
    step: Step
    correlation_id: str
    started: float
    url: str = ""

    def log(self, *, status: int | None = None, latency_ms: float | None = None,
            captured: Mapping[str, str] | None = None, reason: str = "") -> StepLog:
        if latency_ms is None:
            latency_ms = (time.perf_counter() - self.started) * 1000
        return StepLog(self.step.name, self.step.request.method, self.url, self.correlation_id,
                       status, round(latency_ms, 1), dict(captured or {}), reason)


async def _read(response: httpx.Response) -> tuple[bytes, bool]:
    """At most ``MAX_BODY`` bytes; the flag says whether that was the whole body."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            return b"".join(chunks)[:MAX_BODY], False
    return b"".join(chunks), True


def _verify(expect: Expect, response: httpx.Response, body: bytes, complete: bool, latency_ms: float) -> str:
    """The first unmet expectation, in the order a person debugging would want it."""
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
            return f"header {header.name} {_show(value, header.name)} does not match {header.matches.pattern!r}"
    if expect.json:
        document, problem = _json(body, complete)
        if problem:
            return problem
        for rule in expect.json:
            found = rule.compiled.find(document)
            if not found:
                if rule.exists:
                    return f"{rule.path} does not exist"
                continue
            if not rule.exists:
                return f"{rule.path} exists, expected absent"
            value = found[0].value
            if rule.has_equals and not _equal(value, rule.equals):
                return f"{rule.path} is {_show(value, rule.path)}, expected {rule.equals!r}"
            if rule.matches and not rule.matches.search(_text(value)):
                return f"{rule.path} is {_show(value, rule.path)}, does not match {rule.matches.pattern!r}"
    if expect.body_contains is not None or expect.body_regex is not None:
        if not complete:
            return f"response body is larger than {MAX_BODY} bytes"
        text = body.decode(response.charset_encoding or "utf-8", errors="replace")
        if expect.body_contains is not None and expect.body_contains not in text:
            return f"body does not contain {expect.body_contains!r}"
        if expect.body_regex is not None and not expect.body_regex.search(text):
            return f"body does not match {expect.body_regex.pattern!r}"
    return ""


def _json(body: bytes, complete: bool) -> tuple[Any, str]:
    if not complete:
        return None, f"response body is larger than {MAX_BODY} bytes"
    try:
        return json.loads(body), ""
    except ValueError:
        return None, "response is not JSON"


def _equal(actual: Any, expected: Any) -> bool:
    """YAML authors write ``equals: "42"`` for a JSON 42 and ``equals: true`` for "true"."""
    return actual == expected or _text(actual) == _text(expected)


def _describe(exc: Exception) -> str:
    """httpx errors often carry no message (a TLS peer hanging up): keep at least their kind."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _show(value: Any, name: str) -> str:
    """A response value for a reason, unless it is named like a credential."""
    return MASK if SENSITIVE.search(name) else repr(value)
