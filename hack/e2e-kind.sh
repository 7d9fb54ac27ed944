#!/usr/bin/env bash
# kind end-to-end: a kind cluster, the image built and loaded, `kubectl apply -k` of the install
# manifests with that image, the examples, then the same user journeys as the integration tests
# (tests/journeys.py), this time with real pods. Needs docker, kind, kubectl and Python 3.11.
#
#   hack/e2e-kind.sh                       # or: make e2e-kind
#   KEEP_CLUSTER=1 hack/e2e-kind.sh        # leave the cluster up to look around
#
# Environment: KIND_CLUSTER (pitwall-e2e), KIND_NODE_IMAGE (kind's default), IMAGE (pitwall:e2e),
# DEMO_IMAGE (pitwall-demo:e2e), ARTIFACTS (artifacts/e2e-kind), PYTHON (python3),
# TIMEOUT_SCALE (4), KEEP_CLUSTER (0), REUSE_CLUSTER (0: a cluster of that name is an error).
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

for tool in docker kind kubectl "$PYTHON"; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is needed" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pitwall-e2e.XXXXXX")
export KUBECONFIG="$WORK/kubeconfig"
mkdir -p "$ARTIFACTS"
created=0

log() { printf '\n== %s\n' "$*"; }

collect() {
  log "collecting diagnostics in $ARTIFACTS"
  kubectl get nodes -o wide >"$ARTIFACTS/nodes.txt" 2>&1 || true
  kubectl get pitwall,deployments,services,pods,endpointslices,leases -A -o wide >"$ARTIFACTS/objects.txt" 2>&1 || true
  kubectl get pitwall -A -o yaml >"$ARTIFACTS/pitwall.yaml" 2>&1 || true
  kubectl get events -A --sort-by=.lastTimestamp >"$ARTIFACTS/events.txt" 2>&1 || true
  kubectl -n pitwall-system logs -l app.kubernetes.io/name=pitwall --all-containers --prefix --tail=-1 \
    >"$ARTIFACTS/operator.log" 2>&1 || true
  kubectl -n pitwall-system logs -l app.kubernetes.io/name=pitwall --all-containers --prefix --previous \
    >"$ARTIFACTS/operator-previous.log" 2>&1 || true
}

cleanup() {
  local code=$?
  if [ "$code" != 0 ]; then
    collect
  fi
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

log "kind cluster $CLUSTER"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  if [ "$REUSE_CLUSTER" != 1 ]; then
    echo "a kind cluster named $CLUSTER exists: delete it, or set REUSE_CLUSTER=1" >&2
    exit 2
  fi
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
else
  node_image=()
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then
    node_image=(--image "$KIND_NODE_IMAGE")
  fi
  kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 180s "${node_image[@]}"
  created=1
fi

log "images $IMAGE and $DEMO_IMAGE"
docker build -t "$IMAGE" .
# The demo API (`pitwall demo-api`) as an image of its own: ApiProduct versions run an image's
# default command. Same build, cached, with another entrypoint.
{ cat Dockerfile; printf '\nENTRYPOINT ["pitwall", "demo-api", "--host", "0.0.0.0", "--port", "8080"]\nCMD []\n'; } \
  | docker build -t "$DEMO_IMAGE" -f - .
kind load docker-image --name "$CLUSTER" "$IMAGE" "$DEMO_IMAGE"

log "install: kubectl apply -k manifests/ with image $IMAGE"
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

log "leader election"
for _ in $(seq 60); do
  holder=$(kubectl -n pitwall-system get lease pitwall-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
  [ -n "$holder" ] && break
  sleep 2
done
if [ -z "${holder:-}" ]; then
  echo "no replica took the Lease pitwall-system/pitwall-operator" >&2
  exit 1
fi
echo "leader: $holder"

log "examples"
kubectl apply --server-side -f examples/
kubectl get pitwall -n marketplace

log "journeys (tests/journeys.py, as in the integration tests)"
"$PYTHON" -m tests.journeys --kubeconfig "$KUBECONFIG" --namespace pitwall-journeys \
  --api-image "$DEMO_IMAGE" --receiver-image "$IMAGE" --timeout-scale "$TIMEOUT_SCALE" \
  --examples-namespace marketplace

log "no 403 in the operator's log"
collect
if grep -Ei 'forbidden|not enough permissions' "$ARTIFACTS/operator.log"; then
  echo "the operator was refused by the API server (RBAC): see above" >&2
  exit 1
fi
log "e2e-kind passed"
