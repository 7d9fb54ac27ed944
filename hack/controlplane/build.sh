#!/usr/bin/env bash
# Build the Kubernetes binaries Pitwall runs, from the Go module proxy, pinned, cached by version:
#   control plane (make test, make dev): etcd, kube-apiserver, kube-controller-manager,
#                                        kube-scheduler, kubectl, kwok
#   --node (the kind node image, make e2e-kind): also kubelet, kubeadm, kube-proxy
# Each binary is built once per version and reused by every path (tests, dev, the node image).
#
#   hack/controlplane/build.sh [--node]       build what is missing, print the bin directory
#   K8S_VERSION=1.35.4 hack/controlplane/build.sh   another supported version (etcd follows it)
#
# Cache: ${PITWALL_CACHE:-~/.cache/pitwall}/controlplane/k8s-v<K>-etcd-v<E>-kwok-v<W>/bin
# (go's own output goes to build.log there; this script prints what it builds, component n of N
# and the elapsed time). Two runs at once are safe: the second waits for the first (flock) and
# then finds the binaries built. A KUBEBUILDER_ASSETS directory that already holds every
# control-plane binary is used instead (not with --node).
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.37.2}
# etcd: the version that Kubernetes release requires (its go.mod; kubeadm's default image tag).
default_etcd() {
  case "$1" in
    1.33.*) echo 3.5.21 ;;
    1.34.*) echo 3.6.4 ;;
    1.35.*) echo 3.6.5 ;;
    1.36.*) echo 3.6.8 ;;
    *) echo 3.7.0 ;;
  esac
}
ETCD_VERSION=${ETCD_VERSION:-$(default_etcd "$K8S_VERSION")}
KWOK_VERSION=${KWOK_VERSION:-0.7.0}
STAGING_VERSION=0.${K8S_VERSION#1.}
CONTROLPLANE=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)
NODE=(kubelet kubeadm kube-proxy)

wanted=("${CONTROLPLANE[@]}")
if [ "${1:-}" = "--node" ]; then
  wanted+=("${NODE[@]}")
fi

here=$(cd "$(dirname "$0")" && pwd)
say() { printf '[controlplane] %s\n' "$*" >&2; }

have_all() {
  local dir=$1 b
  for b in "${wanted[@]}"; do [ -x "$dir/$b" ] || return 1; done
}

if [ "${1:-}" != "--node" ] && [ -n "${KUBEBUILDER_ASSETS:-}" ] && have_all "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

root=${PITWALL_CACHE:-$HOME/.cache/pitwall}/controlplane
cache=$root/k8s-v$K8S_VERSION-etcd-v$ETCD_VERSION-kwok-v$KWOK_VERSION
bin=$cache/bin
if have_all "$bin"; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the control plane (apt-get install golang-go)" >&2; exit 1; }
mkdir -p "$cache/src" "$bin"

# One build per version at a time: a second run waits, then finds the binaries in place.
exec 9>"$cache/.lock"
if ! flock -n 9; then
  say "another build of k8s v$K8S_VERSION is running (lock $cache/.lock): waiting for it"
  flock 9
fi
if have_all "$bin"; then
  echo "$bin"
  exit 0
fi

todo=()
for b in "${wanted[@]}"; do [ -x "$bin/$b" ] || todo+=("$b"); done
total=$(( ${#todo[@]} + 1 ))
log=$cache/build.log
start=$SECONDS
elapsed() { local s=$(( SECONDS - start )); printf '%dm%02ds' $(( s / 60 )) $(( s % 60 )); }
step=0
progress() { step=$(( step + 1 )); say "($step/$total, $(elapsed)) $*"; }

say "first build of Kubernetes v$K8S_VERSION from the Go module proxy: ${todo[*]}"
say "on 2 cores this takes 15-45 minutes depending on load (kube-apiserver is the longest,"
say "later binaries reuse its packages), once: cached in $bin"
say "go's output: $log"

src=$cache/src
on_exit() {
  local code=$?
  if [ "$code" != 0 ]; then say "build failed after $(elapsed); last lines of $log:"; tail -n 25 "$log" >&2; fi
}
trap on_exit EXIT

# The wrapper module: k8s.io/kubernetes replaces its staging modules with local paths, so map
# each one (read from that release's own go.mod) to its published version.
cd "$src"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
progress "resolving modules (k8s v$K8S_VERSION, etcd v$ETCD_VERSION)"
{
  kmod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  replaces=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 v'"$STAGING_VERSION"'#p' "$kmod")
  {
    sed -e "s/@K8S@/$K8S_VERSION/" -e "s/@ETCD@/$ETCD_VERSION/" "$here/go.mod.in"
    printf '\nreplace (\n%s\n)\n' "$replaces"
  } > go.mod
  cp "$here/tools.go.in" tools.go
  go mod tidy
} >>"$log" 2>&1

minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
for cmd in "${todo[@]}"; do
  progress "building $cmd"
  case "$cmd" in
    etcd) go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3 >>"$log" 2>&1 ;;
    kwok) GOBIN=$cache/kwok go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" >>"$log" 2>&1
          mv "$cache/kwok/kwok" "$bin/kwok.tmp" ;;
    *) go build -trimpath -ldflags "$ldflags" -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" >>"$log" 2>&1 ;;
  esac
  mv "$bin/$cmd.tmp" "$bin/$cmd"
done
say "done in $(elapsed): $bin"
echo "$bin"
