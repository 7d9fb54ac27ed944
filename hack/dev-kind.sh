#!/usr/bin/env bash
# `make dev KIND=1`: the same demo as `make dev`, on real pods in a kind cluster: the operator
# installed with `kubectl apply -k manifests/` (2 replicas, leader election, in-cluster), the
# examples' ApiProducts running the demo API image. Then the status page and the internal view
# are port-forwarded to this machine until Ctrl-C; the cluster stays up for the next run.
#
#   make dev KIND=1                      # or hack/dev-kind.sh
#   kind delete cluster --name pitwall-dev   # when done
#
# Builds what it lacks like `make e2e-kind` (Docker engine, kind, kubectl, the node image where
# no registry answers, the images). Environment: KIND_CLUSTER (pitwall-dev), K8S_VERSION,
# STATUSPAGE_PORT (18081), INTERNAL_PORT (18082).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CLUSTER=${KIND_CLUSTER:-pitwall-dev}
IMAGE=pitwall:dev
DEMO_IMAGE=pitwall-demo:dev
STATUSPAGE_PORT=${STATUSPAGE_PORT:-18081}
INTERNAL_PORT=${INTERNAL_PORT:-18082}
export K8S_VERSION=${K8S_VERSION:-1.37.2}
say() { printf '\033[1;36m==>\033[0m %s\n' "$*"; }

state=$ROOT/.pitwall/kind
mkdir -p "$state/bin"
export KUBECONFIG=$state/kubeconfig
hack/kind/docker.sh
kbin=$(hack/controlplane/build.sh)
ln -sf "$kbin/kubectl" "$state/bin/kubectl"
ln -sf "$(hack/kind/tools.sh kind | sed -n 's/^kind=//p')" "$state/bin/kind"
export PATH=$state/bin:$PATH

say "images $IMAGE, $DEMO_IMAGE"
hack/kind/image.sh --demo "$IMAGE" "$DEMO_IMAGE"

if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  args=(--name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 300s)
  config=$state/kind.yaml
  {
    echo "kind: Cluster"
    echo "apiVersion: kind.x-k8s.io/v1alpha4"
    if ! timeout 120 docker pull -q hello-world >/dev/null 2>&1; then
      say "no image registry answers: node image built here (hack/kind/node-image.sh)" >&2
      args+=(--image "$(hack/kind/node-image.sh)")
      printf 'networking:\n  disableDefaultCNI: true\n'
    fi
    if [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
      printf 'kubeadmConfigPatches:\n- |\n  kind: KubeletConfiguration\n  failCgroupV1: false\n'
    fi
  } >"$config"
  say "kind cluster $CLUSTER"
  kind create cluster "${args[@]}" --config "$config"
else
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
fi
kind load docker-image --name "$CLUSTER" "$IMAGE" "$DEMO_IMAGE"

say "install: kubectl apply --server-side -k manifests/ (image $IMAGE)"
overlay=$state/overlay
mkdir -p "$overlay"
cat >"$overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../../manifests
images:
  - name: ghcr.io/pitwall-dev/pitwall
    newName: ${IMAGE%:*}
    newTag: "${IMAGE##*:}"
EOF
kubectl apply --server-side -k "$overlay" >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd -l app.kubernetes.io/part-of=pitwall >/dev/null
kubectl -n pitwall-system rollout restart deployment/pitwall >/dev/null   # pick up a rebuilt image
kubectl -n pitwall-system rollout status deployment/pitwall --timeout=300s

say "examples (their versions run $DEMO_IMAGE)"
# (the examples' URL probes name make dev's demo API on 127.0.0.1:18080: here, payments v1's Service)
for f in examples/*.yaml; do
  echo "---"   # between files: else one file's last document merges with the next one's first
  sed -e "s#image: registry.example.com/[^ ]*#image: $DEMO_IMAGE#" \
      -e "s#http://127.0.0.1:18080#http://payments-v1.marketplace.svc#" "$f"
done | kubectl apply --server-side -f - >/dev/null
kubectl get pods -A -o wide
kubectl get pitwall -n marketplace

cat <<EOF

$(say "Pitwall runs on real pods in kind cluster $CLUSTER")
  export KUBECONFIG=$KUBECONFIG PATH=$state/bin:\$PATH
  kubectl get pitwall -A                    # everything Pitwall manages
  status page:    http://127.0.0.1:$STATUSPAGE_PORT/
  internal view:  http://127.0.0.1:$INTERNAL_PORT/   (port-forwarded to the leader until Ctrl-C)
  done:           kind delete cluster --name $CLUSTER
EOF
# the leader serves the internal view; its Lease identity is its pod name plus a suffix
target=deployment/pitwall
for _ in $(seq 30); do
  holder=$(kubectl -n pitwall-system get lease pitwall-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
  for pod in $(kubectl -n pitwall-system get pods -l app.kubernetes.io/name=pitwall -o name); do
    case "$holder" in "${pod#pod/}"*) target=$pod ;; esac
  done
  [ "$target" != deployment/pitwall ] && break
  sleep 2
done
kubectl -n pitwall-system port-forward "$target" "$STATUSPAGE_PORT:8081" "$INTERNAL_PORT:8082"
