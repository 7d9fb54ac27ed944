"""Shard assignment (rendezvous hashing) and the fair-share plan over shard Leases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

from tests.unit.kubeapi import KubeAPI

from pitwall.leader import LeaseView
from pitwall.shards import MEMBERS_ANNOTATION, Shards, members_of, plan, renewed_members, shard_of

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def held(holder: str, ago: float = 1.0) -> LeaseView:
    return LeaseView(holder, NOW - timedelta(seconds=ago), 15.0, 0)


def test_shard_of_is_stable_spread_and_moves_few_probes_when_shards_are_added():
    uids = [f"uid-{i}" for i in range(4000)]
    spread = Counter(shard_of(uid, 4) for uid in uids)
    assert set(spread) == {0, 1, 2, 3}
    assert all(800 <= n <= 1200 for n in spread.values())
    assert [shard_of(uid, 4) for uid in uids[:50]] == [shard_of(uid, 4) for uid in uids[:50]]
    moved = sum(1 for uid in uids if shard_of(uid, 4) != shard_of(uid, 5))
    assert moved < len(uids) * 0.3  # only those that go to the new shard (about 1/5), not most


def test_alone_a_replica_takes_every_shard():
    decided = plan([None, None, None, None], 1, "a", NOW)
    assert decided.take == (0, 1, 2, 3) and not decided.release


def test_a_second_replica_gets_half_and_the_first_hands_its_extra_shards_over():
    shards = [held("a")] * 4
    first = plan(shards, 2, "a", NOW)
    assert first.renew == (0, 1) and first.release == (2, 3) and not first.take
    after = [held("a"), held("a"), LeaseView("", NOW, 15.0, 1), LeaseView("", NOW, 15.0, 1)]
    second = plan(after, 2, "b", NOW)
    assert second.take == (2, 3)


def test_a_live_holders_shard_is_never_taken_an_expired_one_is():
    assert plan([held("a"), held("b")], 2, "c", NOW).take == ()
    decided = plan([held("a", ago=16), held("b")], 1, "b", NOW)
    assert decided.renew == (1,) and decided.take == (0,)


def test_membership_renews_me_and_forgets_replicas_dead_for_three_lease_durations():
    known = {"a": NOW - timedelta(seconds=5), "dead": NOW - timedelta(seconds=46)}
    assert renewed_members(known, "b", NOW, 15.0) == {"a": known["a"], "b": NOW}
    lease = {"metadata": {"annotations": {MEMBERS_ANNOTATION: '{"a": "2026-11-29T12:00:00+00:00"}'}}}
    assert members_of(lease) == {"a": NOW}
    assert members_of({"metadata": {"annotations": {MEMBERS_ANNOTATION: "not json"}}}) == {}
    assert members_of(None) == {}


async def test_a_role_that_names_too_few_shard_leases_is_an_error_that_says_so(caplog):
    api = KubeAPI()
    # The Role names the Leases of shards 0 and 1 only.
    api.refuse[("GET", "Lease", "pitwall-shard-2")] = (
        403,
        "Forbidden",
        'leases "pitwall-shard-2" is forbidden',
    )
    gained: list[frozenset[int]] = []

    async def gain(shards: frozenset[int]) -> None:
        gained.append(shards)

    async def lose(shards: frozenset[int]) -> None:
        pass

    shards = Shards(
        api.kube(),
        "pitwall-system",
        3,
        "a",
        on_gain=gain,
        on_loss=lose,
        duration=2.0,
        renew=0.5,
    )
    with caplog.at_level(logging.ERROR, logger="pitwall.shards"):
        task = asyncio.create_task(shards.run())
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not gained and not shards.owned  # no probe runs on a half-held set of shards
    assert any(
        "--probe-shards 3 needs get and update on the Leases pitwall-shard-members and pitwall-shard-0 "
        "to pitwall-shard-2 in pitwall-system"
        in record.getMessage()
        and "forbidden" in record.getMessage()
        for record in caplog.records
    ), caplog.text
