"""The outbox's sender: what was sent is never handed out again until its result is recorded, and
for a while after (a copy of the object read just then may predate the record)."""

from __future__ import annotations

from pitwall.outbox import Batch, Sender


class Owed:
    """A fake object status: ids owed, and what each send round was asked to skip."""

    def __init__(self, *ids):
        self.owed = set(ids)
        self.rounds: list[tuple[set, frozenset]] = []
        self.recorded: list[str] = []

    async def send(self, namespace, name, exclude):
        due = self.owed - set(exclude)
        self.rounds.append((due, exclude))
        return Batch(results=[f"sent {i}" for i in sorted(due)], ids=due)

    def on_result(self, namespace, name):
        self.recorded.append(name)


async def test_what_was_sent_is_excluded_until_recorded_and_a_while_after():
    status = Owed("a", "b")
    sender = Sender("Thing", status.send, status.on_result)
    await sender.run_once("ns", "x")
    assert status.rounds[-1][0] == {"a", "b"} and status.recorded == ["x"]  # the reconcile is told

    await sender.run_once("ns", "x")  # sent, not recorded yet: nothing again
    assert status.rounds[-1][0] == set()

    results = sender.pending("ns", "x")
    assert results == ["sent a", "sent b"]
    sender.settled("ns", "x", results)  # the reconcile wrote them into status ...
    assert sender.pending("ns", "x") == []
    await sender.run_once("ns", "x")  # ... but a stale copy still shows them owed
    assert status.rounds[-1][0] == set()

    status.owed = {"c"}  # something new is owed: it goes at once
    await sender.run_once("ns", "x")
    assert status.rounds[-1][0] == {"c"}


async def test_an_unrecorded_batch_stays_pending_and_forget_drops_everything():
    status = Owed("a")
    sender = Sender("Thing", status.send, status.on_result)
    await sender.run_once("ns", "x")
    sender.settled("ns", "x", [])  # a reconcile that recorded nothing
    assert sender.pending("ns", "x") == ["sent a"]
    sender.forget("ns", "x")  # the object is gone
    assert sender.pending("ns", "x") == []
