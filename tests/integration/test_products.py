"""ApiProduct against the real control plane: kube-controller-manager, scheduler and kwok make
replicas really become Ready (or, for an image containing 'unready', never)."""

from __future__ import annotations

from tests.conftest import condition, eventually


def product(name: str, versions: list[dict], **spec) -> dict:
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "ApiProduct",
        "metadata": {"name": name},
        "spec": {"displayName": name.title(), "owner": {"team": "payments"}, "versions": versions, **spec},
    }


def ready(kubectl, name):
    obj = kubectl.get("apiproduct", name)
    return (
        obj
        if condition(obj, "Ready").get("status") == "True"
        and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
        else None
    )


def test_two_products_become_ready_with_their_workloads(operator, kubectl):
    kubectl.apply(
        product(
            "payments",
            [
                {
                    "name": "v1",
                    "image": "registry.example.com/payments:1.9.3",
                    "replicas": 2,
                    "lifecycle": "deprecated",
                    "sunsetAt": "2027-03-01T00:00:00Z",
                },
                {"name": "v2", "image": "registry.example.com/payments:2.3.0", "replicas": 3},
            ],
        )
    )
    kubectl.apply(
        product(
            "refdata",
            [
                {"name": "v1", "image": "registry.example.com/refdata:1.0.0", "replicas": 1},
                {"name": "v2", "image": "registry.example.com/refdata:2.0.0", "replicas": 1, "port": 9090},
            ],
        )
    )
    for name in ("payments", "refdata"):
        eventually(lambda n=name: ready(kubectl, n), message=f"{name} Ready")

    dep = kubectl.get("deployment", "payments-v2")
    assert dep["spec"]["replicas"] == 3
    assert dep["status"]["readyReplicas"] == 3
    labels = dep["metadata"]["labels"]
    assert labels["pitwall.dev/product"] == "payments" and labels["pitwall.dev/version"] == "v2"
    assert labels["app.kubernetes.io/managed-by"] == "pitwall"
    assert dep["metadata"]["ownerReferences"][0]["kind"] == "ApiProduct"
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/isUp"
    v1_env = {
        e["name"]: e.get("value")
        for e in kubectl.get("deployment", "payments-v1")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert v1_env["API_SUNSET"] == "2027-03-01T00:00:00Z"
    svc = kubectl.get("service", "refdata-v2")
    assert svc["spec"]["selector"]["pitwall.dev/version"] == "v2"
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    status = kubectl.get("apiproduct", "payments")["status"]
    assert status["readyVersions"] == "2/2"
    assert {v["name"]: v["readyReplicas"] for v in status["versions"]} == {"v1": 2, "v2": 3}
    assert status["versions"][0]["url"] == f"http://payments-v1.{kubectl.namespace}.svc"
    assert any(e["reason"] == "VersionDeprecated" for e in kubectl.events("payments"))
    # kubectl wait works on the kind (kstatus)
    kubectl("wait", "--for=condition=Ready", "apiproduct/payments", "--timeout=10s")


def test_runtime_replica_edit_reaches_the_deployment(operator, kubectl):
    kubectl.apply(
        product("orders", [{"name": "v1", "image": "registry.example.com/orders:1", "replicas": 1}])
    )
    eventually(lambda: ready(kubectl, "orders"))
    kubectl.patch(
        "apiproduct",
        "orders",
        {
            "spec": {
                "versions": [
                    {
                        "name": "v1",
                        "image": "registry.example.com/orders:1",
                        "replicas": 4,
                        "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                    }
                ]
            }
        },
    )
    eventually(lambda: kubectl.get("deployment", "orders-v1")["spec"]["replicas"] == 4)
    eventually(
        lambda: (
            (ready(kubectl, "orders") or {}).get("status", {}).get("versions", [{}])[0].get("readyReplicas")
            == 4
        ),
        message="status shows 4 ready",
    )
    env = kubectl.get("deployment", "orders-v1")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "LOG_LEVEL", "value": "debug"} in env


def test_hand_edit_of_an_owned_field_is_reverted_and_recorded(operator, kubectl):
    kubectl.apply(
        product("ledger", [{"name": "v1", "image": "registry.example.com/ledger:1", "replicas": 2}])
    )
    eventually(lambda: ready(kubectl, "ledger"))
    kubectl("set", "image", "deployment/ledger-v1", "api=evil.example.com/ledger:hacked")
    kubectl("annotate", "deployment/ledger-v1", "team.example.com/note=kept")  # not Pitwall's field
    eventually(
        lambda: (
            kubectl.get("deployment", "ledger-v1")["spec"]["template"]["spec"]["containers"][0]["image"]
            == "registry.example.com/ledger:1"
        ),
        message="image reverted",
    )
    events = eventually(lambda: [e for e in kubectl.events("ledger") if e["reason"] == "DriftReverted"])
    assert "image" in events[0]["message"]
    assert (
        kubectl.get("deployment", "ledger-v1")["metadata"]["annotations"]["team.example.com/note"] == "kept"
    )


def test_failed_rollout_is_rolled_back_once(operator, kubectl):
    versions = [{"name": "v1", "image": "registry.example.com/quotes:1.0", "replicas": 2}]
    kubectl.apply(product("quotes", versions, rollout={"progressDeadline": "3s"}))
    eventually(lambda: ready(kubectl, "quotes"))
    broken = "registry.example.com/quotes:1.1-unready"  # kwok keeps these pods unready
    kubectl.patch("apiproduct", "quotes", {"spec": {"versions": [{**versions[0], "image": broken}]}})
    obj = eventually(
        lambda: (lambda o: o if condition(o, "RolledBack").get("status") == "True" else None)(
            kubectl.get("apiproduct", "quotes")
        ),
        timeout=60,
        message="RolledBack=True",
    )
    assert broken in condition(obj, "RolledBack")["message"]
    assert obj["status"]["rolledBack"][0]["restoredImage"] == "registry.example.com/quotes:1.0"
    eventually(
        lambda: (
            kubectl.get("deployment", "quotes-v1")["spec"]["template"]["spec"]["containers"][0]["image"]
            == "registry.example.com/quotes:1.0"
        ),
        message="restored image applied",
    )
    eventually(lambda: ready(kubectl, "quotes"), timeout=60, message="Ready again on the restored image")
    results = [h["result"] for h in kubectl.get("apiproduct", "quotes")["status"]["history"]]
    assert "rolled-back" in results
    assert len([e for e in kubectl.events("quotes") if e["reason"] == "RolledBack"]) == 1
    # a later spec change clears the pin
    kubectl.patch(
        "apiproduct",
        "quotes",
        {"spec": {"versions": [{**versions[0], "image": "registry.example.com/quotes:1.2"}]}},
    )
    eventually(lambda: condition(kubectl.get("apiproduct", "quotes"), "RolledBack").get("status") == "False")
    eventually(lambda: ready(kubectl, "quotes"), timeout=60)


def test_retire_remove_and_delete(operator, kubectl, cluster):
    kubectl.apply(
        product(
            "cards",
            [
                {"name": "v1", "image": "registry.example.com/cards:1", "replicas": 1},
                {"name": "v2", "image": "registry.example.com/cards:2", "replicas": 1},
            ],
        )
    )
    eventually(lambda: ready(kubectl, "cards"))
    kubectl.patch(
        "apiproduct",
        "cards",
        {
            "spec": {
                "versions": [
                    {
                        "name": "v1",
                        "image": "registry.example.com/cards:1",
                        "replicas": 1,
                        "lifecycle": "retired",
                    },
                    {"name": "v2", "image": "registry.example.com/cards:2", "replicas": 1},
                ]
            }
        },
    )
    eventually(
        lambda: kubectl.get("deployment", "cards-v1") is None and kubectl.get("service", "cards-v1") is None
    )
    status = eventually(lambda: ready(kubectl, "cards"))["status"]
    assert any(h["version"] == "v1" and h["result"] == "retired" for h in status["history"])
    kubectl("delete", "apiproduct", "cards")
    eventually(
        lambda: (
            not kubectl.list("deployments", "pitwall.dev/product=cards")
            and not kubectl.list("pods", "pitwall.dev/product=cards")
        ),
        timeout=60,
        message="all gone",
    )


def test_name_collision_leaves_the_running_version_untouched(operator, kubectl):
    kubectl.apply(product("a-b", [{"name": "c", "image": "registry.example.com/ab:1", "replicas": 1}]))
    eventually(lambda: ready(kubectl, "a-b"))
    kubectl.apply(product("a", [{"name": "b-c", "image": "registry.example.com/a:9", "replicas": 1}]))
    stalled = eventually(
        lambda: (
            condition(kubectl.get("apiproduct", "a"), "Stalled").get("status") == "True"
            and kubectl.get("apiproduct", "a")
        )
    )
    assert condition(stalled, "Stalled")["reason"] == "NameCollision"
    image = kubectl.get("deployment", "a-b-c")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/ab:1"


def test_rollout_whose_probes_go_down_is_rolled_back(operator, kubectl, cluster):
    """Pods ready is not enough: a release whose probe fails within analysisWindow goes back."""
    from pitwall_testing.pods import PodServers
    from tests.helpers.demo import DemoAPI

    with DemoAPI():
        # every pod of the product answers like the demo API, except pods of the bad image
        from aiohttp import web

        from pitwall.demo import make_app

        def app(pod):
            image = pod["spec"]["containers"][0]["image"]
            if image.endswith(":2.1"):

                async def down(_request: web.Request) -> web.Response:
                    return web.json_response({"status": "down"}, status=500)

                broken = web.Application()
                broken.router.add_get("/isUp", down)
                return broken
            return make_app()

        servers = PodServers(
            str(cluster.kubeconfig), app, selector="pitwall.dev/product=fx", namespace=kubectl.namespace
        ).start_thread()
        try:
            versions = [{"name": "v2", "image": "registry.example.com/fx:2.0", "replicas": 1}]
            kubectl.apply(product("fx", versions, rollout={"analysisWindow": "5m"}))
            eventually(lambda: ready(kubectl, "fx"))
            kubectl.apply(
                {
                    "apiVersion": "pitwall.dev/v1alpha1",
                    "kind": "Probe",
                    "metadata": {"name": "fx-v2"},
                    "spec": {
                        "target": {"apiProduct": {"name": "fx", "version": "v2"}},
                        "interval": "1s",
                        "timeout": "1s",
                        "failureThreshold": 2,
                        "steps": [{"name": "isUp", "request": {"path": "/isUp"}}],
                    },
                }
            )
            eventually(lambda: (kubectl.get("probe", "fx-v2").get("status") or {}).get("state") == "Up")
            kubectl.patch(
                "apiproduct",
                "fx",
                {"spec": {"versions": [{**versions[0], "image": "registry.example.com/fx:2.1"}]}},
            )
            obj = eventually(
                lambda: (lambda o: o if condition(o, "RolledBack").get("status") == "True" else None)(
                    kubectl.get("apiproduct", "fx")
                ),
                timeout=60,
                message="rolled back on probe failure",
            )
            assert "fx-v2" in [e for e in kubectl.events("fx") if e["reason"] == "RolledBack"][0]["message"]
            assert obj["status"]["rolledBack"][0]["restoredImage"] == "registry.example.com/fx:2.0"
            eventually(
                lambda: (
                    kubectl.get("deployment", "fx-v2")["spec"]["template"]["spec"]["containers"][0]["image"]
                    == "registry.example.com/fx:2.0"
                )
            )
            eventually(
                lambda: (kubectl.get("probe", "fx-v2").get("status") or {}).get("state") == "Up", timeout=60
            )
        finally:
            servers.stop()


def test_versions_are_keyed_by_name_for_server_side_apply(kubectl):
    """A duplicate version name is refused, naming it; a runtime replicas patch owns only that
    field, so a GitOps apply that leaves replicas out does not conflict with it."""
    import json as _json

    dup = product(
        "dup",
        [
            {"name": "v1", "image": "registry.example.com/a:1"},
            {"name": "v1", "image": "registry.example.com/a:2"},
        ],
    )
    proc = kubectl("apply", "--server-side", "-f", "-", input=_json.dumps(dup), check=False)
    assert proc.returncode != 0 and 'duplicate entries for key [name="v1"]' in proc.stderr

    git = product(
        "gitops",
        [
            {"name": "v1", "image": "registry.example.com/g:1"},
            {"name": "v2", "image": "registry.example.com/g:2"},
        ],
    )
    apply = ["apply", "--server-side", "--field-manager=argocd", "-f", "-"]
    kubectl(*apply, input=_json.dumps(git))
    kubectl(
        "patch",
        "apiproduct",
        "gitops",
        "--type=json",  # a telemetry-style edit
        "-p",
        '[{"op":"replace","path":"/spec/versions/0/replicas","value":5}]',
    )
    git["spec"]["versions"][1]["image"] = "registry.example.com/g:2.1"  # the next Git change
    kubectl(*apply, input=_json.dumps(git))  # no conflict, no --force
    versions = {v["name"]: v for v in kubectl.get("apiproduct", "gitops")["spec"]["versions"]}
    assert versions["v1"]["replicas"] == 5 and versions["v2"]["image"] == "registry.example.com/g:2.1"


def stalled(kubectl, name) -> dict | None:
    obj = kubectl.get("apiproduct", name)
    return obj if condition(obj, "Stalled").get("status") == "True" else None


def test_edits_that_cannot_work_stall_and_leave_the_running_version_alone(operator, kubectl):
    good = {"name": "v1", "image": "registry.example.com/rates:1", "replicas": 1}
    kubectl.apply(product("rates", [good]))
    eventually(lambda: ready(kubectl, "rates"))

    # requests above limits: the CRD accepts both quantities, the Deployment API refuses the pair
    kubectl.apply(
        product(
            "rates",
            [
                {
                    **good,
                    "image": "registry.example.com/rates:2",
                    "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
                }
            ],
        )
    )
    obj = eventually(lambda: stalled(kubectl, "rates"), message="Stalled on invalid resources")
    assert condition(obj, "Stalled")["reason"] == "InvalidSpec"
    assert "limit" in condition(obj, "Stalled")["message"]

    def image():
        return kubectl.get("deployment", "rates-v1")["spec"]["template"]["spec"]["containers"][0]["image"]

    assert image() == "registry.example.com/rates:1"

    # a missing imagePullSecret
    kubectl.apply(
        product(
            "rates",
            [{**good, "image": "registry.example.com/rates:2"}],
            imagePullSecrets=[{"name": "registry-creds"}],
        )
    )
    obj = eventually(
        lambda: (
            lambda o: o if o and condition(o, "Stalled")["reason"] == "ImagePullSecretNotFound" else None
        )(stalled(kubectl, "rates"))
    )
    assert "registry-creds" in condition(obj, "Stalled")["message"]
    assert image() == "registry.example.com/rates:1"

    # a quota refusal: a second version does not fit
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "deployments"},
            "spec": {"hard": {"count/deployments.apps": "1"}},
        }
    )
    kubectl.apply(product("rates", [good, {"name": "v2", "image": "registry.example.com/rates:2"}]))
    obj = eventually(
        lambda: (lambda o: o if o and condition(o, "Stalled")["reason"] == "QuotaExceeded" else None)(
            stalled(kubectl, "rates")
        )
    )
    assert "quota" in condition(obj, "Stalled")["message"]
    assert image() == "registry.example.com/rates:1"
    kubectl("delete", "resourcequota", "deployments")
    kubectl.apply(product("rates", [good]))
    eventually(lambda: ready(kubectl, "rates"), message="recovers when the edit is fixed")
