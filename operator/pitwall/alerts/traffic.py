"""Traffic rules: observations from the traffic service's figures, and the war room.

A rule with ``spec.traffic`` watches the real traffic of the ApiProducts its selector picks
(those with ``spec.traffic``) instead of a condition. Each unit (product, version or consumer)
becomes an :class:`~pitwall.alerts.state.Observation` of the condition ``Traffic`` that is
``True`` while breached, so ``when.for``, severities, acknowledgement, escalation, reminders,
the outbox and maintenance holds work exactly as for probes. When Prometheus has no figures
for a product, its alerts keep the state they had: no alert resolves, none fires, on missing
data.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from .. import durations
from ..errors import TrafficError
from ..runtime import Runtime
from . import digest
from . import status as alert_status
from .rules import TRAFFIC_WHEN, Rule, judge_traffic, matches
from .state import FIRING, HELD, PENDING, Evaluation, Observation

log = logging.getLogger("pitwall.alerts")
KIND = "ApiProduct"


def _selected(rt: Runtime, rule: Rule, namespace: str) -> list[dict]:
    return [
        p
        for p in rt.stores[KIND].list(namespace)
        if (p.get("spec") or {}).get("traffic") is not None
        and not p["metadata"].get("deletionTimestamp")
        and matches(rule.selector, KIND, p["metadata"].get("labels"))
    ]


def _product_of(unit: str) -> str:
    return unit.split("/", 1)[0]


async def observations(rt: Runtime, rule: Rule, namespace: str, records: list[dict]) -> list[Observation]:
    """What the rule's traffic condition says now about each unit of the selected products."""
    assert rule.traffic is not None
    cond = rule.traffic
    products = _selected(rt, rule, namespace)
    failed: dict[tuple[str, str], float] | None = None
    if cond.signal == "failedRequests" and rt.traffic is not None and products:
        try:
            failed = await rt.traffic.failed_requests(
                [(namespace, p["metadata"]["name"]) for p in products], cond.over
            )
        except TrafficError as exc:
            log.warning("traffic rule %s/%s: %s", namespace, rule.name, exc)
    out: list[Observation] = []
    for product in products:
        name = product["metadata"]["name"]
        reading = rt.traffic.reading(namespace, name) if rt.traffic is not None else None
        figures = reading.figures if reading is not None and reading.error is None else None
        count = failed.get((namespace, name)) if failed is not None else None
        if figures is None or (cond.signal == "failedRequests" and count is None):
            # No figures: every open alert of this product keeps its state.
            for record in records:
                unit = (record.get("object") or {}).get("name", "")
                if _product_of(unit) == name:
                    keep = record.get("state") in (PENDING, FIRING, HELD)
                    out.append(
                        Observation(
                            KIND,
                            unit,
                            "True" if keep else "False",
                            message=f"{unit}: no traffic figures ({reading.error if reading else 'not read yet'})",
                        )
                    )
            continue
        versions = [
            v["name"]
            for v in (product.get("spec") or {}).get("versions") or []
            if v.get("lifecycle") != "retired"
        ]
        for verdict in judge_traffic(cond, name, figures, versions, count):
            out.append(
                Observation(
                    KIND,
                    verdict.name,
                    "True" if verdict.breached else "False",
                    reason=TRAFFIC_WHEN,
                    message=verdict.message,
                    value=verdict.value,
                )
            )
    return out


def held_units(held: Collection[tuple[str, str]], observed: list[Observation]) -> set[tuple[str, str]]:
    """A product held by a maintenance window holds every unit of it (its versions, consumers)."""
    out = set(held)
    for obs in observed:
        if (KIND, _product_of(obs.name)) in held:
            out.add((obs.kind, obs.name))
    return out


async def war_room(
    rt: Runtime, obj: dict, rule: Rule, result: Evaluation, observed: Collection[Observation] = ()
) -> None:
    """A war-room rule: the room opens when an alert fires and closes when none does; each
    change is an Event on the rule and the products, and status.warRoom records it (with the
    failed requests of its products when it opened, from ``observed``)."""
    if rule.traffic is None or not rule.traffic.war_room:
        return
    firing = [r for r in result.records if r.get("state") == FIRING]
    products = sorted({_product_of((r.get("object") or {}).get("name", "")) for r in firing})
    current = rt.status_of(obj).get("warRoom") or {}
    now = durations.rfc3339(durations.now())
    if products and current.get("state") != "open":
        message = (
            f"war room opened: failed requests of {', '.join(products)} passed {rule.traffic.above:g} over "
            f"{rule.traffic.over}; " + "; ".join(r.get("subject", "") for r in firing)
        )[:1000]
        counts = [o.value for o in observed if o.name in products and o.value is not None]
        await rt.write_status(
            obj,
            alert_status.patch(
                war_room={
                    "state": "open",
                    "openedAt": now,
                    "products": products[:50],
                    "failedRequests": sum(counts) if counts else None,
                    "threshold": rule.traffic.above,
                    "message": message,
                }
            ),
            [],
        )
        await rt.event(obj, "WarRoomOpened", message, warning=True)
        for name in products:
            product = rt.stores[KIND].get(obj["metadata"]["namespace"], name)
            if product is not None:
                await rt.event(product, "WarRoomOpened", f"AlertRule {rule.name}: {message}", warning=True)
    elif not products and current.get("state") == "open":
        message = (
            f"war room closed: failed requests of {', '.join(current.get('products') or [])} back under "
            f"{rule.traffic.above:g} over {rule.traffic.over}"
        )[:1000]
        await rt.write_status(
            obj,
            alert_status.patch(war_room={**current, "state": "closed", "closedAt": now, "message": message}),
            [],
        )
        await rt.event(obj, "WarRoomClosed", message)


async def digest_traffic(
    rt: Runtime, namespace: str, products: list[dict], interval: float
) -> tuple[dict[str, dict] | None, str]:
    """Traffic for the digest: calls and failures per environment over the digest's interval,
    and the calls of the same period a week ago (``offset 1w``); None without figures."""
    period = durations.format(interval)
    keys = [
        (namespace, p["metadata"]["name"])
        for p in products
        if (p.get("spec") or {}).get("traffic") is not None
    ]
    if rt.traffic is None or rt.traffic.source is None or not keys:
        return None, period
    seconds = f"{max(1, int(interval))}s"
    try:
        calls = await rt.traffic.calls(keys, seconds)
        week_ago = await rt.traffic.calls(keys, seconds, offset="1w")
        failed = await rt.traffic.failed_requests(keys, seconds)
    except TrafficError as exc:
        log.warning("digest traffic %s: %s", namespace, exc)
        return None, period

    def by_name(counts: dict[tuple[str, str], float]) -> dict[str, float]:
        return {name: value for (_, name), value in counts.items()}

    return digest.traffic_by_environment(products, by_name(calls), by_name(failed), by_name(week_ago)), period
