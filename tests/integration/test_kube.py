"""The API client and the runtime's status writes against the real API server."""

from __future__ import annotations

from pitwall.conditions import Condition
from pitwall.kube import Kube
from pitwall.runtime import Runtime, Settings


async def test_a_listing_comes_a_page_at_a_time_and_whole(cluster, namespace, kubectl):
    for index in range(7):
        kubectl.apply(
            {
                "apiVersion": "pitwall.dev/v1alpha1",
                "kind": "Probe",
                "metadata": {"name": f"p{index}"},
                "spec": {"target": {"url": "http://127.0.0.1:1/isUp"}, "paused": True},
            }
        )
    async with Kube.from_env(str(cluster.kubeconfig)) as kube:
        pages = [
            [item["metadata"]["name"] for item in page]
            async for page in kube.pages("Probe", namespace, limit=3)
        ]
        listed = await kube.list("Probe", namespace)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert sorted(sum(pages, [])) == [f"p{index}" for index in range(7)]
    assert sorted(item["metadata"]["name"] for item in listed) == sorted(sum(pages, []))
    assert {item["kind"] for item in listed} == {"Probe"}


async def test_a_status_write_is_kept_only_until_the_watch_brings_it_back(cluster, namespace, kubectl):
    """Before the watch echoes a write, reconcilers read the written status; once the cache holds
    it, the runtime lets its own copy go (one status per object in memory, not two) and an
    unchanged status is still not written again."""
    kubectl.apply(
        {
            "apiVersion": "pitwall.dev/v1alpha1",
            "kind": "Probe",
            "metadata": {"name": "isup"},
            "spec": {"target": {"url": "http://127.0.0.1:1/isUp"}, "paused": True},
        }
    )
    async with Kube.from_env(str(cluster.kubeconfig)) as kube:
        rt = Runtime(kube=kube, settings=Settings())
        stale = await kube.get("Probe", namespace, "isup")
        rt.stores["Probe"].update("ADDED", stale)
        wanted = [Condition.true("Healthy", "Up", "the last runs passed")]

        assert await rt.write_status(stale, {"state": "Up"}, wanted)
        assert rt.status_of(stale)["state"] == "Up"  # read back before the echo

        echo = await kube.get("Probe", namespace, "isup")  # what the watch delivers
        assert echo["status"]["state"] == "Up"
        rt.stores["Probe"].update("MODIFIED", echo)
        assert rt._written == {}  # the cache holds it now
        assert not await rt.write_status(echo, {"state": "Up"}, wanted)  # nothing changed
        assert await rt.write_status(echo, {"state": "Down"}, wanted)
        assert kubectl.get("probe", "isup")["status"]["state"] == "Down"
