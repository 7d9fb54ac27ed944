"""The root of every kind (apiVersion, kind, metadata, spec, status) and what its CRD says
besides the schema: names, printer columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field

from .base import Model

CATEGORY = "pitwall"


@dataclass(frozen=True)
class Column:
    """An ``additionalPrinterColumns`` entry (what ``kubectl get`` shows)."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


READY = Column("Ready", '.status.conditions[?(@.type=="Ready")].status', description="The Ready condition.")
AGE = Column("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class Names:
    """The CRD's names besides the kind: plural, short names, categories."""

    plural: str
    short_names: tuple[str, ...]
    columns: tuple[Column, ...]
    categories: tuple[str, ...] = field(default=(CATEGORY,))


class Resource(Model):
    """A Pitwall object. Subclasses set ``spec`` and ``status`` and their CRD ``names``."""

    names: ClassVar[Names]

    api_version: str | None = Field(None, description="APIVersion of this object.")
    kind: str | None = Field(None, description="Kind of this object.")
    metadata: dict[str, Any] | None = None
