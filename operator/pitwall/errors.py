"""Pitwall's exception tree (small and flat, in the spirit of httpx)."""


class PitwallError(Exception):
    """Base of every error Pitwall raises on purpose."""


class InvalidSpec(PitwallError):
    """The spec is admissible to the API server but cannot work (becomes Stalled)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class MissingReference(InvalidSpec):
    """A referenced object (Secret, Backend, ApiProduct ...) does not exist."""


class KubeError(PitwallError):
    """The Kubernetes API answered with an error status."""

    def __init__(self, status: int, reason: str, message: str, body: dict | None = None):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class Forbidden(KubeError):
    pass


class Invalid(KubeError):
    """422: the API server refused the object (schema, CEL, quantities ...)."""
