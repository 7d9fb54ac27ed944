"""A noisy neighbour: a process that wants ``--share`` of one core (default half), all the time.

Each 20 ms period it spins until it has used ``share`` x 20 ms of CPU (its own CPU clock, so
being preempted does not make it want less), then sleeps to the period's end. The probe
benchmark runs it beside each contender in turn (the same load for all), with its CPU measured.

    python -m bench.noise --share 0.5
"""

from __future__ import annotations

import argparse
import time

PERIOD = 0.02


def burn(share: float) -> None:
    while True:
        start, cpu0 = time.monotonic(), time.process_time()
        while time.process_time() - cpu0 < share * PERIOD and time.monotonic() - start < PERIOD:
            pass
        rest = PERIOD - (time.monotonic() - start)
        if rest > 0:
            time.sleep(rest)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.noise", description=__doc__.splitlines()[0])
    parser.add_argument("--share", type=float, default=0.5, help="fraction of one core to use (default 0.5)")
    args = parser.parse_args(argv)
    if not 0 < args.share <= 1:
        parser.error("--share must be in (0, 1]")
    try:
        burn(args.share)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
