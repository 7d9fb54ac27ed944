"""PromQL for a product's traffic, built from its ``spec.traffic`` (pure: no I/O).

Products whose traffic has the same shape (metric names, label names, extra matches, window)
are asked together: one query per metric family for a batch of products, grouped
``by (product, version, ...)``, never one query per product or version. Values that go
into a query are validated by the CRD's patterns (label and metric names) and escaped here
(label values), so a spec cannot change what a query means.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..api.apiproduct import TRAFFIC_PRESETS, Traffic
from ..api.base import default_of, parse

BATCH = 100  # products per query: keeps a query's regex (and URL) bounded
_DEFAULT = TRAFFIC_PRESETS[default_of(Traffic, "preset")]


@dataclass(frozen=True)
class Shape:
    """How the traffic of a product is found; products with equal shapes share queries."""

    requests: str = _DEFAULT["requestsMetric"]
    duration: str = _DEFAULT["durationMetric"]
    product: str = _DEFAULT["labels"]["product"]
    version: str = _DEFAULT["labels"]["version"]
    consumer: str = _DEFAULT["labels"]["consumer"]
    route: str = _DEFAULT["labels"]["route"]
    status: str = _DEFAULT["labels"]["status"]
    match: tuple[tuple[str, str], ...] = ()
    window: str = default_of(Traffic, "window")
    timeout_codes: tuple[str, ...] = tuple(default_of(Traffic, "timeout_codes"))
    top: int = default_of(Traffic, "top")
    duration_scale: float = 1.0  # seconds per unit of the duration histogram's le (istio: 0.001)
    version_from_service: bool = False  # the version label holds the Service, <product>-<version>

    def version_name(self, product: str, value: str) -> str:
        """The version a version label's value names (ingress-nginx: its Service's name)."""
        if self.version_from_service and value.startswith(product + "-"):
            return value[len(product) + 1 :]
        return value


def traffic_of(spec: Mapping[str, Any] | None) -> Traffic | None:
    """An ApiProduct's raw spec -> its ``spec.traffic`` through the model (None: not declared).

    Only the section is validated (the Traffic model ``ApiProductSpec`` uses, so the defaults
    are the CRD's): a product whose other fields the model refuses still has its traffic read,
    and its reconciler names the field. Raises InvalidSpec for a traffic section it refuses.
    """
    raw = (spec or {}).get("traffic")
    return None if raw is None else parse(Traffic, raw, "spec.traffic")


def _chosen(model: BaseModel) -> dict[str, Any]:
    """The fields the spec set (``model_fields_set``), by snake_case name: they win over a preset."""
    return {name: getattr(model, name) for name in model.model_fields_set if getattr(model, name) is not None}


def shape_of(traffic: Traffic) -> Shape:
    """The shape of a product's ``spec.traffic``: each metric and label as set, else its preset's."""
    preset = TRAFFIC_PRESETS[traffic.preset]
    chosen = _chosen(traffic)
    labels = {**_DEFAULT["labels"], **preset["labels"], **_chosen(traffic.labels)}
    match = {**preset.get("matchLabels", {}), **(traffic.match_labels or {})}
    return Shape(
        requests=chosen.get("requests_metric") or preset["requestsMetric"],
        duration=chosen.get("duration_metric") or preset["durationMetric"],
        product=labels["product"],
        version=labels["version"],
        consumer=labels["consumer"],
        route=labels["route"],
        status=labels["status"],
        match=tuple(sorted((str(k), str(v)) for k, v in match.items())),
        window=traffic.window,
        timeout_codes=tuple(traffic.timeout_codes),
        top=traffic.top,
        duration_scale=0.001 if preset.get("durationUnit") == "milliseconds" else 1.0,
        version_from_service=bool(preset.get("versionFromService")),
    )


def product_value(name: str, traffic: Traffic) -> str:
    """The product label's value for this ApiProduct."""
    return traffic.product_value or name


def quote(value: str) -> str:
    """A PromQL string literal (double-quoted, escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(shape: Shape, products: Sequence[str], extra: str = "") -> str:
    """``{product=~"a|b", namespace="shop"<extra>}``: the batch's series."""
    regex = "|".join(re.escape(p) for p in products)
    parts = [f"{shape.product}=~{quote(regex)}", *(f"{k}={quote(v)}" for k, v in shape.match)]
    if extra:
        parts.append(extra)
    return "{" + ", ".join(parts) + "}"


def failing(shape: Shape) -> str:
    """Matcher of server errors and timeouts: what counts as a failed request."""
    codes = "|".join(re.escape(c) for c in shape.timeout_codes)
    return f"{shape.status}=~{quote('5..' + ('|' + codes if codes else ''))}"


def queries(shape: Shape, products: Sequence[str]) -> dict[str, str]:
    """The queries of one cycle for a batch of products, by what they answer."""
    sel = selector(shape, products)
    bad = selector(shape, products, failing(shape))
    p, v, w, n = shape.product, shape.version, shape.window, shape.top
    rate = f"rate({shape.requests}{sel}[{w}])"
    bad_rate = f"rate({shape.requests}{bad}[{w}])"
    return {
        "codes": f"sum by ({p}, {v}, {shape.status}) ({rate})",
        "buckets": f"sum by ({p}, {v}, le) (rate({shape.duration}_bucket{sel}[{w}]))",
        "consumers": f"topk by ({p}, {v}) ({n}, sum by ({p}, {v}, {shape.consumer}) ({rate}))",
        "consumerErrors": f"topk by ({p}, {v}) ({n}, sum by ({p}, {v}, {shape.consumer}) ({bad_rate}) > 0)",
        "routes": f"topk by ({p}, {v}) ({n}, sum by ({p}, {v}, {shape.route}) ({rate}))",
        "routeErrors": f"topk by ({p}, {v}) ({n}, sum by ({p}, {v}, {shape.route}) ({bad_rate}) > 0)",
        "weekAgo": f"sum by ({p}, {v}) (rate({shape.requests}{sel}[{w}] offset 1w))",
    }


def failed_requests(shape: Shape, products: Sequence[str], period: str) -> str:
    """Failed requests (server errors and timeouts) per product over ``period`` (the war room)."""
    bad = selector(shape, products, failing(shape))
    return f"sum by ({shape.product}) (increase({shape.requests}{bad}[{period}]))"


def calls(shape: Shape, products: Sequence[str], period: str, offset: str = "") -> str:
    """Requests per product and version over ``period`` (``offset`` e.g. 1w: a week earlier)."""
    shift = f" offset {offset}" if offset else ""
    sel = selector(shape, products)
    return f"sum by ({shape.product}, {shape.version}) (increase({shape.requests}{sel}[{period}]{shift}))"


def batches(values: Iterable[str], size: int = BATCH) -> list[list[str]]:
    """``values`` in sorted batches of at most ``size``."""
    ordered = sorted(set(values))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]
