"""Parse a Probe spec (or a Backend's Probe-shaped ``health`` block) into frozen dataclasses.

The CRD schema already refuses most bad input at admission. What it cannot judge is checked
here, once, when the spec changes, so a probe that can never run is ``Stalled`` with a reason
instead of failing on every run: JSONPath and regex syntax, capture expressions, and
``${var}`` references to variables no earlier step captures. Defaults are applied here too,
because a spec read from the API server may predate a default added to the schema.

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
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import re2
from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext import parse as parse_jsonpath

from .. import durations, floors
from ..api import check as model
from ..errors import InvalidSpec
from ..vocabulary import SecretRef

# Enums and defaults come from the API model (the CRD says the same).
METHODS = frozenset(model.HTTP_METHODS)
_CHECK = model.Check()
DEFAULT_METHOD: str = model.Request().method
DEFAULT_STATUS: tuple[int, ...] = tuple(model.Expect().status)
DEFAULT_INTERVAL = durations.parse(_CHECK.interval)
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
    insecure_skip_verify: bool = False
    ca: SecretRef | None = None
    client_cert: str | None = None  # a kubernetes.io/tls Secret (tls.crt, tls.key)


@dataclass(frozen=True, slots=True)
class Request:
    method: str = DEFAULT_METHOD
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
    has_equals: bool = False  # ``equals: null`` is a real expectation
    matches: Regex | None = None


@dataclass(frozen=True, slots=True)
class HeaderExpect:
    name: str
    present: bool = True
    matches: Regex | None = None


@dataclass(frozen=True, slots=True)
class Expect:
    status: tuple[int, ...] = DEFAULT_STATUS
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
    """One runnable check: a Probe spec or a Backend's ``health`` block."""

    target: str | None  # None until an ApiProduct target is resolved
    steps: tuple[Step, ...]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT  # per request
    failure_threshold: int = _CHECK.failure_threshold
    success_threshold: int = _CHECK.success_threshold
    paused: bool = False
    follow_redirects: bool = _CHECK.follow_redirects
    proxy: str | None = None
    tls: Tls = Tls()
    check_maintenance_page: bool = False

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


def parse_check(
    spec: Mapping[str, Any], *, base_url: str | None = None, min_interval: float | None = None
) -> Check:
    """Validate ``spec`` and apply defaults.

    ``base_url`` is the resolved target (an ApiProduct version's URL); without it the target is
    ``target.url`` (Probe) or ``url`` (Backend health). A check whose steps need a target but
    has none and no ApiProduct to resolve is refused. ``min_interval`` is the operator's floor
    (never below ``MIN_INTERVAL``).
    """
    try:
        return _parse_check(spec, base_url, min_interval)
    except InvalidSpec:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        # The schema admits only well-shaped specs; one admitted before a schema change, or a
        # Backend's free-form block, may still surprise: refuse it readably, never crash.
        raise InvalidSpec("InvalidSpec", f"the spec cannot be read ({type(exc).__name__}: {exc})") from exc


def _parse_check(spec: Mapping[str, Any], base_url: str | None, min_interval: float | None) -> Check:
    target_spec = spec.get("target") or {}
    target = base_url or spec.get("url") or target_spec.get("url")
    if target:
        _require_http(target, "the target URL")
    _check_jsonpath_budget(spec.get("steps") or [])
    steps = tuple(_parse_steps(spec.get("steps") or []))
    if not target and not target_spec.get("apiProduct"):
        relative = [s.name for s in steps if not s.request.url]
        if relative:
            raise InvalidSpec("NoTarget", f"step {relative[0]!r} has no url and the check has no target")
    tls = spec.get("tls") or {}
    ca = tls.get("caSecretRef")
    interval, timeout = _schedule(spec, max(MIN_INTERVAL, min_interval or 0.0))
    return Check(
        target=target,
        steps=steps,
        interval=interval,
        timeout=timeout,
        failure_threshold=int(spec.get("failureThreshold") or _CHECK.failure_threshold),
        success_threshold=int(spec.get("successThreshold") or _CHECK.success_threshold),
        paused=bool(spec.get("paused", False)),
        follow_redirects=bool(spec.get("followRedirects", _CHECK.follow_redirects)),
        proxy=spec.get("proxy") or None,
        tls=Tls(
            insecure_skip_verify=bool(tls.get("insecureSkipVerify", False)),
            ca=SecretRef(ca["name"], ca["key"]) if ca else None,
            client_cert=(tls.get("clientCertSecretRef") or {}).get("name"),
        ),
        check_maintenance_page=bool(spec.get("checkMaintenancePage", False)),
    )


def _schedule(spec: Mapping[str, Any], floor: float) -> tuple[float, float]:
    """``interval`` and ``timeout`` within their floors; an unset timeout fits its interval."""
    interval = _duration(spec.get("interval"), DEFAULT_INTERVAL, "interval")
    if not interval >= floor:  # also NaN
        raise InvalidSpec(
            "IntervalTooShort",
            f"interval {durations.format(interval)} is below the minimum of {durations.format(floor)}",
        )
    if spec.get("timeout") in (None, ""):
        return interval, min(DEFAULT_TIMEOUT, interval)
    timeout = _duration(spec.get("timeout"), DEFAULT_TIMEOUT, "timeout")
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


def _check_jsonpath_budget(raw: list[Mapping[str, Any]]) -> None:
    """jsonpath-ng's parser costs ~10 µs a character: the largest spec the schema admits (800
    paths of 512 characters) took 3.5 s. Refuse before parsing any."""
    total = 0
    for item in raw:
        total += sum(
            len(str(rule.get("path") or "")) for rule in (item.get("expect") or {}).get("json") or []
        )
        total += sum(
            len(str(source)) for source in (item.get("capture") or {}).values() if str(source).startswith("$")
        )
    if total > MAX_JSONPATH_CHARS:
        raise InvalidSpec(
            "SpecTooCostly",
            f"the check's JSONPaths total {total} characters, more than "
            f"{MAX_JSONPATH_CHARS}: shorten or split it into several Probes",
        )


def _parse_steps(raw: list[Mapping[str, Any]]) -> Iterator[Step]:
    if not raw:
        yield Step(DEFAULT_STEP, Request(), Expect())
        return
    seen: set[str] = set()
    captured: set[str] = set()
    for item in raw:
        name = item.get("name") or ""
        if not name or name in seen:
            raise InvalidSpec("InvalidStep", f"step names must be unique and non-empty (got {name!r})")
        seen.add(name)
        request = _parse_request(name, item.get("request") or {})
        for text in request.templates():
            _check_references(name, text, captured)
        step = Step(
            name,
            request,
            _parse_expect(name, item.get("expect") or {}),
            tuple(_parse_captures(name, item.get("capture") or {})),
        )
        captured.update(c.var for c in step.capture)
        yield step


def _parse_request(step: str, raw: Mapping[str, Any]) -> Request:
    method = (raw.get("method") or DEFAULT_METHOD).upper()
    if method not in METHODS:
        raise InvalidSpec("InvalidStep", f"step {step!r}: method {method!r} is not one of {sorted(METHODS)}")
    if raw.get("url") and raw.get("path"):
        raise InvalidSpec("InvalidStep", f"step {step!r}: set url or path, not both")
    bodies = [k for k in ("body", "json", "form") if raw.get(k) is not None]
    if len(bodies) > 1:
        raise InvalidSpec("InvalidStep", f"step {step!r}: set only one of body, json, form (got {bodies})")
    url = raw.get("url")
    if url and not url.startswith("${"):  # a fully interpolated URL is checked when it is sent
        _require_http(url, f"step {step!r}: url")
    headers = _strings_map(raw.get("headers"))
    for header, value in headers.items():
        if not HEADER_NAME.fullmatch(header):
            raise InvalidSpec("InvalidHeader", f"step {step!r}: {header!r} is not a valid HTTP header name")
        if not HEADER_VALUE.fullmatch(REFERENCE.sub("", value)):
            raise InvalidSpec(
                "InvalidHeader",
                f"step {step!r}: header {header} may hold only printable ASCII characters (no line breaks)",
            )
    return Request(
        method=method,
        url=url,
        path=raw.get("path"),
        headers=headers,
        query=_strings_map(raw.get("query")),
        body=raw.get("body"),
        json=raw.get("json"),
        form=_strings_map(raw["form"]) if raw.get("form") is not None else None,
    )


def _parse_expect(step: str, raw: Mapping[str, Any]) -> Expect:
    status = tuple(int(s) for s in raw.get("status") or DEFAULT_STATUS)
    if any(not 100 <= s <= 599 for s in status):
        raise InvalidSpec("InvalidStep", f"step {step!r}: expected status codes must be 100..599")
    max_latency = raw.get("maxLatency")
    body = raw.get("body") or {}
    return Expect(
        status=status,
        max_latency=_duration(max_latency, None, f"step {step!r}: maxLatency") if max_latency else None,
        json=tuple(_parse_json_expect(step, j) for j in raw.get("json") or []),
        headers=tuple(
            HeaderExpect(
                h["name"], bool(h.get("present", True)), _regex(step, h.get("matches"), f"header {h['name']}")
            )
            for h in raw.get("headers") or []
        ),
        body_contains=body.get("contains"),
        body_regex=_regex(step, body.get("regex"), "body"),
    )


def _parse_json_expect(step: str, raw: Mapping[str, Any]) -> JsonExpect:
    path = raw.get("path") or ""
    return JsonExpect(
        path=path,
        compiled=_jsonpath(step, path, f"expect.json {path!r}"),
        exists=bool(raw.get("exists", True)),
        equals=raw.get("equals"),
        has_equals="equals" in raw,
        matches=_regex(step, raw.get("matches"), path),
    )


def _parse_captures(step: str, raw: Mapping[str, str]) -> Iterator[Capture]:
    for var, source in raw.items():
        if not VARIABLE.fullmatch(var):
            raise InvalidSpec("InvalidCapture", f"step {step!r}: {var!r} is not a valid variable name")
        if not isinstance(source, str):
            raise InvalidSpec("InvalidCapture", f"step {step!r}: capture {var!r} must be a string")
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
    if not path.startswith("$"):
        raise InvalidSpec("InvalidJSONPath", f"step {step!r}: {what}: a JSONPath starts with $")
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
        return compile_regex(str(pattern))
    except ValueError as exc:
        raise InvalidSpec(
            "InvalidRegex",
            f"step {step!r}: {what}: {pattern!r} is not a regex RE2 accepts: {exc} "
            "(RE2 runs in linear time; it has no backreferences or lookaround)",
        ) from None


def _duration(value: Any, default: float | None, what: str) -> float:
    try:
        seconds = durations.parse(value, default)
    except (ValueError, TypeError) as exc:
        raise InvalidSpec("InvalidDuration", f"{what}: {exc}") from exc
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidSpec("InvalidDuration", f"{what}: {value!r} is not a finite, positive duration")
    return seconds


def _require_http(url: str, what: str) -> None:
    if not re.match(r"https?://[^/?#]", url):
        raise InvalidSpec("InvalidURL", f"{what} must be an absolute http(s) URL, got {url!r}")


def _strings_map(raw: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (raw or {}).items()}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
