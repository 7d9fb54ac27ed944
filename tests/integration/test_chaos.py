"""The small chaos run (``make chaos`` runs the big one): SIGKILLs at random moments on two
replicas with leader election (most kills take the leader: leader changes), the API server killed
and started again, a receiver outage, alerts firing, escalating, acknowledged and resolved,
windows and deletes, and at the end the receivers' own logs show nothing lost, nothing beyond its
dedup key, one resolve per trigger, no page left on and nothing stuck terminating. The seed is
printed; set PITWALL_CHAOS_SEED to replay one. Short on purpose (CI runs it): a 20 s outage and
a 10 s API server stop here, 10 minutes and 30 s in ``make chaos``."""

from __future__ import annotations

import os
import random

from bench.chaos import run_in, table


def test_kill_the_operator_at_random_moments_and_lose_nothing(cluster, namespace, tmp_path):
    seed = int(os.environ.get("PITWALL_CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6))
    print(f"chaos seed {seed}")
    replay = f"seed {seed} (PITWALL_CHAOS_SEED={seed} replays it)"
    try:
        verdict, facts = run_in(
            cluster,
            tmp_path,
            namespace,
            seed=seed,
            kills=int(os.environ.get("PITWALL_CHAOS_KILLS", 10)),
            probes=3,
            receiver_outage=20,
            api_stop=10,
            replicas=2,
            quiet_timeout=300,
            say=print,
        )
    except Exception as exc:  # a wait that timed out, a process that did not start ...
        raise AssertionError(f"{replay}: {exc}") from exc
    print(table(verdict, facts))
    assert facts["kills"] >= 10, replay
    assert facts["leader_kills"] >= 1, replay  # at least one leader change
    assert verdict.incidents > 0, replay  # the scenario did page someone
    assert verdict.ok(), f"{replay}\n{table(verdict, facts)}\n" + "\n".join(verdict.details[:30])
