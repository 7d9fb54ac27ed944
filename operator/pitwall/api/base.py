"""The building blocks of the API models: a base class, field helpers, CEL rules, limits.

Every field of a kind is declared once, as a pydantic field: its type (and with it the enum),
default, bounds, pattern and description. What the OpenAPI vocabulary of pydantic cannot say
(CEL rules, list-map keys, ``format: int64``, free-form parts) travels as ``json_schema_extra``
and :mod:`pitwall.api.crdgen` turns the whole into a Kubernetes structural schema.

Conventions the schemas follow:

- Structural schemas: every node has a type; free-form parts (a step's ``request.json`` and
  ``expect.json[].equals``, an env ``valueFrom``) are the only places with
  ``x-kubernetes-preserve-unknown-fields``. CEL cannot see untyped fields, so no rule may
  mention ``equals``.
- Every string carries a ``maxLength`` (or an enum) and every list and map a bound, so the API
  server can estimate the cost of the CEL rules.
- Cross-field rules are CEL (``x-kubernetes-validations``) with messages written for the person
  who runs ``kubectl apply``. Durations, cron schedules, time zones, URLs and email addresses are
  checked by CEL ``matches`` rather than an OpenAPI ``pattern``, so a refusal reads '"5 minutes"
  is not a duration ...' instead of quoting a regular expression.
- Status models declare every field the operator writes: undeclared fields would be pruned
  silently. The operator keeps lists within the ``maxItems`` stated here.

Durations that drive repeated work (probe interval and timeout, repeatInterval, escalation
delays, digest interval, a window's duration) have a CEL floor, ``floors.ADMISSION``, refused
as '"1ms" is below the minimum 1s'. The operator checks them again against its own, possibly
higher, floors (``--min-probe-interval`` ...), see floors.py.

Not expressible here: anything that needs the clock (a MaintenanceWindow announced with less
than ``notice.leadTime`` ahead; CEL has no ``now()``) or other objects (a referenced Backend,
Secret or ApiProduct that does not exist), and comparisons of durations with d/w units
(``timeout`` <= ``interval`` is checked in CEL only when both use h/m/s/ms: CEL's ``duration()``
knows no d/w). The operator reports those as ``Stalled`` with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import durations
from ..durations import PATTERN as DURATION_PATTERN
from ..errors import InvalidSpec

# --------------------------------------------------------------------------------------
# Patterns and limits
# --------------------------------------------------------------------------------------

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
HTTP_URL = r"^https?://[^\s]+$"
EMAIL = r"^[^@\s]+@[^@\s]+$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
CONDITION_TYPE = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
RUNS = r"^[0-9]+/[0-9]+( [0-9]+/[0-9]+)*$"
CRON = r"^(@(yearly|annually|monthly|weekly|daily|hourly)|\S+(\s+\S+){4})$"
TIME_ZONE = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
STEP_NAME = r"^[A-Za-z0-9]([-_A-Za-z0-9]*[A-Za-z0-9])?$"
VAR_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

NAME_LEN = 253  # object names (DNS subdomain)
LABEL_LEN = 63  # DNS label / label value
SHORT_TEXT = 256
TEXT = 1024
LONG_TEXT = 4096
URL_LEN = 2048
TIME_LEN = 64
DURATION_LEN = 32
EMAIL_LEN = 320

DURATION_NOTE = "A duration such as 500ms, 30s, 5m, 2h, 3d or 1h30m."
TIMESTAMP_NOTE = "RFC 3339, e.g. 2026-12-05T22:00:00+02:00."


def camel(name: str) -> str:
    """snake_case -> camelCase, as the API spells it (``from_`` -> ``from``, ``last1h`` stays)."""
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class Model(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python.

    Unknown fields are ignored, as the API server prunes them anyway; a spec written before a
    field was added still parses. Validators are built on first use (``defer_build``): most
    importers only read enums and defaults.
    """

    model_config = ConfigDict(alias_generator=camel, populate_by_name=True, extra="ignore", defer_build=True)


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], raw: Mapping[str, Any] | None, where: str = "spec") -> M:
    """``raw`` (camelCase, as stored) through ``model``; what does not fit is InvalidSpec.

    The API server admits only what the CRD (generated from the same model) allows, so this
    refuses only objects stored before a bound was added, or written around the schema; the
    message names the field as ``kubectl`` would.
    """
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        problems = [f"{_path(where, error['loc'])}: {error['msg']}" for error in exc.errors()]
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise InvalidSpec("InvalidSpec", "; ".join(problems[:3]) + more) from None


def _path(where: str, loc: tuple[int | str, ...]) -> str:
    return where + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def status_patch(status: BaseModel) -> dict[str, Any]:
    """``status`` (a kind's status model) as the merge patch the operator writes.

    Camel-case, ``None`` dropped, except top-level fields explicitly set to None: those become
    ``null``, which clears a stale field (``nextStart`` of a completed window). Fields never set
    are left out, so the API server keeps what it has.
    """
    out = status.model_dump(by_alias=True, exclude_none=True)
    for name in status.model_fields_set:
        if getattr(status, name) is None:
            out[type(status).model_fields[name].alias or name] = None
    return out


def default_of(model: type[BaseModel], field: str) -> Any:
    """The default ``model`` (and so the CRD) declares for ``field`` (its snake_case name)."""
    return model.model_fields[field].get_default(call_default_factory=True)


# --------------------------------------------------------------------------------------
# CEL rules
# --------------------------------------------------------------------------------------


def rule(
    expr: str,
    message: str,
    *,
    field_path: str | None = None,
    reason: str | None = None,
    message_expression: str | None = None,
) -> dict[str, str]:
    """One CEL rule. ``field_path`` points the error at a child field (relative to self).

    ``message_expression`` (CEL) builds a more specific message, e.g. quoting the bad value;
    ``message`` stays as the fallback.
    """
    out = {"rule": expr, "message": message}
    if message_expression:
        out["messageExpression"] = message_expression
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def matching(pattern: str, message: str, *, quoted: str | None = None) -> dict[str, str]:
    """CEL: the string matches ``pattern`` (RE2), refused with a human message.

    Used instead of an OpenAPI ``pattern`` where the raw regular expression would be the only
    explanation a user gets. With ``quoted``, the message repeats the bad value: '"5 minutes"
    <quoted>' (never for values that may carry credentials, such as URLs).
    """
    assert "'" not in pattern and "'" not in (quoted or "")
    expression = f"'\"' + self + '\" {quoted}'" if quoted else None
    return rule(f"self.matches(r'{pattern}')", message, message_expression=expression)


def unique_by(field: str, what: str) -> dict[str, str]:
    """CEL: the list's items have distinct ``field`` values."""
    return rule(f"self.all(x, self.exists_one(y, y.{field} == x.{field}))", f"{what} must be unique")


def cel(*rules: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules (for a field or a model's ``model_config``)."""
    return {"x-kubernetes-validations": list(rules)}


# --------------------------------------------------------------------------------------
# Field helpers: the shapes that recur, each with its bounds
# --------------------------------------------------------------------------------------


def _extra(rules: tuple[dict, ...] | list[dict] = (), **more: Any) -> dict[str, Any] | None:
    extra = {k: v for k, v in more.items() if v is not None}
    if rules:
        extra["x-kubernetes-validations"] = list(rules)
    return extra or None


def text(
    description: str,
    max_length: int = SHORT_TEXT,
    *,
    default: Any = None,
    min_length: int | None = None,
    pattern: str | None = None,
    fmt: str | None = None,
    rules: tuple[dict, ...] | list[dict] = (),
) -> Any:
    """A bounded string field. ``default=...`` makes it required."""
    return Field(
        default,
        description=description,
        max_length=max_length,
        min_length=min_length,
        pattern=pattern,
        json_schema_extra=_extra(rules, format=fmt),
    )


# Durations CEL's duration() can read (Go's time.ParseDuration: no d or w units).
CEL_DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
# A d or w part of at least 0.1 (2.4h): above every floor, so such a duration passes.
DAYS_PART = r"(^|[^.0-9])([1-9][0-9]*(\.[0-9]+)?|0\.[1-9][0-9]*)[dw]"
ZERO_DURATION = r"^(0+(\.0+)?(ms|s|m|h|d|w))+$"


def at_least(floor: float, *, zero_ok: bool = False) -> dict[str, str]:
    """CEL: the duration is at least ``floor`` seconds (floors.ADMISSION), ``0s`` too with ``zero_ok``.

    Not-a-duration is left to the grammar rule (no second message). CEL's ``duration()`` has no
    d/w units; a duration with such a part passes when that part is 0.1d/0.1w or more, and is
    refused otherwise (write durations under 2.4h in h, m, s or ms).
    """
    floor_text = durations.format(floor)
    check = (
        f"(self.matches(r'{CEL_DURATION}') ? duration(self) >= duration('{floor_text}') "
        f": self.matches(r'{DAYS_PART}'))"
    )
    if zero_ok:
        check = f"self.matches(r'{ZERO_DURATION}') || {check}"
    message = f"must be at least {floor_text}" + (" (or 0s to turn it off)" if zero_ok else "")
    below = f"is below the minimum {floor_text}" + (" (use 0s to turn it off)" if zero_ok else "")
    # "0.05d" (72m) is refused too: say why, rather than call it below a floor it is above.
    return rule(
        f"!self.matches(r'{DURATION_PATTERN}') || {check}",
        message,
        message_expression=f"'\"' + self + '\" ' + (self.matches(r'[dw]') ? "
        f"'{below}, or under 0.1d: write durations under 2.4h in h, m, s or ms' "
        f": '{below}')",
    )


def duration(
    description: str, default: Any = None, *, minimum: float | None = None, zero_ok: bool = False
) -> Any:
    """A duration string: 500ms, 30s, 5m, 2h, 3d, 1w or a sum such as 1h30m.

    ``minimum`` (seconds, from floors.ADMISSION) refuses shorter ones: durations that drive
    repeated work.
    """
    rules = [
        matching(
            DURATION_PATTERN,
            "must be a duration such as 500ms, 30s, 5m, 2h, 3d or 1h30m",
            quoted="is not a duration: use e.g. 500ms, 30s, 5m, 2h, 3d or 1h30m",
        )
    ]
    if minimum is not None:
        rules.append(at_least(minimum, zero_ok=zero_ok))
        description += f" At least {durations.format(minimum)}" + (" (or 0s)." if zero_ok else ".")
    return text(f"{description} {DURATION_NOTE}", DURATION_LEN, default=default, rules=rules)


def timeout_within_interval() -> dict[str, str]:
    """CEL: timeout <= interval when both are set (an unset timeout fits its interval). With d/w units CEL cannot
    compare them; the operator checks those (Stalled, reason TimeoutAboveInterval)."""
    both = f"self.interval.matches(r'{CEL_DURATION}') && self.timeout.matches(r'{CEL_DURATION}')"
    return rule(
        f"!has(self.interval) || !has(self.timeout) || !({both}) || "
        "duration(self.timeout) <= duration(self.interval)",
        "timeout must not be longer than interval (a run would still be going when the next is due)",
        field_path=".timeout",
    )


def url(description: str, default: Any = None) -> Any:
    return text(
        description,
        URL_LEN,
        default=default,
        rules=[matching(HTTP_URL, "must be an absolute http:// or https:// URL")],
    )


EMAIL_RULE = matching(EMAIL, "must be an email address", quoted="is not an email address")


def email(description: str, default: Any = None) -> Any:
    return text(description, EMAIL_LEN, default=default, rules=[EMAIL_RULE])


def timestamp(description: str) -> Any:
    """An RFC 3339 time, kept as the string written (the operator parses it where it needs to)."""
    return text(f"{description} {TIMESTAMP_NOTE}", TIME_LEN, fmt="date-time")


def object_name(description: str, default: Any = None) -> Any:
    return text(description, NAME_LEN, default=default, min_length=1, pattern=DNS_SUBDOMAIN)


def integer(
    description: str,
    *,
    default: Any = None,
    minimum: int | None = None,
    maximum: int | None = None,
    int64: bool = False,
) -> Any:
    return Field(
        default,
        description=description,
        ge=minimum,
        le=maximum,
        json_schema_extra=_extra(format="int64" if int64 else None),
    )


def number(description: str, *, minimum: float | None = None, maximum: float | None = None) -> Any:
    return Field(None, description=description, ge=minimum, le=maximum)


def flag(description: str, default: bool | None = None) -> Any:
    return Field(default, description=description)


def items(
    description: str,
    max_items: int,
    *,
    default: Any = None,
    min_items: int | None = None,
    rules: tuple[dict, ...] | list[dict] = (),
    list_type: str | None = None,
    map_keys: list[str] | None = None,
) -> Any:
    """A bounded list field; ``list_type``/``map_keys`` become x-kubernetes-list-type/-map-keys."""
    return Field(
        default,
        description=description,
        max_length=max_items,
        min_length=min_items,
        json_schema_extra=_extra(
            rules, **{"x-kubernetes-list-type": list_type, "x-kubernetes-list-map-keys": map_keys}
        ),
    )


def mapping(description: str, max_properties: int = 32, *, rules: tuple[dict, ...] | list[dict] = ()) -> Any:
    """A bounded string -> string map (bound the values in the type: ``StringMap``)."""
    return Field(None, description=description, max_length=max_properties, json_schema_extra=_extra(rules))


def section(
    description: str | None,
    *,
    default_empty: bool = False,
    factory: Any = None,
    rules: tuple[dict, ...] | list[dict] = (),
) -> Any:
    """A nested object field. ``default_empty``: the API server fills in ``{}`` (and with it
    the defaults inside), and so does the model (``factory``)."""
    if default_empty:
        return Field(
            default_factory=factory, description=description, json_schema_extra=_extra(rules, default={})
        )
    return Field(None, description=description, json_schema_extra=_extra(rules))


def free_form(description: str) -> Any:
    """Any JSON value, kept as written. Use only for genuinely free-form parts."""
    return Field(
        None, description=description, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
