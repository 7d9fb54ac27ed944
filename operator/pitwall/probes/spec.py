"""Compile a Probe spec (or a Backend's Probe-shaped ``health`` block) into frozen dataclasses.

The spec is first validated through its API model (``api.probe.ProbeSpec``, or the Backend's
``api.backend.Health``): types, enums, bounds and defaults are the model's, the same the CRD
generated from it states. The model is then compiled into what the engine runs.

The CRD schema already refuses most bad input at admission. What it cannot judge is checked
here, once, when the spec changes, so a probe that can never run is ``Stalled`` with a reason
instead of failing on every run: JSONPath and regex syntax, capture expressions, and
``${var}`` references to variables no earlier step captures; and the CEL rules of the schema
(pydantic does not run them: a spec admitted before a rule existed must still be refused
readably). The model applies the defaults, because a spec read from the API server may predate
a default added to the schema.

What a check may cost is bounded here too, because one team's Probe must cost other teams
nothing (README, "Bounded checks"):

- ``interval`` and ``timeout`` have floors (``MIN_INTERVAL``, ``MIN_TIMEOUT``; an operator may
  raise the interval floor) and ``timeout`` <= ``interval``, so nothing below them reaches the
  scheduler, which divides by the interval.
- Every user regex is compiled with RE2 (``google-re2``), whose matching time is linear in the
  input: no pattern can stall the event loop. Patterns RE2 cannot compile (backreferences,
  lookaround) are refused.
- JSONPath expressions may hold one recursive descent (``..``) at most, and no regex
  (``=~``, `` `sub()` ``: those would run on Python's backtracking engine). jsonpath-ng's parser
  is slow (~10 µs a character), so a check's JSONPaths total at most ``MAX_JSONPATH_CHARS`` and
  parsed expressions are cached by text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2
from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext import parse as parse_jsonpath

from .. import durations, floors
from ..api import check as model
from ..api.backend import Health
from ..api.base import default_of, parse
from ..api.probe import ProbeSpec
from ..errors import InvalidSpec
from ..vocabulary import SecretRef

# Defaults come from the API model (the CRD says the same); the engine's own: an unset timeout
# is DEFAULT_TIMEOUT or the interval, whichever is shorter; no steps is one GET named "check".
DEFAULT_INTERVAL = durations.parse(default_of(model.Check, "interval"))
DEFAULT_TIMEOUT = durations.parse(model.DEFAULT_TIMEOUT)
DEFAULT_STEP = "check"
RUN_SLACK = 1.0  # seconds
# Floors on the durations that drive work (seconds). The admission schema states the same
# minimums; these defend the scheduler again for specs admitted before them.
MIN_INTERVAL = 1.0
MIN_TIMEOUT = 0.1
MAX_JSONPATH_DESCENTS = 1
MAX_JSONPATH_CHARS = 4096  # all JSONPaths of one check together: ~40 ms to parse

# RE2: linear-time matching; compile errors are returned, not logged to stderr by the C++ side.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False

# ${name} or ${secret:name/key}; anything else between ${ and } is refused at parse time.
REFERENCE = re.compile(r"\$\{([^}]*)\}")
VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRET = re.compile(r"secret:([a-z0-9]([-a-z0-9.]*[a-z0-9])?)/([-._a-zA-Z0-9]+)")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")  # what every server accepts


Regex = Any  # a compiled RE2 pattern (``re2._Regexp``): search(), pattern


@dataclass(frozen=True, slots=True)
class Tls:
    insecure_skip_verify: bool
    ca: SecretRef | None = None
    client_cert: str | None = None  # a kubernetes.io/tls Secret (tls.crt, tls.key)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str | None = None  # absolute; may contain references
    path: str | None = None  # relative to the target
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    json: Any = None
    form: Mapping[str, str] | None = None

    def templates(self) -> Iterator[str]:
        """Every string that is interpolated before sending."""
        for value in (self.url, self.path, self.body):
            if value is not None:
                yield value
        yield from self.headers.values()
        yield from self.query.values()
        yield from (self.form or {}).values()
        yield from _strings(self.json)


@dataclass(frozen=True, slots=True)
class JsonExpect:
    path: str
    compiled: JSONPath = field(compare=False, repr=False)
    exists: bool = True
    equals: Any = None
    has_equals: bool = False  # ``equals: null`` (expect a JSON null) is a real expectation
    matches: Regex | None = None


@dataclass(frozen=True, slots=True)
class HeaderExpect:
    name: str
    present: bool = True
    matches: Regex | None = None


@dataclass(frozen=True, slots=True)
class Expect:
    status: tuple[int, ...]
    max_latency: float | None = None  # seconds
    json: tuple[JsonExpect, ...] = ()
    headers: tuple[HeaderExpect, ...] = ()
    body_contains: str | None = None
    body_regex: Regex | None = None


@dataclass(frozen=True, slots=True)
class Capture:
    var: str
    header: str | None = None  # ``header:Name``
    path: str | None = None  # a JSONPath
    compiled: JSONPath | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    request: Request
    expect: Expect
    capture: tuple[Capture, ...] = ()


@dataclass(frozen=True, slots=True)
class Check:
    """One runnable check: a Probe spec or a Backend's ``health`` block, compiled.

    No defaults here: they are the API model's, applied when the spec is validated."""

    target: str | None  # None until an ApiProduct target is resolved
    steps: tuple[Step, ...]
    interval: float
    timeout: float  # per request
    failure_threshold: int
    success_threshold: int
    paused: bool
    follow_redirects: bool
    proxy: str | None
    tls: Tls
    check_maintenance_page: bool

    @property
    def run_timeout(self) -> float:
        """The whole run is cut here, so a slow flow cannot outlive its share of the schedule.

        Every request is cut at ``timeout`` on its own; the slack keeps that per-request cut
        the one that reports a slow target, and bounds what happens between requests (Secret
        reads).
        """
        return self.timeout * len(self.steps) + RUN_SLACK

    @property
    def secret_names(self) -> frozenset[str]:
        """Secrets this check reads (to re-run or un-stall it when one of them changes)."""
        names = {
            ref.name for step in self.steps for text in step.request.templates() for ref in secret_refs(text)
        }
        if self.tls.ca:
            names.add(self.tls.ca.name)
        if self.tls.client_cert:
            names.add(self.tls.client_cert)
        return frozenset(names)


Spec = Mapping[str, Any] | model.Check


def parse_check(spec: Spec, *, base_url: str | None = None, min_interval: float | None = None) -> Check:
    """Validate ``spec`` and compile it for the engine.

    ``spec`` is a Probe's spec as stored (validated here through ``ProbeSpec``: what does not
    fit is ``InvalidSpec`` naming the field), or a model validated already (a Backend's
    ``Health``). ``base_url`` is the resolved target (an ApiProduct version's URL); without it
    the target is ``target.url`` (Probe) or ``url`` (Backend health). A check whose steps need
    a target but has none and no ApiProduct to resolve is refused. ``min_interval`` is the
    operator's floor (never below ``MIN_INTERVAL``).
    """
    checked = spec if isinstance(spec, model.Check) else parse(ProbeSpec, spec)
    try:
        return _compile(checked, base_url, min_interval)
    except InvalidSpec:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        # The model admits only well-shaped specs; a free-form part (a request's json nested
        # deeper than Python recurses) may still surprise: refuse it readably, never crash.
        raise InvalidSpec("InvalidSpec", f"the spec cannot be read ({type(exc).__name__}: {exc})") from exc


def _compile(spec: model.Check, base_url: str | None, min_interval: float | None) -> Check:
    product = False
    own: str | None = None
    if isinstance(spec, ProbeSpec):
        own, product = spec.target.url, spec.target.api_product is not None
    elif isinstance(spec, Health):
        own = spec.url
    target = base_url or own
    if target:
        _require_http(target, "the target URL")
    raw_steps = spec.steps or []
    _check_jsonpath_budget(raw_steps)
    steps = compile_steps(raw_steps)
    if not target and not product:
        relative = [s.name for s in steps if not s.request.url]
        if relative:
            raise InvalidSpec("NoTarget", f"step {relative[0]!r} has no url and the check has no target")
    tls = spec.tls or model.Tls()
    ca = tls.ca_secret_ref
    interval, timeout = _schedule(spec, max(MIN_INTERVAL, min_interval or 0.0))
    return Check(
        target=target,
        steps=steps,
        interval=interval,
        timeout=timeout,
        failure_threshold=spec.failure_threshold,
        success_threshold=spec.success_threshold,
        paused=spec.paused if isinstance(spec, ProbeSpec) else False,  # a Backend cannot be paused
        follow_redirects=spec.follow_redirects,
        proxy=spec.proxy or None,
        tls=Tls(
            insecure_skip_verify=tls.insecure_skip_verify,
            ca=SecretRef(ca.name, ca.key) if ca else None,
            client_cert=tls.client_cert_secret_ref.name if tls.client_cert_secret_ref else None,
        ),
        check_maintenance_page=spec.check_maintenance_page if isinstance(spec, ProbeSpec) else False,
    )


def _schedule(spec: model.Check, floor: float) -> tuple[float, float]:
    """``interval`` and ``timeout`` within their floors; an unset timeout fits its interval."""
    interval = _duration(spec.interval, DEFAULT_INTERVAL, "interval")
    if not interval >= floor:  # also NaN
        raise InvalidSpec(
            "IntervalTooShort",
            f"interval {durations.format(interval)} is below the minimum of {durations.format(floor)}",
        )
    if not spec.timeout:
        return interval, min(DEFAULT_TIMEOUT, interval)
    timeout = _duration(spec.timeout, DEFAULT_TIMEOUT, "timeout")
    timeout_floor = max(MIN_TIMEOUT, floors.current().probe_timeout)
    if not timeout >= timeout_floor:
        raise InvalidSpec(
            "TimeoutTooShort",
            f"timeout {durations.format(timeout)} is below the minimum of {durations.format(timeout_floor)}",
        )
    if timeout > interval:
        raise InvalidSpec(
            "TimeoutAboveInterval",
            f"timeout {durations.format(timeout)} is longer than the interval {durations.format(interval)}",
        )
    return interval, timeout


def secret_refs(text: str) -> Iterator[SecretRef]:
    for match in REFERENCE.finditer(text):
        secret = SECRET.fullmatch(match.group(1))
        if secret:
            yield SecretRef(secret.group(1), secret.group(3))


def join(target: str, path: str) -> str:
    """``path`` is appended to the target, so ``/me`` under ``http://svc/payments/v2`` keeps the prefix."""
    return target.rstrip("/") + "/" + path.lstrip("/")


def _check_jsonpath_budget(steps: Sequence[model.Step]) -> None:
    """jsonpath-ng's parser costs ~10 µs a character: the largest spec the schema admits (800
    paths of 512 characters) took 3.5 s. Refuse before parsing any."""
    total = 0
    for step in steps:
        total += sum(len(rule.path) for rule in step.expect.json_ or [])
        total += sum(len(source) for source in (step.capture or {}).values() if source.startswith("$"))
    if total > MAX_JSONPATH_CHARS:
        raise InvalidSpec(
            "SpecTooCostly",
            f"the check's JSONPaths total {total} characters, more than "
            f"{MAX_JSONPATH_CHARS}: shorten or split it into several Probes",
        )


def compile_steps(raw: Sequence[model.Step]) -> tuple[Step, ...]:
    """The steps, checked where the schema's CEL rules and the engine need it; none: the default
    step (one GET on the target, the model's default request and expectations)."""
    return tuple(_compile_steps(raw or [model.Step(name=DEFAULT_STEP)]))


def _compile_steps(raw: Sequence[model.Step]) -> Iterator[Step]:
    seen: set[str] = set()
    captured: set[str] = set()
    for item in raw:
        name = item.name
        if name in seen:  # a CEL rule of the schema; pydantic does not run those
            raise InvalidSpec("InvalidStep", f"step names must be unique ({name!r} is used twice)")
        seen.add(name)
        request = _compile_request(name, item.request)
        for text in request.templates():
            _check_references(name, text, captured)
        step = Step(
            name,
            request,
            _compile_expect(name, item.expect),
            tuple(_compile_captures(name, item.capture or {})),
        )
        captured.update(c.var for c in step.capture)
        yield step


def _compile_request(step: str, raw: model.Request) -> Request:
    # The schema's CEL rules (url or path; one body), checked again: pydantic does not run them.
    if raw.url and raw.path:
        raise InvalidSpec("InvalidStep", f"step {step!r}: set url or path, not both")
    bodies = [k for k, v in (("body", raw.body), ("json", raw.json_), ("form", raw.form)) if v is not None]
    if len(bodies) > 1:
        raise InvalidSpec("InvalidStep", f"step {step!r}: set only one of body, json, form (got {bodies})")
    url = raw.url
    if url and not url.startswith("${"):  # a fully interpolated URL is checked when it is sent
        _require_http(url, f"step {step!r}: url")
    headers = dict(raw.headers or {})
    for header, value in headers.items():
        if not HEADER_NAME.fullmatch(header):
            raise InvalidSpec("InvalidHeader", f"step {step!r}: {header!r} is not a valid HTTP header name")
        if not HEADER_VALUE.fullmatch(REFERENCE.sub("", value)):
            raise InvalidSpec(
                "InvalidHeader",
                f"step {step!r}: header {header} may hold only printable ASCII characters (no line breaks)",
            )
    return Request(
        method=raw.method,
        url=url,
        path=raw.path,
        headers=headers,
        query=dict(raw.query or {}),
        body=raw.body,
        json=raw.json_,
        form=dict(raw.form) if raw.form is not None else None,
    )


def _compile_expect(step: str, raw: model.Expect) -> Expect:
    body = raw.body or model.BodyExpect()
    latency = raw.max_latency
    return Expect(
        status=tuple(raw.status),
        max_latency=_duration(latency, None, f"step {step!r}: maxLatency") if latency else None,
        json=tuple(_compile_json_expect(step, j) for j in raw.json_ or []),
        headers=tuple(
            HeaderExpect(
                h.name,
                True if h.present is None else h.present,
                _regex(step, h.matches, f"header {h.name}"),
            )
            for h in raw.headers or []
        ),
        body_contains=body.contains,
        body_regex=_regex(step, body.regex, "body"),
    )


def _compile_json_expect(step: str, raw: model.JsonExpect) -> JsonExpect:
    return JsonExpect(
        path=raw.path,
        compiled=_jsonpath(step, raw.path, f"expect.json {raw.path!r}"),
        exists=True if raw.exists is None else raw.exists,
        equals=raw.equals,
        # Both read None from the model: only the fields set tell `equals: null` (the value
        # must be JSON null) from no `equals` at all.
        has_equals="equals" in raw.model_fields_set,
        matches=_regex(step, raw.matches, raw.path),
    )


def _compile_captures(step: str, raw: Mapping[str, str]) -> Iterator[Capture]:
    for var, source in raw.items():
        if not VARIABLE.fullmatch(var):  # a CEL rule of the schema
            raise InvalidSpec("InvalidCapture", f"step {step!r}: {var!r} is not a valid variable name")
        if source.startswith("header:") and source[len("header:") :].strip():
            yield Capture(var, header=source[len("header:") :].strip())
        elif source.startswith("$"):
            yield Capture(var, path=source, compiled=_jsonpath(step, source, f"capture {var!r}"))
        else:
            raise InvalidSpec(
                "InvalidCapture",
                f"step {step!r}: capture {var!r} must be a JSONPath ($.x) or header:Name, got {source!r}",
            )


def _check_references(step: str, text: str, captured: set[str]) -> None:
    for match in REFERENCE.finditer(text):
        inner = match.group(1)
        if SECRET.fullmatch(inner):
            continue
        if not VARIABLE.fullmatch(inner):
            raise InvalidSpec(
                "InvalidReference",
                f"step {step!r}: {match.group(0)} is neither ${{var}} nor ${{secret:name/key}}",
            )
        if inner not in captured:
            raise InvalidSpec(
                "UnknownVariable",
                f"step {step!r} uses {match.group(0)} but no earlier step captures {inner!r}",
            )


def _jsonpath(step: str, path: str, what: str) -> JSONPath:
    if path.count("..") > MAX_JSONPATH_DESCENTS:
        raise InvalidSpec(
            "InvalidJSONPath",
            f"step {step!r}: {what}: use at most one recursive descent (..) "
            "per JSONPath: each one multiplies the work by the size of the response",
        )
    if "=~" in path or "`sub(" in path:
        raise InvalidSpec(
            "InvalidJSONPath",
            f"step {step!r}: {what}: regexes inside a JSONPath (=~, sub) are not "
            "supported; select the value and use `matches` (RE2) instead",
        )
    try:
        return _parse_jsonpath(path)
    except JSONPathError as exc:
        raise InvalidSpec("InvalidJSONPath", f"step {step!r}: {what} is not a valid JSONPath: {exc}") from exc
    except Exception as exc:  # jsonpath-ng raises more than its own errors on odd input
        raise InvalidSpec(
            "InvalidJSONPath", f"step {step!r}: {what} is not a valid JSONPath ({type(exc).__name__})"
        ) from exc


@functools.lru_cache(maxsize=4096)
def _parse_jsonpath(path: str) -> JSONPath:
    """Parsed expressions are immutable and shared: the same path in a thousand Probes parses once."""
    return parse_jsonpath(path)


def compile_regex(pattern: str) -> Regex:
    """A user regex on RE2 (linear time); raises ``ValueError`` with RE2's reason."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        raise ValueError(
            detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
        ) from None


def _regex(step: str, pattern: str | None, what: str) -> Regex | None:
    if pattern is None:
        return None
    try:
        return compile_regex(pattern)
    except ValueError as exc:
        raise InvalidSpec(
            "InvalidRegex",
            f"step {step!r}: {what}: {pattern!r} is not a regex RE2 accepts: {exc} "
            "(RE2 runs in linear time; it has no backreferences or lookaround)",
        ) from None


def _duration(value: str | None, default: float | None, what: str) -> float:
    """The grammar's refusal, as InvalidDuration. The model bounds a duration to 32 characters,
    so what parses is finite and never negative."""
    try:
        return durations.parse(value, default)
    except ValueError as exc:
        raise InvalidSpec("InvalidDuration", f"{what}: {exc}") from exc


def _require_http(url: str, what: str) -> None:
    if not re.match(r"https?://[^/?#]", url):
        raise InvalidSpec("InvalidURL", f"{what} must be an absolute http(s) URL, got {url!r}")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
