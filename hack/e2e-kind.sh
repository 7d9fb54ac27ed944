#!/usr/bin/env bash
# kind end-to-end: a kind cluster, the images built and loaded, `kubectl apply --server-side -k`
# of the install manifests with that image, the examples, then the user journeys of
# tests/journeys.py (shared with the integration tests) with real pods, plus the kind-only ones
# (Service DNS targets, rollback of an image that cannot start, env reaching pods, maintenance
# seen by a client through the Service, leader hand-over). Installs or builds what it lacks:
# a Docker engine (hack/kind/docker.sh), kind (Go module proxy), kubectl (the same cached build
# as `make test`'s control plane), the images, and, where no registry answers, the node image
# (hack/kind/node-image.sh).
#
#   hack/e2e-kind.sh                       # or: make e2e-kind
#   KEEP_CLUSTER=1 hack/e2e-kind.sh        # leave the cluster up to look around
#   JOURNEYS="products probes" hack/e2e-kind.sh   # a subset (CI's short run)
#
# Environment: KIND_CLUSTER (pitwall-e2e), KIND_NODE_IMAGE (auto: kind's default where a
# registry answers, else built here), IMAGE (pitwall:e2e), DEMO_IMAGE (pitwall-demo:e2e),
# ARTIFACTS (artifacts/e2e-kind), PYTHON (python3), TIMEOUT_SCALE (4), KEEP_CLUSTER (0),
# REUSE_CLUSTER (0: a cluster of that name is an error), JOURNEYS (all), BENCH_OUT
# (bench/results/kind.md; empty: no file written).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

CLUSTER=${KIND_CLUSTER:-pitwall-e2e}
IMAGE=${IMAGE:-pitwall:e2e}
DEMO_IMAGE=${DEMO_IMAGE:-pitwall-demo:e2e}
ARTIFACTS=${ARTIFACTS:-$ROOT/artifacts/e2e-kind}
PYTHON=${PYTHON:-python3}
TIMEOUT_SCALE=${TIMEOUT_SCALE:-4}
KEEP_CLUSTER=${KEEP_CLUSTER:-0}
REUSE_CLUSTER=${REUSE_CLUSTER:-0}
JOURNEYS=${JOURNEYS:-}
BENCH_OUT=${BENCH_OUT-$ROOT/bench/results/kind.md}
export K8S_VERSION=${K8S_VERSION:-1.37.2}

START=$SECONDS
log() { printf '\n== [%ss] %s\n' "$(( SECONDS - START ))" "$*"; }
declare -A took

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pitwall-e2e.XXXXXX")
export KUBECONFIG="$WORK/kubeconfig"
mkdir -p "$ARTIFACTS"
created=0

collect() {
  log "collecting diagnostics in $ARTIFACTS"
  kubectl get nodes -o wide >"$ARTIFACTS/nodes.txt" 2>&1 || true
  kubectl get pods -A -o wide >"$ARTIFACTS/pods.txt" 2>&1 || true
  kubectl get pitwall,deployments,services,pods,endpointslices,leases -A -o wide >"$ARTIFACTS/objects.txt" 2>&1 || true
  kubectl get pitwall -A -o yaml >"$ARTIFACTS/pitwall.yaml" 2>&1 || true
  kubectl get events -A --sort-by=.lastTimestamp >"$ARTIFACTS/events.txt" 2>&1 || true
  kubectl -n pitwall-system logs -l app.kubernetes.io/name=pitwall --all-containers --prefix --tail=-1 \
    >"$ARTIFACTS/operator.log" 2>&1 || true
  kubectl -n pitwall-system logs -l app.kubernetes.io/name=pitwall --all-containers --prefix --previous \
    >"$ARTIFACTS/operator-previous.log" 2>&1 || true
  [ -s "$WORK/operator-all.log" ] && cat "$WORK/operator-all.log" >>"$ARTIFACTS/operator.log"
  if [ "$created" = 1 ]; then
    kind export logs --name "$CLUSTER" "$ARTIFACTS/kind-logs" >/dev/null 2>&1 || true
  fi
}

cleanup() {
  local code=$?
  if [ "$code" != 0 ]; then
    collect
    echo "e2e-kind FAILED after $(( SECONDS - START ))s; artifacts in $ARTIFACTS" >&2
  fi
  [ -n "${follow_pid:-}" ] && kill "$follow_pid" 2>/dev/null
  if [ "$created" = 1 ] && [ "$KEEP_CLUSTER" != 1 ]; then
    log "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  elif [ "$created" = 1 ]; then
    echo "cluster $CLUSTER kept: export KUBECONFIG=$KUBECONFIG"
  fi
  if [ "$KEEP_CLUSTER" != 1 ]; then
    rm -rf "$WORK"
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 143' TERM INT     # so that a timeout or Ctrl-C still collects and deletes the cluster

step_start=$SECONDS
step() { took[$1]=$(( SECONDS - step_start )); step_start=$SECONDS; }

log "tools: Docker engine, kind, kubectl"
hack/kind/docker.sh
kbin=$(hack/controlplane/build.sh)            # kubectl v$K8S_VERSION (cached, shared with make test)
kind_bin=$(command -v kind || true)
if [ -z "$kind_bin" ] || [ "$("$kind_bin" version 2>/dev/null | awk '{print $2}')" != v0.33.0 ]; then
  kind_bin=$(hack/kind/tools.sh kind | sed -n 's/^kind=//p')
fi
mkdir -p "$WORK/bin"
ln -s "$kind_bin" "$WORK/bin/kind"
ln -s "$kbin/kubectl" "$WORK/bin/kubectl"
export PATH="$WORK/bin:$PATH"
kind version
kubectl version --client | sed -n 1p
step tools

log "node image"
node_image=${KIND_NODE_IMAGE:-auto}
own_node=0
if [ "$node_image" = auto ]; then
  if timeout 120 docker pull -q hello-world >/dev/null 2>&1; then
    node_image=""          # a registry answers: kind's own default node image
  else
    echo "no image registry answers: building a node image here (hack/kind/node-image.sh)"
    node_image=$(hack/kind/node-image.sh)
    own_node=1
  fi
fi
echo "node image: ${node_image:-the kind default}"
step node-image

log "images $IMAGE and $DEMO_IMAGE"
hack/kind/image.sh --demo "$IMAGE" "$DEMO_IMAGE"
step images

log "kind cluster $CLUSTER"
config=$WORK/kind.yaml
{
  echo "kind: Cluster"
  echo "apiVersion: kind.x-k8s.io/v1alpha4"
  if [ "$own_node" = 1 ]; then
    echo "networking:"
    echo "  disableDefaultCNI: true   # the node image's bridge CNI config serves its one node"
  fi
  if [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo "kubeadmConfigPatches:"
    echo "- |"
    echo "  kind: KubeletConfiguration"
    echo "  failCgroupV1: false       # this host mounts cgroup v1; kubelet >= 1.35 refuses it otherwise"
  fi
} >"$config"
cp "$config" "$ARTIFACTS/kind.yaml"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  if [ "$REUSE_CLUSTER" != 1 ]; then
    echo "a kind cluster named $CLUSTER exists: delete it, or set REUSE_CLUSTER=1" >&2
    exit 2
  fi
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
else
  args=(--name "$CLUSTER" --kubeconfig "$KUBECONFIG" --config "$config" --wait 300s)
  [ -n "$node_image" ] && args+=(--image "$node_image")
  created=1
  kind create cluster "${args[@]}"
fi
kubectl get nodes -o wide
step cluster

log "load images"
kind load docker-image --name "$CLUSTER" "$IMAGE" "$DEMO_IMAGE"
step load

log "install: kubectl apply --server-side -k manifests/ with image $IMAGE"
overlay="$WORK/overlay"
mkdir -p "$overlay"
manifests=$("$PYTHON" -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$ROOT/manifests" "$overlay")
image_name=${IMAGE%:*}
image_tag=${IMAGE##*:}
cat >"$overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $manifests
images:
  - name: ghcr.io/pitwall-dev/pitwall
    newName: $image_name
    newTag: "$image_tag"
EOF
kubectl kustomize "$overlay" >"$ARTIFACTS/install.yaml"
kubectl apply --server-side -k "$overlay"
kubectl wait --for=condition=Established --timeout=60s crd -l app.kubernetes.io/part-of=pitwall
kubectl -n pitwall-system rollout status deployment/pitwall --timeout=300s
kubectl -n pitwall-system get pods -o wide
# every operator log line, across restarts and the leader hand-over (kubectl logs -f per pod)
: >"$WORK/operator-all.log"
(
  seen=" "
  while true; do
    for pod in $(kubectl -n pitwall-system get pods -l app.kubernetes.io/name=pitwall -o name 2>/dev/null); do
      case "$seen" in *" $pod "*) continue ;; esac
      seen="$seen$pod "
      kubectl -n pitwall-system logs -f --prefix "$pod" >>"$WORK/operator-all.log" 2>/dev/null &
    done
    sleep 2
  done
) &
follow_pid=$!
step install

log "leader election"
holder=
for _ in $(seq 60); do
  holder=$(kubectl -n pitwall-system get lease pitwall-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
  [ -n "$holder" ] && break
  sleep 2
done
if [ -z "$holder" ]; then
  echo "no replica took the Lease pitwall-system/pitwall-operator" >&2
  exit 1
fi
echo "leader: $holder"
grep -h "target mode" "$WORK/operator-all.log" | sed -n 1,2p || true

log "examples"
# their versions run the demo image (the examples name registry.example.com images)
# (one stream: a `---` between files, or the last document of one merges with the next's first)
for f in examples/*.yaml; do echo "---"; sed "s#image: registry.example.com/[^ ]*#image: $DEMO_IMAGE#" "$f"; done \
  | kubectl apply --server-side -f -
kubectl get pitwall -n marketplace

log "journeys (tests/journeys.py, as in the integration tests, plus the kind-only ones)"
only=()
for j in $JOURNEYS; do only+=(--only "$j"); done
measurements=$WORK/measurements.json
set +e
"$PYTHON" -m tests.journeys --kubeconfig "$KUBECONFIG" --kubectl "$kbin/kubectl" --namespace pitwall-journeys \
  --api-image "$DEMO_IMAGE" --receiver-image "$IMAGE" --timeout-scale "$TIMEOUT_SCALE" \
  --examples-namespace marketplace --kind --measurements "$measurements" "${only[@]}" 2>&1 \
  | tee "$ARTIFACTS/journeys.log"
journeys_code=${PIPESTATUS[0]}
set -e
step journeys
kubectl get pods -A -o wide | tee "$ARTIFACTS/pods.txt"

log "the operator ran in-cluster (Service DNS targets) and was never refused (403)"
sleep 2
grep -h "target mode" "$WORK/operator-all.log" | sed -n 1,2p
if ! grep -q "target mode service" "$WORK/operator-all.log"; then
  echo "the operator did not resolve its target mode to 'service' (in-cluster)" >&2
  exit 1
fi
if grep -Ei '"?status"?:? ?403|forbidden|not enough permissions' "$WORK/operator-all.log"; then
  echo "the operator was refused by the API server (RBAC): see above" >&2
  exit 1
fi
[ "$journeys_code" = 0 ] || { echo "journeys failed (exit $journeys_code)" >&2; exit 1; }

total=$(( SECONDS - START ))
if [ -n "$BENCH_OUT" ] && [ -s "$measurements" ]; then
  "$PYTHON" hack/kind/report.py "$measurements" "$BENCH_OUT" --kind-version "$(kind version)" \
    --node-image "${node_image:-kind default}" --k8s-version "$K8S_VERSION" \
    --steps "$(for s in "${!took[@]}"; do printf '%s=%s ' "$s" "${took[$s]}"; done)" --total "$total"
  echo "measurements written to $BENCH_OUT"
fi
log "e2e-kind passed in ${total}s"
