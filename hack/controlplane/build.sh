#!/usr/bin/env bash
# Build the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) from the Go module proxy, pinned, cached by version.
#
#   hack/controlplane/build.sh          build if missing, print the bin directory
#
# Cache: ${PITWALL_CACHE:-~/.cache/pitwall}/controlplane/<versions>/bin
# A KUBEBUILDER_ASSETS directory that already holds every binary is used instead.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.33.0}
STAGING_VERSION=0.${K8S_VERSION#1.}
ETCD_VERSION=${ETCD_VERSION:-3.5.21}
KWOK_VERSION=${KWOK_VERSION:-0.7.0}
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

here=$(cd "$(dirname "$0")" && pwd)

have_all() {
  local dir=$1 b
  for b in "${BINARIES[@]}"; do [ -x "$dir/$b" ] || return 1; done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && have_all "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache=${PITWALL_CACHE:-$HOME/.cache/pitwall}/controlplane/k8s-v$K8S_VERSION-etcd-v$ETCD_VERSION-kwok-v$KWOK_VERSION
bin=$cache/bin
if have_all "$bin"; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the control plane" >&2; exit 1; }
mkdir -p "$cache/src" "$bin"
src=$cache/src
sed -e "s/@K8S@/$K8S_VERSION/" -e "s/@ETCD@/$ETCD_VERSION/" -e "s/@STAGING@/$STAGING_VERSION/g" \
  "$here/go.mod.in" > "$src/go.mod"
cp "$here/tools.go.in" "$src/tools.go"
cd "$src"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
echo ">> go mod tidy (k8s v$K8S_VERSION, etcd v$ETCD_VERSION)" >&2
go mod tidy >&2
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  [ -x "$bin/$cmd" ] && continue
  echo ">> building $cmd" >&2
  go build -trimpath -ldflags "$ldflags" -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" >&2
  mv "$bin/$cmd.tmp" "$bin/$cmd"
done
if [ ! -x "$bin/etcd" ]; then
  echo ">> building etcd" >&2
  go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
  mv "$bin/etcd.tmp" "$bin/etcd"
fi
if [ ! -x "$bin/kwok" ]; then
  echo ">> building kwok v$KWOK_VERSION" >&2
  GOBIN=$bin go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" >&2
fi
echo "$bin"
