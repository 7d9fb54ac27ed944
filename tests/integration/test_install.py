"""The install manifests against the real control plane, and least privilege, proven.

- ``kubectl apply --dry-run=server -k manifests/`` (and the namespaced overlay) is accepted;
- ``manifests/`` applied for real: the operator's pods pass the namespace's Pod Security
  ``restricted`` admission (kwok runs them);
- the operator runs as the manifests' ServiceAccount (a TokenRequest token in a kubeconfig of
  its own), every user journey of ``tests/journeys.py`` passes, and its log has no 403;
- ``kubectl auth can-i`` shows what that identity must not do;
- the namespaced overlay's RoleBindings are enough for an operator watching one namespace.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pitwall.demo import make_app
from pitwall_testing.pods import PodServers
from tests import journeys
from tests.conftest import Kubectl, Operator
from tests.helpers.receiver import Recorder

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
SYSTEM = "pitwall-system"
SA = f"system:serviceaccount:{SYSTEM}:pitwall"
# An RBAC denial or any other 403 in the operator's log, from Pitwall's client or from kopf.
FORBIDDEN = re.compile(r"(?i)forbidden|not enough permissions|status[=: ]+403\b|code['\"]?: 403\b")
# Writing into a namespace that is being deleted is refused with 403 too; other tests' namespaces
# may still be terminating while this cluster-wide operator runs. That is no RBAC denial.
TERMINATING = "because it is being terminated"


def forbidden_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if FORBIDDEN.search(line) and TERMINATING not in line]


def build(cluster, path: Path) -> list[dict]:
    out = cluster.kubectl("kustomize", str(path)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def ensure_namespace(cluster, name: str) -> None:
    if cluster.kubectl("get", "namespace", name, check=False).returncode:
        cluster.kubectl("create", "namespace", name)


def token_kubeconfig(cluster, directory: Path, service_account: str, namespace: str = SYSTEM) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount with a TokenRequest token."""
    token = cluster.kubectl(
        "create", "token", service_account, "-n", namespace, "--duration=2h"
    ).stdout.strip()
    path = directory / f"{service_account}.kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": service_account,
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {
                            "server": cluster.server,
                            "certificate-authority": str(cluster.pki / "ca.crt"),
                        },
                    }
                ],
                "users": [{"name": service_account, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": service_account,
                        "context": {"cluster": "local", "user": service_account, "namespace": namespace},
                    }
                ],
            }
        )
    )
    path.chmod(0o600)
    who = subprocess.run(
        [str(cluster.bindir / "kubectl"), f"--kubeconfig={path}", "auth", "whoami", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert who.returncode == 0, who.stderr
    assert (
        json.loads(who.stdout)["status"]["userInfo"]["username"]
        == f"system:serviceaccount:{namespace}:{service_account}"
    )
    return path


def leader_election_supported() -> bool:
    out = subprocess.run(
        [sys.executable, "-m", "pitwall", "run", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    return "--leader-elect" in out


def operator_as(
    cluster, workdir: Path, kubeconfig: Path, *, namespace: str | None, leader_elect: bool
) -> Operator:
    env = {
        "KUBECONFIG": str(kubeconfig),
        "POD_NAMESPACE": SYSTEM,
        "POD_NAME": "pitwall-test-0",
        "PITWALL_RESYNC_SECONDS": "30",
    }
    args = ["--leader-elect"] if leader_elect else []
    op = Operator(
        cluster, workdir, namespace=namespace, extra_env=env, **({"extra_args": args} if args else {})
    )
    return op.start()


class LocalEnv:
    """The local control plane: kwok pods answered by the demo API on their loopback twins, a
    receiver on 127.0.0.1 (see tests/journeys.py)."""

    api_image = "registry.example.com/journeys/demo-api:1"
    timeout_scale = 1.0
    window = (8, 14)

    def __init__(self, cluster, namespace: str):
        self.recorder = Recorder()
        self.pods = PodServers(
            str(cluster.kubeconfig),
            lambda pod: make_app(),
            selector="pitwall.dev/role=api",
            namespace=namespace,
        )

    def __enter__(self) -> LocalEnv:
        self.recorder.__enter__()
        self.pods.start_thread()
        return self

    def __exit__(self, *exc) -> None:
        self.pods.stop()
        self.recorder.__exit__(*exc)

    def receiver_url(self, path: str) -> str:
        return self.recorder.url + path

    def received(self, prefix: str) -> list[dict]:
        return self.recorder.paths(prefix)


@pytest.fixture(scope="module")
def installed(cluster):
    """``manifests/`` applied for real (server-side, as GitOps tools do)."""
    ensure_namespace(cluster, SYSTEM)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(MANIFESTS))
    yield cluster
    cluster.kubectl("delete", "namespace", SYSTEM, "--wait=false", check=False)
    for kind, name in (
        ("clusterrolebinding", "pitwall"),
        ("clusterrolebinding", "pitwall-observer"),
        ("clusterrole", "pitwall"),
        ("clusterrole", "pitwall-observer"),
    ):
        cluster.kubectl("delete", kind, name, "--ignore-not-found", check=False)


def test_server_side_dry_run_accepts_the_manifests(cluster, namespace):
    # A server-side dry run checks namespaced objects against their namespace, which a dry run
    # does not create: the namespace must exist (`kubectl create namespace pitwall-system` first).
    ensure_namespace(cluster, SYSTEM)
    proc = cluster.kubectl("apply", "--dry-run=server", "-k", str(MANIFESTS), check=False)
    assert proc.returncode == 0, proc.stderr
    for kind in (
        "customresourcedefinition.apiextensions.k8s.io/apiproducts.pitwall.dev",
        "clusterrole.rbac.authorization.k8s.io/pitwall",
        "deployment.apps/pitwall",
        "service/pitwall-metrics",
        "service/pitwall-statuspage",
    ):
        assert kind in proc.stdout, proc.stdout

    # the namespaced overlay, its RoleBinding moved to a namespace that surely exists
    docs = build(cluster, MANIFESTS / "overlays" / "namespaced")
    for doc in docs:
        if doc["metadata"].get("namespace") == "marketplace":
            doc["metadata"]["namespace"] = namespace
    assert not [d for d in docs if d["kind"] == "ClusterRoleBinding" and d["metadata"]["name"] == "pitwall"]
    proc = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_components_and_image_override_build(cluster, tmp_path):
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    rel = os.path.relpath(MANIFESTS, overlay)
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"{rel}/base"],
                "components": [
                    f"{rel}/components/servicemonitor",
                    f"{rel}/components/grafana-dashboard",
                    f"{rel}/components/admission-webhook",
                    f"{rel}/components/network-policy",
                ],
                "images": [{"name": "ghcr.io/pitwall-dev/pitwall", "newName": "pitwall", "newTag": "e2e"}],
            }
        )
    )
    docs = build(cluster, overlay)
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    monitor = by_kind[("ServiceMonitor", "pitwall")]
    service = by_kind[("Service", "pitwall-metrics")]
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert all(
        service["metadata"]["labels"].get(k) == v
        for k, v in monitor["spec"]["selector"]["matchLabels"].items()
    )
    dashboard = by_kind[("ConfigMap", "pitwall-grafana-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["pitwall-dashboard.json"])["uid"] == "pitwall-operator"
    container = by_kind[("Deployment", "pitwall")]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "pitwall:e2e"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PITWALL_IMAGE"] == "pitwall:e2e"  # the maintenance pages follow the override
    # the admission webhook: served on the port its Service targets, with the certificate
    assert "--webhook-port=9443" in container["args"]
    assert {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} in container["ports"]
    assert env["PITWALL_WEBHOOK_CERT"].startswith("/etc/pitwall/webhook/")
    # the NetworkPolicy selects the operator's pods and admits no port but metrics, status page, webhook
    policy = by_kind[("NetworkPolicy", "pitwall")]
    pod_labels = by_kind[("Deployment", "pitwall")]["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(p["port"] for p in policy["spec"]["ingress"][0]["ports"]) == [8080, 8081, 9443]
    webhook = by_kind[("ValidatingWebhookConfiguration", "pitwall.dev")]["webhooks"][0]
    assert webhook["clientConfig"]["service"]["name"] == "pitwall-webhook"
    assert by_kind[("Service", "pitwall-webhook")]["spec"]["ports"][0]["targetPort"] == "webhook"
    # everything but the ServiceMonitor and cert-manager's kinds (CRDs of other projects) is accepted
    ensure_namespace(cluster, SYSTEM)
    rest = [
        d
        for d in docs
        if d["kind"] != "ServiceMonitor" and not d["apiVersion"].startswith("cert-manager.io/")
    ]
    proc = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        check=False,
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rest}),
    )
    assert proc.returncode == 0, proc.stderr


def test_installed_operator_pods_pass_restricted_pod_security(installed):
    cluster = installed
    labels = json.loads(cluster.kubectl("get", "namespace", SYSTEM, "-o", "json").stdout)["metadata"][
        "labels"
    ]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # kwok plays the kubelet: the pods exist only if admission accepted them
    cluster.kubectl("rollout", "status", "deployment/pitwall", "-n", SYSTEM, "--timeout=60s")
    deployment = json.loads(
        cluster.kubectl("get", "deployment", "pitwall", "-n", SYSTEM, "-o", "json").stdout
    )
    assert deployment["status"]["readyReplicas"] == 2
    events = cluster.kubectl("get", "events", "-n", SYSTEM, "--field-selector", "reason=FailedCreate").stdout
    assert "violates PodSecurity" not in events


def run_journeys(cluster, op, namespace: str, only=None) -> None:
    """Run the user journeys against ``op``, stop it, and fail on any refusal (403) or failure."""
    try:
        k = Kubectl(cluster, namespace)
        with LocalEnv(cluster, namespace) as env:
            failed = journeys.run(k, env, only)
    finally:
        op.stop()
    log = op.log()
    denied = forbidden_lines(log)
    assert not denied, "the operator was refused (403):\n" + "\n".join(denied[:20])
    assert not failed, f"journeys failed: {failed}\n{log[-4000:]}"


def test_operator_runs_every_journey_with_least_privilege(installed, namespace, tmp_path):
    cluster = installed
    kubeconfig = token_kubeconfig(cluster, tmp_path, "pitwall")
    leader = leader_election_supported()
    op = operator_as(cluster, tmp_path, kubeconfig, namespace=None, leader_elect=leader)  # every namespace
    run_journeys(cluster, op, namespace)
    if leader:  # the Lease Role was enough to lead
        lease = json.loads(
            cluster.kubectl("get", "lease", "pitwall-operator", "-n", SYSTEM, "-o", "json").stdout
        )
        assert lease["spec"]["holderIdentity"]


# (verb, resource, scope[, subresource]): scope "-A" is cluster-wide, "ns" a tenant namespace.
MUST_NOT = [
    ("list", "secrets", "-A"),
    ("watch", "secrets", "-A"),
    ("list", "secrets", "ns"),
    ("create", "secrets", "ns"),
    ("update", "secrets", "ns"),
    ("delete", "secrets", "ns"),
    ("get", "configmaps", "ns"),
    ("delete", "namespaces", "-A"),
    ("create", "namespaces", "-A"),
    ("list", "namespaces", "-A"),
    ("create", "pods", "ns"),
    ("delete", "pods", "ns"),
    ("create", "pods/exec", "ns"),
    ("list", "pods", "-A"),
    ("patch", "nodes", "-A"),
    ("delete", "nodes", "-A"),
    ("create", "clusterroles", "-A"),
    ("escalate", "clusterroles", "-A"),
    ("bind", "clusterroles", "-A"),
    ("create", "rolebindings", "ns"),
    ("create", "clusterrolebindings", "-A"),
    ("impersonate", "users", "-A"),
    ("impersonate", "serviceaccounts", "-A"),
    ("create", "serviceaccounts/token", "ns"),
    ("create", "apiproducts.pitwall.dev", "ns"),
    ("update", "apiproducts.pitwall.dev", "ns"),
    ("delete", "apiproducts.pitwall.dev", "ns"),
    ("delete", "probes.pitwall.dev", "ns"),
    ("update", "deployments.apps", "ns"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", "-A"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io", "-A"),
    ("create", "mutatingwebhookconfigurations.admissionregistration.k8s.io", "-A"),
    ("delete", "events", "ns"),
    ("update", "probes.pitwall.dev", "ns", "status"),
    ("patch", "pods", "ns", "status"),  # only its own namespace's (the overload condition)
]
MUST = [
    ("list", "apiproducts.pitwall.dev", "-A"),
    ("watch", "maintenancewindows.pitwall.dev", "-A"),
    ("patch", "probes.pitwall.dev", "ns", "status"),
    ("patch", "alertrules.pitwall.dev", "ns"),
    ("patch", "maintenancewindows.pitwall.dev", "ns"),  # its finalizer (finalizers.py)
    ("patch", "deployments.apps", "ns"),
    ("create", "services", "ns"),
    ("delete", "services", "ns"),
    ("list", "endpointslices.discovery.k8s.io", "-A"),
    ("get", "secrets", "ns"),
    ("create", "events", "ns"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io", "-A"),
]


def can_i(
    cluster,
    verb: str,
    resource: str,
    scope: str,
    namespace: str,
    who: str = SA,
    subresource: str | None = None,
) -> bool:
    where = ["-A"] if scope == "-A" else ["-n", namespace]
    if subresource:
        where.append(f"--subresource={subresource}")
    proc = cluster.kubectl("auth", "can-i", verb, resource, f"--as={who}", *where, check=False)
    assert proc.stdout.strip() in ("yes", "no"), proc.stderr
    return proc.stdout.strip() == "yes"


def test_what_the_service_account_must_not_do(installed, namespace):
    cluster = installed
    allowed = [" ".join(c) for c in MUST_NOT if can_i(cluster, *c[:3], namespace, SA, *c[3:])]
    assert not allowed, f"{SA} may do more than it needs: {allowed}"
    missing = [" ".join(c) for c in MUST if not can_i(cluster, *c[:3], namespace, SA, *c[3:])]
    assert not missing, f"{SA} lacks: {missing}"
    # the Lease: its own, in its own namespace; nobody else's
    assert can_i(cluster, "update", "leases.coordination.k8s.io/pitwall-operator", "ns", SYSTEM)
    assert not can_i(cluster, "update", "leases.coordination.k8s.io/kube-scheduler", "ns", "kube-system")
    assert not can_i(cluster, "update", "leases.coordination.k8s.io/other", "ns", SYSTEM)
    # --probe-shards up to 32, as README and docs/install.md say: the shard Leases are named
    shard_leases = ["pitwall-shard-members", *(f"pitwall-shard-{i}" for i in range(32))]
    unnamed = [
        n
        for n in shard_leases
        if not can_i(cluster, "update", f"leases.coordination.k8s.io/{n}", "ns", SYSTEM)
    ]
    assert not unnamed, f"the Role does not name the shard Leases {unnamed}"
    assert not can_i(cluster, "update", "leases.coordination.k8s.io/pitwall-shard-32", "ns", SYSTEM)
    assert not can_i(cluster, "create", "leases.coordination.k8s.io", "ns", namespace)
    # its own Pod's status (the pitwall.dev/ProbeEngine condition), in its own namespace; not the spec
    assert can_i(cluster, "patch", "pods", "ns", SYSTEM, subresource="status")
    assert can_i(cluster, "create", "events", "ns", SYSTEM)
    assert not can_i(cluster, "patch", "pods", "ns", SYSTEM)
    assert not can_i(cluster, "get", "pods", "ns", SYSTEM)


def test_namespaced_overlay_is_enough_for_one_namespace(cluster, namespace, tmp_path):
    """The overlay's RBAC, given to a ServiceAccount of its own, runs an operator watching one
    namespace without a 403, and reaches nothing outside it."""
    ensure_namespace(cluster, SYSTEM)
    name = "pitwall-ns"
    wanted = []
    for doc in build(cluster, MANIFESTS / "overlays" / "namespaced"):
        kind = doc["kind"]
        if kind not in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "RoleBinding"):
            continue  # the Lease Role and the Deployment are the base's, checked above
        if kind == "ServiceAccount":
            doc["metadata"]["name"] = name
        if kind in ("ClusterRole", "ClusterRoleBinding"):
            doc["metadata"]["name"] = f"{name}-{doc['metadata']['name']}"
        if kind == "ClusterRoleBinding" or kind == "RoleBinding":
            if doc["roleRef"]["kind"] == "ClusterRole":
                doc["roleRef"]["name"] = f"{name}-{doc['roleRef']['name']}"
            doc["subjects"] = [{**s, "name": name} for s in doc["subjects"]]
            if kind == "RoleBinding":
                if doc["metadata"].get("namespace") == SYSTEM:
                    continue  # the base's own (its Lease, its Pod's status), checked above
                assert doc["metadata"]["namespace"] == "marketplace"
                doc["metadata"]["namespace"] = namespace
        wanted.append(doc)
    assert {d["kind"] for d in wanted} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "RoleBinding",
    }
    cluster.apply({"apiVersion": "v1", "kind": "List", "items": wanted})
    try:
        who = f"system:serviceaccount:{SYSTEM}:{name}"
        assert can_i(cluster, "list", "deployments.apps", "ns", namespace, who)
        assert not can_i(cluster, "list", "deployments.apps", "ns", "default", who)
        assert not can_i(cluster, "get", "secrets", "ns", "default", who)
        assert not can_i(cluster, "list", "apiproducts.pitwall.dev", "-A", namespace, who)
        assert can_i(cluster, "list", "apiproducts.pitwall.dev", "ns", namespace, who)
        kubeconfig = token_kubeconfig(cluster, tmp_path, name)
        op = operator_as(cluster, tmp_path, kubeconfig, namespace=namespace, leader_elect=False)
        run_journeys(cluster, op, namespace, [journeys.products, journeys.probes])
    finally:
        for doc in reversed(wanted):
            args = [
                "delete",
                doc["kind"].lower(),
                doc["metadata"]["name"],
                "--ignore-not-found",
                "--wait=false",
            ]
            if doc["metadata"].get("namespace"):
                args += ["-n", doc["metadata"]["namespace"]]
            cluster.kubectl(*args, check=False)


def test_the_deployments_flags_exist_in_pitwall_run(cluster):
    help_text = subprocess.run(
        [sys.executable, "-m", "pitwall", "run", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    docs = build(cluster, MANIFESTS)
    container = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][
        0
    ]
    for arg in container["args"][1:]:
        flag = arg.split("=", 1)[0]
        assert flag in help_text, f"{flag} is not a flag of `pitwall run`"
