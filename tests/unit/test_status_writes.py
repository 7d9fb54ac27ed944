"""Status writes send only what changed (issue 18): the patch is smaller, the object the same."""

from __future__ import annotations

import copy
import json

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.kubeapi import KubeAPI, merge_patch, runtime

from pitwall.conditions import Condition
from pitwall.runtime import changed

NS = "shop"

_leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["a", "b", "1/2 3/4"]))
_value = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abcd"), inner, max_size=4)
    ),
    max_leaves=12,
)
_status = st.dictionaries(st.sampled_from(["state", "history", "lastRun", "target", "x"]), _value, max_size=5)


def _without_nulls(value):
    """What a server stores: merge-patch nulls remove keys, so none is ever stored."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


@given(have=_status, want=_status)
@settings(max_examples=400, deadline=None)
def test_the_smaller_patch_gives_the_same_object_as_the_whole_one(have, want):
    have = _without_nulls(have)
    patch = changed(want, have)
    assert merge_patch(copy.deepcopy(have), patch) == merge_patch(copy.deepcopy(have), want)
    for key, value in patch.items():  # nothing travels that is already there
        assert have.get(key) != value or value is None


def test_only_changed_keys_travel_nested_objects_key_by_key():
    have = {
        "state": "Up",
        "history": {
            "hourly": {"from": "2026-03-01T12:00:00Z", "runs": "6/6"},
            "daily": {"from": "x", "runs": "9/9"},
        },
        "lastFailure": {"reason": "timeout"},
    }
    want = {
        "state": "Up",
        "history": {
            "hourly": {"from": "2026-03-01T12:00:00Z", "runs": "7/7"},
            "daily": {"from": "x", "runs": "9/9"},
        },
        "lastFailure": None,
        "gone": None,
    }
    assert changed(want, have) == {"history": {"hourly": {"runs": "7/7"}}, "lastFailure": None}
    assert changed(have, have) == {}


class RecordingAPI(KubeAPI):
    """The in-memory API, keeping the body of every status PATCH."""

    def __init__(self) -> None:
        super().__init__()
        self.patches: list[dict] = []
        handle = self.transport.handler

        def record(request: httpx.Request) -> httpx.Response:
            if request.method == "PATCH" and request.url.path.endswith("/status"):
                self.patches.append(json.loads(request.content))
                assert "as=PartialObjectMetadata" in request.headers["Accept"]
            return handle(request)

        self.transport = httpx.MockTransport(record)


async def test_a_steady_write_sends_what_changed_and_the_status_is_complete():
    api = RecordingAPI()
    api.put(
        {
            "apiVersion": "pitwall.dev/v1alpha1",
            "kind": "Probe",
            "metadata": {"name": "orders-up", "namespace": NS},
            "spec": {"target": {"url": "http://orders"}, "interval": "30s"},
        }
    )
    rt = runtime(api)
    probe = api.get("Probe", NS, "orders-up")
    ready = [Condition.true("Ready", "Up", "")]
    first = {
        "state": "Up",
        "target": "http://orders",
        "consecutiveSuccesses": 1,
        "history": {"hourly": {"from": "2026-03-01T12:00:00Z", "runs": "1/1"}},
        "lastRun": {"at": "2026-03-01T12:00:00Z", "result": "Success"},
    }
    assert await rt.write_status(probe, first, ready)
    second = {
        **first,
        "consecutiveSuccesses": 2,
        "history": {"hourly": {"from": "2026-03-01T12:00:00Z", "runs": "2/2"}},
        "lastRun": {"at": "2026-03-01T12:00:10Z", "result": "Success"},
    }
    assert await rt.write_status(api.get("Probe", NS, "orders-up"), second, ready)

    assert set(api.patches[0]["status"]) == {*first, "observedGeneration", "conditions"}
    assert api.patches[1]["status"] == {
        "consecutiveSuccesses": 2,
        "history": {"hourly": {"runs": "2/2"}},
        "lastRun": {"at": "2026-03-01T12:00:10Z"},
    }
    status = api.get("Probe", NS, "orders-up")["status"]
    assert {k: status[k] for k in second} == second
    assert status["conditions"][0]["type"] == "Ready"
