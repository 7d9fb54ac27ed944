"""The shared vocabulary: where a version answers, owner references, condition lookups."""

from __future__ import annotations

from pitwall.errors import InvalidSpec
from pitwall.vocabulary import Stalled, condition_of, endpoint_url, owner_reference


def endpoint_slice(service: str, ports: list[dict], *endpoints: tuple[str, bool]) -> dict:
    return {
        "metadata": {"name": f"{service}-abcde", "labels": {"kubernetes.io/service-name": service}},
        "ports": ports,
        "endpoints": [
            {"addresses": [address], "conditions": {"ready": ready}} for address, ready in endpoints
        ],
    }


def test_a_version_answers_on_the_port_named_http_whatever_the_order():
    # The slice of a Service with more ports lists them in any order: the first one is not
    # necessarily the API's (``pitwall probe run`` once took it, the reconciler did not).
    slices = [
        endpoint_slice(
            "orders-v1",
            [{"name": "metrics", "port": 9090}, {"name": "http", "port": 8080}],
            ("10.244.0.7", False),
            ("10.244.0.8", True),
        )
    ]
    assert endpoint_url(slices, "orders-v1") == "http://10.244.0.8:8080"


def test_an_unnamed_single_port_counts_and_other_services_and_unready_pods_do_not():
    slices = [
        endpoint_slice("orders-v2", [{"port": 8080}], ("10.244.0.9", True)),
        endpoint_slice("orders-v1", [{"port": 7000}], ("10.244.0.1", False)),
    ]
    assert endpoint_url(slices, "orders-v1") is None
    assert endpoint_url(slices, "orders-v2", lambda a: a.replace("10.", "127.")) == "http://127.244.0.9:8080"
    assert (
        endpoint_url(
            [endpoint_slice("orders-v2", [{"name": "grpc", "port": 9000}], ("10.0.0.1", True))], "orders-v2"
        )
        is None
    )


def test_owner_references_name_the_owner_and_say_whether_it_controls():
    window = {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "MaintenanceWindow",
        "metadata": {"name": "upgrade", "uid": "u-1"},
    }
    assert owner_reference(window, controller=False) == {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "MaintenanceWindow",
        "name": "upgrade",
        "uid": "u-1",
        "controller": False,
        "blockOwnerDeletion": True,
    }


def test_condition_lookup_skips_garbage_and_an_invalid_spec_says_why_it_stalls():
    obj = {"status": {"conditions": ["junk", {"type": "Ready", "status": "True"}]}}
    assert condition_of(obj, "Ready") == {"type": "Ready", "status": "True"}
    assert condition_of(obj, "Stalled") is None and condition_of(None, "Ready") is None
    assert InvalidSpec("InvalidSchedule", "no such zone").stalled == Stalled(
        "InvalidSchedule", "no such zone"
    )


def test_the_exception_tree_documented_in_errors_is_the_class_tree():
    """Every PitwallError subclass anywhere in the package, under the parent errors.py names."""
    import importlib
    import pkgutil
    import re

    import pitwall
    from pitwall import errors

    for module in pkgutil.walk_packages(pitwall.__path__, "pitwall."):
        if module.name != "pitwall.__main__":
            importlib.import_module(module.name)
    actual, todo = {}, [errors.PitwallError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            actual[sub.__name__] = (cls.__name__, sub.__module__)
            todo.append(sub)
    documented, parents = {}, []
    for indent, name in re.findall(r"^( *)\* (\w+) - ", errors.__doc__, re.MULTILINE):
        del parents[len(indent) // 4 :]
        if parents:
            documented[name] = parents[-1]
        parents.append(name)
    assert documented == {name: parent for name, (parent, _) in actual.items()}
    assert {module for _, module in actual.values()} == {"pitwall.errors"}


def test_every_criticality_the_model_offers_has_an_effect_and_no_other():
    # vocabulary sits below the models (it cannot import them): this keeps its map in step
    from pitwall.api.apiproduct import CRITICALITIES
    from pitwall.vocabulary import CRITICALITY_EFFECT

    assert tuple(CRITICALITY_EFFECT) == CRITICALITIES
