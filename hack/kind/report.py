"""Write bench/results/kind.md from one `make e2e-kind` run's measurements (hack/e2e-kind.sh).

The numbers come from tests/journeys.py's kind journeys (``--measurements``): time from
``kubectl apply`` of a new version to its probe Up on real pods, how late a client curling the
Service saw the maintenance page and the API again, and the Lease takeover after the leader pod
was deleted. The machine is noted: these are one run's numbers on the machine named, not a
benchmark across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime

ROWS = [
    (
        "apply_to_probe_up_s",
        "`kubectl apply` of a new version (ApiProduct + Probe) to its probe Up, real pods",
        "s",
    ),
    (
        "maintenance_on_seen_s",
        "window start to the first maintenance-page answer seen by a client pod "
        "curling the Service (every 0.2 s)",
        "s",
    ),
    ("maintenance_off_seen_s", "window end to the first API answer seen by that client again", "s"),
    (
        "maintenance_other_answers_during",
        "answers other than the page between the switch and the window's end",
        "",
    ),
    ("leader_takeover_s", "leader pod deleted to another replica holding the Lease", "s"),
]


def machine() -> str:
    cores = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // (1024 * 1024)
    except OSError:
        mem = 0
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    cgroup = "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"
    return (
        f"{platform.system()} {platform.release()}, {cores} cores, {mem} GiB, cgroup {cgroup}, "
        f"load average {load:.1f} at the end (cores shared with other work)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("measurements")
    parser.add_argument("out")
    parser.add_argument("--kind-version", default="")
    parser.add_argument("--node-image", default="")
    parser.add_argument("--k8s-version", default="")
    parser.add_argument("--steps", default="", help="name=seconds ... of hack/e2e-kind.sh's steps")
    parser.add_argument("--total", type=int, default=0)
    args = parser.parse_args(argv)
    with open(args.measurements) as f:
        data = json.load(f)
    m = data.get("measurements") or {}
    steps = dict(item.split("=", 1) for item in args.steps.split() if "=" in item)
    lines = [
        "# kind end-to-end: measured with real pods",
        "",
        "Written by `make e2e-kind` (hack/e2e-kind.sh, hack/kind/report.py) from the kind journeys of",
        "tests/journeys.py. One run, on the machine below; rerun `make e2e-kind` to refresh.",
        "",
        f"- when: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()}",
        f"- kind: {args.kind_version}; node image: {args.node_image}; Kubernetes v{args.k8s_version}",
        f"- journeys: {data.get('total', 0) - len(data.get('failed') or [])} of {data.get('total', 0)} passed",
        "",
        "| what | value |",
        "| --- | --- |",
    ]
    for key, label, unit in ROWS:
        if key in m:
            lines.append(f"| {label} | {m[key]}{' ' + unit if unit else ''} |")
    if steps:
        lines += [
            "",
            "Steps of this run (seconds; build steps are near 0 when cached):",
            "",
            "| step | s |",
            "| --- | --- |",
        ]
        lines += [f"| {k} | {v} |" for k, v in steps.items()]
        lines.append(f"| total | {args.total} |")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
