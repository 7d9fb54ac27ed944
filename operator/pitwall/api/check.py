"""The check shape shared by Probe.spec and Backend.spec.health (one engine, one schema).

The probe engine validates specs through these models and compiles them (:mod:`pitwall.probes.spec`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from ..floors import ADMISSION
from .base import (
    LABEL_LEN,
    LONG_TEXT,
    SHORT_TEXT,
    STEP_NAME,
    TEXT,
    URL_LEN,
    VAR_NAME,
    Model,
    cel,
    duration,
    flag,
    integer,
    items,
    mapping,
    matching,
    number,
    object_name,
    rule,
    section,
    text,
    timeout_within_interval,
    timestamp,
    unique_by,
    url,
)
from .shared import SecretKeyRef, StringMap

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
HTTP_METHODS: tuple[str, ...] = get_args(HttpMethod)

VALUE_NOTE = "Values may use ${var} (captured by an earlier step) and ${secret:name/key}."
CaptureSource = Annotated[str, Field(max_length=512, pattern=r"^(\$.*|header:.+)$")]


class ClientCertRef(Model):
    """A kubernetes.io/tls Secret whose tls.crt/tls.key are sent as client certificate."""

    name: str = object_name("Name of the kubernetes.io/tls Secret.", ...)


class Tls(Model):
    """TLS settings for HTTPS targets. Certificates are verified unless told otherwise."""

    insecure_skip_verify: bool = flag("Skip server certificate verification (testing only).", False)
    ca_secret_ref: SecretKeyRef | None = section("A PEM CA bundle (in a Secret) to verify the server with.")
    client_cert_secret_ref: ClientCertRef | None = None


class Request(Model):
    model_config = {
        "json_schema_extra": cel(
            rule(
                "!(has(self.url) && has(self.path))",
                "set at most one of request.url and request.path (path is relative to the probe's target)",
            ),
            rule(
                "[has(self.body), has(self.json), has(self.form)].filter(b, b).size() <= 1",
                "set at most one of request.body, request.json and request.form",
            ),
        )
    }
    __doc__ = f"The HTTP request. {VALUE_NOTE}"

    method: HttpMethod = Field("GET", description="HTTP method.")
    url: str | None = url("Absolute URL (instead of path).")
    path: str | None = text(
        "Path (and query) relative to the probe's target, e.g. /accounts/me.", URL_LEN, pattern=r"^/"
    )
    headers: StringMap | None = mapping("Request headers.")
    query: StringMap | None = mapping("Query parameters added to the URL.")
    body: str | None = text("Raw request body.", 65536)
    json_: dict[str, Any] | None = Field(
        None,
        description="A JSON object sent as the body; sets Content-Type: application/json.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    form: StringMap | None = mapping("A form body (application/x-www-form-urlencoded).")


class JsonExpect(Model):
    """An assertion on the JSON response body. Every assertion given must hold; with none of equals, exists and matches, the path must exist."""  # noqa: E501

    model_config = {
        "json_schema_extra": cel(
            rule(
                "!(has(self.exists) && !self.exists && has(self.matches))",
                "exists: false cannot be combined with matches (nothing would be there to match)",
            )
        )
    }

    path: str = text(
        "JSONPath into the body, e.g. $.currency. At most one recursive descent (..), no regex "
        "(=~, sub); paths that scan (.., *, filters) run on responses of at most 2,000 values.",
        512,
        default=...,
        min_length=1,
        pattern=r"^\$",
    )
    equals: Any = Field(
        None,
        description="The value found must equal this (any JSON value).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    exists: bool | None = flag("true: the path must match something; false: it must match nothing.")
    matches: str | None = text(
        "The value found, as text, must match this regular expression (RE2 syntax, matched in linear time: no backreferences or lookaround).",
        TEXT,
    )


class HeaderExpect(Model):
    """An assertion on a response header."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "has(self.present) || has(self.matches)", "each expect.headers entry needs present or matches"
            )
        )
    }

    name: str = text("Header name.", SHORT_TEXT, default=..., min_length=1)
    present: bool | None = flag("true: the header must be present; false: it must be absent.")
    matches: str | None = text(
        "The header's value must match this regular expression (RE2 syntax, matched in linear time: no backreferences or lookaround).",
        TEXT,
    )


class BodyExpect(Model):
    """Assertions on the raw response body."""

    contains: str | None = text("The body must contain this text.", LONG_TEXT)
    regex: str | None = text(
        "The body must match this regular expression (RE2 syntax, matched in linear time: no backreferences or lookaround).",
        TEXT,
    )


StatusCode = Annotated[int, Field(ge=100, le=599, description="An HTTP status code.")]


class Expect(Model):
    """What the response must look like for the step to pass."""

    status: list[StatusCode] = items("Accepted HTTP status codes.", 20, default=[200], min_items=1)
    max_latency: str | None = duration("The step fails when the response takes longer than this.")
    json_: list[JsonExpect] | None = items(
        "JSONPath assertions on the response body, all of which must hold.", 20
    )
    headers: list[HeaderExpect] | None = items("Response header assertions, all of which must hold.", 20)
    body: BodyExpect | None = None


class Step(Model):
    """One step: a request, its expectations, and values to capture."""

    name: str = text(
        "Step name, shown in status and metrics when the step fails.",
        LABEL_LEN,
        default=...,
        min_length=1,
        pattern=STEP_NAME,
    )
    request: Request = section(Request.__doc__, default_empty=True, factory=Request)
    expect: Expect = section(Expect.__doc__, default_empty=True, factory=Expect)
    capture: dict[str, CaptureSource] | None = mapping(
        'Variables to capture for later steps: name -> "$.json.path" or "header:Header-Name". '
        "Used as ${name}.",
        20,
        rules=[
            rule(
                f"self.all(k, k.matches('{VAR_NAME}'))",
                "capture variable names must be letters, digits and underscores (they are used as ${name})",
            )
        ],
    )


DEFAULT_TIMEOUT = "5s"


class Check(Model):
    """How often a check runs, its deadlines and thresholds, TLS, proxy and steps."""

    model_config = {"json_schema_extra": cel(timeout_within_interval())}

    interval: str = duration("How often the check runs.", "30s", minimum=ADMISSION.probe_interval)
    # No schema default: a default of 5s would make every interval under 5s a refusal the user
    # never wrote. Unset, the engine uses DEFAULT_TIMEOUT or the interval, whichever is shorter.
    timeout: str | None = duration(
        "Deadline for each request of a run (a run of n steps is cut at n x timeout + "
        f"1s); at most the interval. Default: {DEFAULT_TIMEOUT}, or the interval when "
        "that is shorter.",
        minimum=ADMISSION.probe_timeout,
    )
    failure_threshold: int = integer(
        "Consecutive failed runs before the state turns Down.", default=3, minimum=1, maximum=100
    )
    success_threshold: int = integer(
        "Consecutive successful runs before the state turns Up again.", default=1, minimum=1, maximum=100
    )
    follow_redirects: bool = flag(
        "Follow HTTP redirects (off by default: a redirect usually means a problem).", False
    )
    proxy: str | None = text(
        "HTTP(S) or SOCKS5 proxy URL for the requests.",
        URL_LEN,
        rules=[
            matching(r"^(https?|socks5h?)://[^\s]+$", "must be an http://, https:// or socks5:// proxy URL")
        ],
    )
    tls: Tls | None = None
    steps: list[Step] | None = items(
        "Steps run in order; the first failing step stops the run and is named in "
        "status. Empty: one GET on the target expecting 200.",
        20,
        rules=[unique_by("name", "step names")],
    )


class LastRun(Model):
    """The most recent run."""

    at: str | None = timestamp("When it started.")
    result: str | None = text("Success or Failure.", 64)
    latency_ms: float | None = number("Total latency of the run in milliseconds.", minimum=0)
    correlation_id: str | None = text("X-Correlation-ID sent with the requests.")


class LastFailure(Model):
    """The most recent failed run (search the API's logs for its correlation id)."""

    at: str | None = timestamp("When it happened.")
    step: str | None = text("The step that failed.", LABEL_LEN)
    reason: str | None = text("Why it failed (secret values are masked).", LONG_TEXT)
    http_status: int | None = integer("HTTP status of the failing response, if any.", minimum=0, maximum=999)
    correlation_id: str | None = text("X-Correlation-ID of the failing request.")
    logs_url: str | None = text(
        "The correlation id as a link into the API's logs (the operator's --log-search-url).", 2048
    )
