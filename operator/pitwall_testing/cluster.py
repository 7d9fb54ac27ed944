"""A real local Kubernetes control plane, as local processes (no Docker needed).

etcd, kube-apiserver (secure serving, RBAC, an admin client certificate),
kube-controller-manager, kube-scheduler and kwok with a few fake nodes: Deployments get
ReplicaSets and Ready pods, Services get EndpointSlices, owner references are garbage
collected.

Pod IPs come from 10.244.0.0/16 (node i hands out 10.244.i.x). The API server refuses
loopback addresses in EndpointSlices, so pod IPs cannot be 127.x if Services are to get
endpoints. No traffic ever goes to 10.244.x.x: out of the cluster, Pitwall rewrites a ready
endpoint's address to its loopback twin in 127.244.0.0/16 (``POD_ADDRESS_REWRITE``), and a
test or ``make dev`` binds a real server there to answer for that pod.

Used by ``make cluster`` / ``make dev`` (``python -m pitwall_testing.cluster up``), by the
pytest fixtures and by the benchmarks::

    with Cluster.start(workdir) as cluster:
        cluster.kubeconfig   # path to an admin kubeconfig
        cluster.kubectl("get", "nodes")
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")
# The Kubernetes release the tests run against; `make test K8S_VERSION=1.35.4` (exported to
# pytest and hack/controlplane/build.sh) tests another supported one. etcd follows it: the
# version that release requires (its go.mod, kubeadm's default etcd image).
ETCD_FOR_MINOR = {"1.33": "3.5.21", "1.34": "3.6.4", "1.35": "3.6.5", "1.36": "3.6.8", "1.37": "3.7.0"}
K8S_VERSION = os.environ.get("K8S_VERSION") or "1.37.2"
ETCD_VERSION = os.environ.get("ETCD_VERSION") or ETCD_FOR_MINOR.get(K8S_VERSION.rsplit(".", 1)[0], "3.7.0")
KWOK_VERSION = "0.7.0"
CACHE_NAME = f"k8s-v{K8S_VERSION}-etcd-v{ETCD_VERSION}-kwok-v{KWOK_VERSION}"
NODE_COUNT = 3
POD_CIDR_BASE = "10.244.{index}.0/24"  # node i hands out 10.244.i.x to its pods
POD_ADDRESS_REWRITE = "10.244.0.0/16=127.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"


class ClusterError(RuntimeError):
    pass


def repo_root() -> Path | None:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "hack" / "controlplane" / "build.sh").exists():
            return parent
    return None


def _has_all(directory: str | Path | None) -> bool:
    return (
        directory is not None
        and str(directory) != ""
        and all((Path(directory) / b).exists() for b in BINARIES)
    )


def find_binaries(build: bool = True) -> Path:
    """Where the control-plane binaries are: $PITWALL_CONTROLPLANE_BIN, $KUBEBUILDER_ASSETS,
    the version-keyed cache, or (``build=True``) build them now."""
    for env in ("PITWALL_CONTROLPLANE_BIN", "KUBEBUILDER_ASSETS"):
        if _has_all(os.environ.get(env)):
            return Path(os.environ[env])
    cache = Path(os.environ.get("PITWALL_CACHE", Path.home() / ".cache" / "pitwall"))
    cached = cache / "controlplane" / CACHE_NAME / "bin"
    if _has_all(cached):
        return cached
    root = repo_root()
    if build and root:
        out = subprocess.run(
            [str(root / "hack" / "controlplane" / "build.sh")],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "K8S_VERSION": K8S_VERSION,
                "ETCD_VERSION": ETCD_VERSION,
                "KWOK_VERSION": KWOK_VERSION,
            },
        )
        return Path(out.stdout.strip().splitlines()[-1])
    raise ClusterError(
        "control-plane binaries not found: run hack/controlplane/build.sh or set KUBEBUILDER_ASSETS"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- PKI ---------------------------------------------------------------------------------------
def _write_pki(pki: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    pki.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def key_pem(key) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL
            if isinstance(key, rsa.RSAPrivateKey)
            else serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("pitwall-local-ca"))
        .issuer_name(name("pitwall-local-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def issue(cn: str, org: str | None, *, server: bool) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn, org))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(
                x509.ExtendedKeyUsage(
                    [
                        x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
                        if server
                        else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
                    ]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.DNSName("kubernetes"),
                        x509.DNSName("kubernetes.default"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    (pki / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (pki / "ca.key").write_bytes(key_pem(ca_key))
    for stem, cn, org, server in (
        ("apiserver", "kube-apiserver", None, True),
        ("admin", "admin", "system:masters", False),
    ):
        cert, key = issue(cn, org, server=server)
        (pki / f"{stem}.crt").write_bytes(cert)
        (pki / f"{stem}.key").write_bytes(key)
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (pki / "sa.key").write_bytes(key_pem(sa))
    (pki / "sa.pub").write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for path in pki.iterdir():
        if path.suffix == ".key":
            path.chmod(0o600)


def issue_serving_cert(
    pki: Path, stem: str, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> tuple[Path, Path]:
    """A serving certificate signed by the local CA (for the admission webhook)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)  # made by make_pki above
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    crt, pem = pki / f"{stem}.crt", pki / f"{stem}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pem.chmod(0o600)
    return crt, pem


def webhook_configuration(url: str, ca_bundle: bytes) -> dict:
    """The ValidatingWebhookConfiguration for Pitwall's MaintenanceWindow check (URL form)."""
    import base64

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "pitwall.dev"},
        "webhooks": [
            {
                "name": "maintenancewindows.pitwall.dev",
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_bundle).decode()},
                "rules": [
                    {
                        "apiGroups": ["pitwall.dev"],
                        "apiVersions": ["v1alpha1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["maintenancewindows"],
                        "scope": "Namespaced",
                    }
                ],
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            }
        ],
    }


def _kubeconfig(path: Path, server: str, pki: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "pitwall-local",
        "clusters": [
            {
                "name": "pitwall-local",
                "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")},
            }
        ],
        "contexts": [
            {
                "name": "pitwall-local",
                "context": {"cluster": "pitwall-local", "user": "admin", "namespace": "default"},
            }
        ],
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


# -- the cluster -------------------------------------------------------------------------------
@dataclass
class Cluster:
    workdir: Path
    bindir: Path
    api_port: int = 0
    etcd_port: int = 0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses (kubectl, the operator) pointing at this cluster."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    # ---------------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        workdir: str | Path | None = None,
        *,
        nodes: int = NODE_COUNT,
        bindir: Path | None = None,
        timeout: float = 60.0,
    ) -> Cluster:
        workdir = Path(workdir or tempfile.mkdtemp(prefix="pitwall-cluster-")).resolve()
        if workdir.exists():
            stale = workdir / "pids.json"
            if stale.exists():
                stop_pids(workdir)
            for sub in ("etcd", "logs"):
                shutil.rmtree(workdir / sub, ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)
        cluster = cls(workdir=workdir, bindir=bindir or find_binaries())
        try:
            cluster._boot(nodes, timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _spawn(self, name: str, args: list[str]) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [str(self.bindir / name), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.workdir,
        )
        out.close()
        self.processes[name] = proc
        self._write_pids()

    def _write_pids(self) -> None:
        (self.workdir / "pids.json").write_text(
            json.dumps({name: proc.pid for name, proc in self.processes.items()})
        )

    def _wait(self, what: str, check, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    tail = (self.workdir / "logs" / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise ClusterError(
                        f"{name} exited with {proc.returncode} while waiting for {what}:\n{tail}"
                    )
            try:
                if check():
                    return
            except Exception as exc:  # not up yet
                last = exc
            time.sleep(0.1)
        raise ClusterError(f"timed out waiting for {what}: {last}")

    def _get(self, path: str, *, client_cert: bool = True) -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        if client_cert:
            context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        try:
            with urllib.request.urlopen(self.server + path, context=context, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def _boot(self, nodes: int, timeout: float) -> None:
        _write_pki(self.pki)
        self.etcd_port, peer_port, self.api_port = free_port(), free_port(), free_port()
        _kubeconfig(self.kubeconfig, self.server, self.pki)
        self._spawn(
            "etcd",
            [
                f"--data-dir={self.workdir / 'etcd'}",
                "--name=pitwall",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=pitwall=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
                "--quota-backend-bytes=4294967296",
            ],
        )
        self._wait(
            "etcd",
            lambda: (
                urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2).status == 200
            ),
            timeout,
        )
        pki = self.pki
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--requestheader-client-ca-file={pki / 'ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--secure-port={self.api_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer=https://127.0.0.1:{self.api_port}/",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--enable-priority-and-fairness=false",
                "--max-requests-inflight=2000",
                "--max-mutating-requests-inflight=1000",
                "--endpoint-reconciler-type=none",
                "--v=1",
            ],
        )
        self._wait("kube-apiserver /readyz", lambda: self._get("/readyz")[0] == 200, timeout)
        kubeconfig = str(self.kubeconfig)
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--secure-port=0",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--controllers=*,-nodeipam,-nodelifecycle,-persistentvolume-binder,-attachdetach,"
                "-persistentvolume-expander,-ttl,-bootstrapsigner,-tokencleaner",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--secure-port={free_port()}",
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                "--v=1",
            ],
        )
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={kubeconfig}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--cidr=10.244.250.0/24",
                "--node-ip=127.0.0.1",
                f"--server-address=127.0.0.1:{free_port()}",
                *self._kwok_config_args(),
            ],
        )
        self._wait(
            "default service account",
            lambda: (
                self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0
            ),
            timeout,
        )
        for index in range(nodes):
            self.apply(_node(index))
            # TaintNodesByCondition adds not-ready at creation; the node-lifecycle controller
            # (off here: kwok fakes kubelets) would lift it, so lift it ourselves.
            self.kubectl(
                "patch",
                "node",
                f"kwok-node-{index}",
                "--type=json",
                "-p",
                '[{"op":"replace","path":"/spec/taints","value":[]}]',
            )
        self._wait("fake nodes Ready", lambda: self._nodes_ready(nodes), timeout)

    def _kwok_config_args(self) -> list[str]:
        root = repo_root()
        stages = root / "hack" / "kwok" if root else None
        if stages and stages.is_dir():
            return [f"--config={path}" for path in sorted(stages.glob("*.yaml"))]
        return []

    def _nodes_ready(self, count: int) -> bool:
        out = self.kubectl("get", "nodes", "-o", "json", check=False)
        if out.returncode:
            return False
        ready = 0
        for node in json.loads(out.stdout)["items"]:
            for cond in node.get("status", {}).get("conditions", []):
                if cond["type"] == "Ready" and cond["status"] == "True":
                    ready += 1
        return ready >= count

    # -- helpers ---------------------------------------------------------------------------------
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(self.bindir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def register_webhook(self, port: int) -> dict[str, str]:
        """Register Pitwall's admission webhook at https://127.0.0.1:PORT; returns the operator's env."""
        from pitwall.admission import PATH

        cert, key = issue_serving_cert(self.pki, "webhook")
        self.apply(
            webhook_configuration(f"https://127.0.0.1:{port}{PATH}", (self.pki / "ca.crt").read_bytes())
        )
        return {"PITWALL_WEBHOOK_CERT": str(cert), "PITWALL_WEBHOOK_KEY": str(key)}

    def apply(self, obj: dict | str, *args: str) -> subprocess.CompletedProcess:
        text = obj if isinstance(obj, str) else json.dumps(obj)
        return self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", *args, input=text)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            _terminate(self.processes[name])
        self.processes.clear()
        pids = self.workdir / "pids.json"
        if pids.exists():
            pids.unlink()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _node(index: int) -> dict:
    name = f"kwok-node-{index}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {
            "podCIDR": POD_CIDR_BASE.format(index=index),
            "podCIDRs": [POD_CIDR_BASE.format(index=index)],
        },
        "status": {
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
        },
    }


def _terminate(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pids(workdir: Path, grace: float = 5.0) -> list[str]:
    """Stop a cluster started by another process (``make cluster-down``)."""
    pids_file = workdir / "pids.json"
    if not pids_file.exists():
        return []
    pids: dict[str, int] = json.loads(pids_file.read_text())
    stopped = []
    for name, pid in reversed(list(pids.items())):
        if not _pid_alive(pid):
            continue
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + grace
        while _pid_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
        stopped.append(name)
    pids_file.unlink()
    return stopped


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pitwall_testing.cluster",
        description="Run a local Kubernetes control plane (etcd, "
        "kube-apiserver, controller-manager, scheduler, kwok).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start in the background and write DIR/kubeconfig")
    up.add_argument("--dir", default=".pitwall")
    up.add_argument("--nodes", type=int, default=NODE_COUNT)
    down = sub.add_parser("down", help="stop a cluster started with `up`")
    down.add_argument("--dir", default=".pitwall")
    sub.add_parser("build", help="build (or find) the binaries and print their directory")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(find_binaries())
        return 0
    workdir = Path(args.dir).resolve()
    if args.command == "down":
        stopped = stop_pids(workdir)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    started = time.monotonic()
    cluster = Cluster.start(workdir, nodes=args.nodes)
    print(f"control plane ready in {time.monotonic() - started:.1f}s: {cluster.server}")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print(f"export PATH={cluster.bindir}:$PATH   # kubectl v{K8S_VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
