"""Run the benchmarks and append their results to bench/results/<name>.md and .json.

    python -m bench.run                      # all of them, full size (about 10 minutes)
    python -m bench.run --only probes        # one (repeatable)
    python -m bench.run --quick              # smaller sizes: a smoke run of a few minutes
    python -m bench.run --only probes --gatus-bin ~/gatus   # a Gatus binary to compare with
    python -m bench.run --only probes --phases pitwall      # one phase; Gatus and blackbox_exporter
                                                            # reused from a run of today, labelled

Each benchmark starts its own control plane and operator and stops every process it started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import alerts, hostile, probes, products, traffic

BENCHMARKS = {
    "products": products.run,
    "probes": probes.run,
    "alerts": alerts.run,
    "hostile": hostile.run,
    "traffic": traffic.run,
}


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # unwind, so every context manager stops its processes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", action="append", choices=list(BENCHMARKS), help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where control planes and logs go (default: a temp dir, removed afterwards)",
    )
    parser.add_argument("--no-write", action="store_true", help="print the results, do not append them")
    parser.add_argument(
        "--phases",
        help="probe benchmark only: comma-separated phases to run, of "
        f"{','.join(probes.PHASES)} (default: all); Pitwall, Gatus or blackbox_exporter left out "
        "are reused from the newest run of the same size on this machine today (bench/results/"
        "probes.json), labelled with their own time and load",
    )
    parser.add_argument(
        "--gatus-bin",
        help="a Gatus binary for the probe benchmark (default: $PITWALL_GATUS_BIN, "
        "else built from a source tree of github.com/TwiN/gatus, see bench/gatus.py)",
    )
    args = parser.parse_args(argv)
    try:
        phases = probes.parse_phases(args.phases)
    except ValueError as exc:
        parser.error(str(exc))
    if args.phases and args.only and "probes" not in args.only:
        parser.error("--phases applies to the probe benchmark: add --only probes")
    if args.gatus_bin:
        os.environ["PITWALL_GATUS_BIN"] = args.gatus_bin
    signal.signal(signal.SIGTERM, _terminate)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pitwall-bench-"))
    failed = []
    try:
        for name in args.only or list(BENCHMARKS):
            print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
            started = time.monotonic()
            (workdir / name).mkdir(parents=True, exist_ok=True)
            try:
                extra = {"phases": phases} if name == "probes" else {}
                report = BENCHMARKS[name](workdir / name, quick=args.quick, **extra)
            except Exception as exc:  # one broken benchmark does not cost the others their run
                print(f"{name} failed: {exc!r} (logs in {workdir / name})", file=sys.stderr)
                failed.append(name)
                continue
            print(report.markdown())
            if not args.no_write:
                print(f"appended to {report.write()}")
            print(f"({name} took {time.monotonic() - started:.0f}s)\n", flush=True)
    finally:
        if not args.workdir and not failed:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
