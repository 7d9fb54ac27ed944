"""Structured JSON logs: one object per line, carrying the object and a correlation id.

Every log record may carry ``extra={"object": "ns/name", "kind": ..., "correlation_id": ...}``;
kopf's own records carry ``k8s_ref``, which is folded into the same fields.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_EXTRA_FIELDS = ("kind", "object", "correlation_id", "step", "reason", "receiver", "alert")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for field in _EXTRA_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                out[field] = value
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict) and "object" not in out:
            out["kind"] = ref.get("kind")
            out["object"] = f"{ref.get('namespace') or ''}/{ref.get('name')}".lstrip("/")
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """One readable line that always names the object a record is about.

    ``probe is Up`` with ``object=team-a/payments-isup`` reads ``probe team-a/payments-isup is
    Up``; a message that does not start with its kind gets ``[Kind ns/name]`` appended. So no
    line says *something* is Down without saying which.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's API
        record.message = with_object(record.message, getattr(record, "kind", None), _object_of(record))
        return super().formatMessage(record)


def _object_of(record: logging.LogRecord) -> str | None:
    obj = getattr(record, "object", None)
    if obj is None:
        ref_ = getattr(record, "k8s_ref", None)
        if isinstance(ref_, dict) and ref_.get("name"):
            obj = f"{ref_.get('namespace') or ''}/{ref_['name']}".lstrip("/")
    return obj


def with_object(message: str, kind: str | None, obj: str | None) -> str:
    """``message`` with ``obj`` in it (see :class:`TextFormatter`). Pure."""
    if not obj or obj in message:
        return message
    if kind:
        words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", kind).lower()  # MaintenanceWindow -> maintenance window
        for prefix in (words + " ", words.replace(" ", "") + " "):
            if message.lower().startswith(prefix):
                return f"{message[: len(prefix)]}{obj} {message[len(prefix) :]}"
    return f"{message} [{kind + ' ' if kind else ''}{obj}]"


def setup(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "aiohttp.access", "kubernetes", "kopf.objects"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def ref(kind: str, namespace: str | None, name: str, **more) -> dict:
    """``extra=`` for a log call about one object."""
    return {"kind": kind, "object": f"{namespace}/{name}" if namespace else name, **more}
