"""Shapes several kinds share: Secret references, owners, contacts, conditions, selectors."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from .base import (
    CONDITION_REASON,
    CONDITION_TYPE,
    DNS_SUBDOMAIN,
    LABEL_LEN,
    LABEL_VALUE,
    LONG_TEXT,
    NAME_LEN,
    SECRET_KEY,
    TIME_LEN,
    Model,
    cel,
    email,
    integer,
    items,
    object_name,
    rule,
    text,
    url,
)

ConditionStatus = Literal["True", "False", "Unknown"]
CONDITION_STATUSES: tuple[str, ...] = get_args(ConditionStatus)
SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
OPERATORS: tuple[str, ...] = get_args(SelectorOperator)

# Map values: text (headers, annotations ...) and label values.
Text = Annotated[str, Field(max_length=LONG_TEXT)]
LabelValue = Annotated[str, Field(max_length=LABEL_LEN, pattern=LABEL_VALUE)]
ObjectName = Annotated[str, Field(max_length=NAME_LEN, min_length=1, pattern=DNS_SUBDOMAIN)]
StringMap = dict[str, Text]
LabelMap = dict[str, LabelValue]


class SecretKeyRef(Model):
    """A key in a Secret of the object's namespace."""

    name: str = object_name(
        "Name of a Secret in this object's namespace, opted in with the label "
        "pitwall.dev/use (probes, receivers or all).",
        ...,
    )
    key: str = text("Key inside the Secret's data.", NAME_LEN, default=..., min_length=1, pattern=SECRET_KEY)


class LocalRef(Model):
    """An object in this namespace, by name."""

    name: str = object_name("Name.", ...)


class Owner(Model):
    """Who runs this and how to reach them."""

    team: str | None = text("Owning team.", LABEL_LEN * 2)
    contact: str | None = text("How to reach the owners (an email address, a channel, a rota name).")


class Contact(Model):
    """How to reach a person or team."""

    name: str | None = text("A person or team name.")
    email: str | None = email("Email address.")
    webhook: str | None = url("Webhook URL that accepts Pitwall notices (JSON POST).")


class Condition(Model):
    """A metav1.Condition."""

    type: str = text(
        "Condition type in CamelCase (Ready, Reconciling, Stalled, ...).",
        316,
        default=...,
        pattern=CONDITION_TYPE,
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = integer(
        "The .metadata.generation the condition was computed for.", minimum=0, int64=True
    )
    last_transition_time: str = text("When status last changed.", TIME_LEN, default=..., fmt="date-time")
    reason: str = text(
        "Machine-readable CamelCase reason.", 1024, default=..., min_length=1, pattern=CONDITION_REASON
    )
    message: str = text("Human-readable detail.", 32768, default=...)


class Status(Model):
    """What every kind's status starts with (kstatus)."""

    observed_generation: int | None = integer(
        "The .metadata.generation the operator last acted on.", minimum=0, int64=True
    )
    conditions: list[Condition] | None = items(
        "Ready, Reconciling and Stalled first (kstatus), then the kind's own conditions.",
        32,
        list_type="map",
        map_keys=["type"],
    )


class LabelRequirement(Model):
    """A label selector requirement."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : "
                "!has(self.values) || size(self.values) == 0",
                "operators In and NotIn need values; Exists and DoesNotExist take none",
            )
        )
    }

    key: str = text("Label key.", 317, default=..., min_length=1)
    operator: SelectorOperator = Field(description="How the key relates to the values.")
    values: list[Annotated[LabelValue, Field(description="A label value.")]] | None = items(
        "Values for In and NotIn.", 64
    )


class AffectedConsumer(Model):
    """A consumer and the product it uses."""

    name: str | None = text("Consumer name.", NAME_LEN)
    api_product: str | None = text("The ApiProduct it consumes.", NAME_LEN)
    versions: list[Annotated[str, Field(max_length=LABEL_LEN, description="A version.")]] | None = items(
        "The affected versions it uses.", 20
    )
    contact: Contact | None = Field(None, description="How to reach the consumer.")
