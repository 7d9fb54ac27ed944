"""The incident pass and the incident history at marketplace scale (issue 17).

    python -m bench.incidents              # 1,000 public products, 2,000 incidents in 90 days
    python -m bench.incidents --quick      # 200 products, 400 incidents

What a pass of the incident service costs (it runs every 2 s on the leader and at once after
changes): the status page's verdicts of every product plus the decisions, with a tenth of the
products down; and what the public model with 90 days of history, the page and the Atom feed
cost (built at most once a second, shared by every visitor). Pure functions over the same
dicts the watch caches hold; no cluster needed.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

from pitwall.durations import rfc3339
from pitwall.incidents import decide
from pitwall.statuspage.feed import atom
from pitwall.statuspage.model import product_views, public_status
from pitwall.statuspage.relations import Snapshot
from pitwall.statuspage.render import render_public

from .common import RESULTS, machine

NOW = datetime.now(UTC).replace(microsecond=0)


def world(products: int, incidents: int) -> Snapshot:
    objs, probes, found = [], [], []
    for i in range(products):
        name = f"p{i:04d}"
        down = i % 10 == 0
        objs.append(
            {
                "metadata": {"name": name, "namespace": "bench"},
                "spec": {
                    "displayName": f"Product {i}",
                    "public": True,
                    "versions": [{"name": "v1", "replicas": 1}, {"name": "v2", "replicas": 1}],
                    "consumers": [
                        {"name": f"c{j}", "contact": {"email": f"c{j}@x.example"}} for j in range(5)
                    ],
                },
                "status": {
                    "versions": [
                        {"name": v, "replicas": 1, "readyReplicas": 1, "state": "Available"}
                        for v in ("v1", "v2")
                    ],
                    "conditions": [
                        {
                            "type": "Available",
                            "status": "True",
                            "reason": "Ok",
                            "lastTransitionTime": rfc3339(NOW),
                        }
                    ],
                },
            }
        )
        for v in ("v1", "v2"):
            probes.append(
                {
                    "metadata": {"name": f"{name}-{v}", "namespace": "bench"},
                    "spec": {"target": {"apiProduct": {"name": name, "version": v}}},
                    "status": {"state": "Down" if down else "Up", "lastTransitionAt": rfc3339(NOW)},
                }
            )
    for k in range(incidents):
        product = f"p{k % products:04d}"
        start = NOW - timedelta(hours=(k * 24 * 89) // max(1, incidents) + 1)
        found.append(
            {
                "metadata": {
                    "name": f"{product}-{k}",
                    "namespace": "bench",
                    "labels": {decide.OPENED_BY: "pitwall", decide.LABEL_PRODUCT: product},
                },
                "spec": {
                    "type": "incident",
                    "products": [{"name": product}],
                    "status": "resolved",
                    "updates": [
                        {
                            "message": f"Update {n} about the fault.",
                            "status": "identified",
                            "author": "oncall",
                            "at": rfc3339(start + timedelta(minutes=n)),
                        }
                        for n in range(3)
                    ],
                },
                "status": {
                    "phase": "Resolved",
                    "impact": "outage",
                    "cause": "Product: down.",
                    "affected": [{"name": product, "versions": ["v1", "v2"]}],
                    "startedAt": rfc3339(start),
                    "resolvedAt": rfc3339(start + timedelta(minutes=20)),
                    "resolvedBy": "pitwall",
                    "resolution": "Back.",
                },
            }
        )
    return Snapshot(products=objs, probes=probes, incidents=found)


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    products, incidents = (200, 400) if args.quick else (1000, 2000)
    snap = world(products, incidents)
    by_product: dict = {}
    for incident in snap.incidents:
        by_product.setdefault(incident["spec"]["products"][0]["name"], []).append(incident)

    def one_pass() -> int:
        actions = 0
        for view in product_views(snap, NOW):
            bad = {
                v.name: (v.verdict.state, v.verdict.reason, v.verdict.since)
                for v in view.versions
                if v.verdict.state in decide.BAD
            }
            evidence = decide.Evidence("bench", view.key[1], "x", bad, not bad, 300.0)
            actions += len(decide.plan_product(evidence, by_product.get(view.key[1], []), NOW))
        return actions

    opened = one_pass()
    page: dict = {}

    def model() -> None:
        page.update(public_status(snap, NOW))

    results = {
        "products": products,
        "incidents": incidents,
        "opened_in_a_pass": opened,
        "pass_seconds": timed(one_pass),
        "public_model_seconds": timed(model),
        "page_html_seconds": timed(lambda: render_public(page)),
        "feed_seconds": timed(lambda: atom(page, title="API status", base_url="http://status.example")),
        "history_entries": len(page["history"]),
        "page_html_bytes": len(render_public(page).encode()),
        "feed_bytes": len(atom(page, title="API status", base_url="http://status.example").encode()),
        "machine": machine(),
    }
    print(json.dumps(results, indent=2))
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "incidents.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
