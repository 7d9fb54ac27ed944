"""Pitwall's exceptions, small and flat in the spirit of httpx's. The whole tree:

* PitwallError - the base of every error Pitwall raises on purpose.
    * InvalidSpec - the spec passed admission but cannot work: the object becomes ``Stalled``
      with the error's ``reason`` and ``message``, and nothing is retried until it changes.
        * Denied - the egress policy refuses the address (reason ``TargetDenied``).
        * SecretNotOptedIn - the Secret lacks the ``pitwall.dev/use`` label for this use.
    * KubeError - the Kubernetes API answered with an error status (``status``, ``reason``,
      ``message`` and the Status ``body``); a reconcile that raises it is retried with backoff.
        * NotFound - 404.
        * Forbidden - 403: RBAC, or an admission rule such as a ResourceQuota.
        * Conflict - 409: the name exists, or the object changed since it was read.
        * Invalid - 422: the API server refused the object (schema, CEL, quantities ...).
    * TrafficError - Prometheus (``--prometheus-url``) gave no figures: unreachable, timed out,
      an HTTP error or an error answer. Traffic shows ``unknown`` with the message; traffic
      alerts keep their state and rollouts judged by traffic get the no-data verdict.
        * QueryRefused - Prometheus refused the PromQL (``bad_data``): a spec's shape that
          cannot work (the message names the query).

Not in the tree, on purpose: the probe engine's own signals (``JsonProblem``, ``BodyTooLarge``,
``Undecodable``), which never leave it (each becomes a failed check with its reason);
``httpx.TransportError`` (the API server unreachable after
:class:`pitwall.kube.Kube`'s retries) propagates as httpx raised it, and ``ValueError`` is
what the pure parsers (durations, RFC 3339 times) raise for input the caller must reword.
docs/architecture.md shows who raises and who catches each.
"""

from __future__ import annotations

from typing import Any

from .vocabulary import Stalled


class PitwallError(Exception):
    """Base of every error Pitwall raises on purpose."""


class InvalidSpec(PitwallError):
    """The spec is admissible to the API server but cannot work (becomes Stalled)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def stalled(self) -> Stalled:
        return Stalled(self.reason, self.message)


class Denied(InvalidSpec):
    """The egress policy refuses this address: the spec's fault (Stalled), never a failure count."""

    def __init__(self, message: str):
        super().__init__("TargetDenied", message)


class SecretNotOptedIn(InvalidSpec):
    """The Secret exists but does not carry ``pitwall.dev/use`` for this use (becomes Stalled)."""

    def __init__(self, message: str):
        super().__init__("SecretNotOptedIn", message)


class KubeError(PitwallError):
    """The Kubernetes API answered with an error status."""

    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class Forbidden(KubeError):
    """403: RBAC does not allow it, or an admission rule (e.g. a ResourceQuota) refused it."""


class Conflict(KubeError):
    """409: the name is taken, or the object changed since it was read."""


class Invalid(KubeError):
    """422: the API server refused the object (schema, CEL, quantities ...)."""


class TrafficError(PitwallError):
    """Prometheus gave no figures (unreachable, timeout, HTTP or error answer); nothing is retried
    before the next traffic cycle."""


class QueryRefused(TrafficError):
    """Prometheus refused the query itself (``errorType: bad_data``)."""
