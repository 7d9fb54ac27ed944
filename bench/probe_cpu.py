"""CPU per plain check through the real engine: ``run_check`` with the real egress client.

A micro-benchmark for the probe engine's hot path (issue 18 item 3), beside ``make bench``'s
full run: N plain checks (GET ``/isUp``, expect 200) against an aiohttp server in a separate
process (its CPU is not counted), ``concurrency`` at a time, the client shared as the monitor
shares it. Reports this process's CPU time (``time.process_time``, less sensitive than wall time
to a loaded machine) per 1,000 checks, best of ``--rounds``.

    .venv/bin/python bench/probe_cpu.py [-n 2000] [--concurrency 50] [--rounds 5] [--profile out.prof]
                                        [--httpcore] [--monitor PROBES] [--uvloop]

By default the client is the one the operator gives checks without a proxy (``LeanTransport``:
asyncio and llhttp); ``--httpcore`` measures the httpcore-based client checks with a proxy use
(the operator's only client before 2026-11-29), so the two can be compared on one machine.
``--monitor 500`` runs the checks through ``Monitor.run`` for 500 probes in turn, adding what
the operator does with each verdict (health, stats, metrics series, the write decision).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import multiprocessing
import time

from pitwall.egress import Policy
from pitwall.probes.client import make_client
from pitwall.probes.engine import run_check
from pitwall.probes.spec import parse_check


def _serve(port_out) -> None:
    from aiohttp import web

    async def is_up(request):
        return web.json_response({"status": "UP"})

    async def main():
        app = web.Application()
        app.router.add_get("/isUp", is_up)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def _secrets(name: str, key: str) -> str | None:
    return None


def _engine(check, client):
    async def run(i: int):
        return await run_check(check, client=client, secrets=_secrets)

    return run


def _monitor(check, probes: int, lean: bool):
    """``Monitor.run`` for ``probes`` jobs in turn: the engine plus what the operator does with
    each verdict (health, stats, Prometheus series, the status-write decision; the write itself
    is a no-op here). The scheduler is not started: the harness is the schedule."""
    from pitwall.probes import monitor as monitor_module
    from pitwall.probes.monitor import Job, Monitor
    from pitwall.runtime import Runtime, Settings

    if not lean:
        monitor_module.make_client = functools.partial(make_client, lean=False)
    monitor = Monitor(Runtime(kube=None, settings=Settings()))

    async def publish(job, result, transition):
        pass

    keys = [("Probe", "bench", f"p{i}") for i in range(probes)]
    for key in keys:
        monitor.jobs[key] = Job(
            key=key, generation=1, check=check, resolve=lambda: None, imposed=lambda: None, publish=publish
        )

    async def run(i: int):
        return await monitor.run(keys[i % probes])

    return run


async def _round(run, n: int, concurrency: int) -> tuple[float, int]:
    gate = asyncio.Semaphore(concurrency)
    failed = 0

    async def one(i: int):
        nonlocal failed
        async with gate:
            result = await run(i)
            failed += not result.ok

    start = time.process_time()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.process_time() - start, failed


async def main(args) -> None:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(queue,), daemon=True)
    server.start()
    port = queue.get(timeout=30)
    check = parse_check({"target": {"url": f"http://127.0.0.1:{port}/isUp"}})
    client = await make_client(
        check, secrets=_secrets, policy=Policy.from_lists(local_ports=[18080]), lean=not args.httpcore
    )
    run = _monitor(check, args.monitor, not args.httpcore) if args.monitor else _engine(check, client)
    await _round(run, 200, args.concurrency)  # warm up: connections, imports, caches
    profile = cProfile.Profile() if args.profile else None
    best = None
    for _ in range(args.rounds):
        if profile:
            profile.enable()
        cpu, failed = await _round(run, args.n, args.concurrency)
        if profile:
            profile.disable()
        per_1000 = cpu / args.n * 1000
        print(f"{args.n} checks, {failed} failed: {per_1000:.3f} CPU-s per 1,000 checks")
        best = per_1000 if best is None else min(best, per_1000)
    print(f"best: {best:.3f} CPU-s per 1,000 checks")
    if profile:
        profile.dump_stats(args.profile)
    await client.aclose()
    server.terminate()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", help="write a cProfile of the measured rounds to this file")
    parser.add_argument(
        "--httpcore",
        action="store_true",
        help="the httpcore-based client (checks with a proxy use it) instead of the lean transport",
    )
    parser.add_argument(
        "--monitor",
        type=int,
        metavar="PROBES",
        help="run the checks through Monitor.run for this many probes (verdicts, stats, metrics)",
    )
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (must be installed)")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(main(args))
    else:
        asyncio.run(main(args))
