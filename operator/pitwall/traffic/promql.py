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

from ..api.apiproduct import TRAFFIC_DEFAULTS, TRAFFIC_LABEL_DEFAULTS

BATCH = 100  # products per query: keeps a query's regex (and URL) bounded


@dataclass(frozen=True)
class Shape:
    """How the traffic of a product is found; products with equal shapes share queries."""

    requests: str = TRAFFIC_DEFAULTS["requestsMetric"]
    duration: str = TRAFFIC_DEFAULTS["durationMetric"]
    product: str = TRAFFIC_LABEL_DEFAULTS["product"]
    version: str = TRAFFIC_LABEL_DEFAULTS["version"]
    consumer: str = TRAFFIC_LABEL_DEFAULTS["consumer"]
    route: str = TRAFFIC_LABEL_DEFAULTS["route"]
    status: str = TRAFFIC_LABEL_DEFAULTS["status"]
    match: tuple[tuple[str, str], ...] = ()
    window: str = TRAFFIC_DEFAULTS["window"]
    timeout_codes: tuple[str, ...] = tuple(TRAFFIC_DEFAULTS["timeoutCodes"])
    top: int = TRAFFIC_DEFAULTS["top"]


def shape_of(traffic: Mapping[str, Any]) -> Shape:
    """The shape of a raw ``spec.traffic`` (camelCase, defaults filled in where absent)."""
    labels = {**TRAFFIC_LABEL_DEFAULTS, **(traffic.get("labels") or {})}
    return Shape(
        requests=traffic.get("requestsMetric") or TRAFFIC_DEFAULTS["requestsMetric"],
        duration=traffic.get("durationMetric") or TRAFFIC_DEFAULTS["durationMetric"],
        product=labels["product"],
        version=labels["version"],
        consumer=labels["consumer"],
        route=labels["route"],
        status=labels["status"],
        match=tuple(sorted((str(k), str(v)) for k, v in (traffic.get("matchLabels") or {}).items())),
        window=traffic.get("window") or TRAFFIC_DEFAULTS["window"],
        timeout_codes=tuple(traffic.get("timeoutCodes") or TRAFFIC_DEFAULTS["timeoutCodes"]),
        top=int(traffic.get("top") or TRAFFIC_DEFAULTS["top"]),
    )


def product_value(name: str, traffic: Mapping[str, Any]) -> str:
    """The product label's value for this ApiProduct."""
    return str(traffic.get("productValue") or name)


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
