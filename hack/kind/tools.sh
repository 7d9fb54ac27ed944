#!/usr/bin/env bash
# Build (once, cached by version) what the kind path needs besides the Kubernetes binaries
# (those come from hack/controlplane/build.sh --node): kind itself, containerd 2 with its runc
# shim and ctr, crictl, CoreDNS, the pod sandbox's pause and runc-nosysres (the capability
# workaround, hack/kind/nosysres), all from the Go module proxy or this repository.
#
#   hack/kind/tools.sh [NAME...]     build what is missing; prints NAME=PATH lines
#
# Cache: ${PITWALL_CACHE:-~/.cache/pitwall}/kind/tools/<name>-v<version>/
set -euo pipefail

KIND_VERSION=${KIND_VERSION:-0.33.0}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-2.4.2}
CRICTL_VERSION=${CRICTL_VERSION:-1.37.0}
COREDNS_VERSION=${COREDNS_VERSION:-1.14.6}
PAUSE_VERSION=${PAUSE_VERSION:-3.10.2}

here=$(cd "$(dirname "$0")" && pwd)
root=${PITWALL_CACHE:-$HOME/.cache/pitwall}/kind/tools
mkdir -p "$root"
say() { printf '[kind tools] %s\n' "$*" >&2; }
export CGO_ENABLED=0

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(kind containerd crictl coredns pause)

start=$SECONDS
n=0
for name in "${names[@]}"; do
  n=$(( n + 1 ))
  case "$name" in
    kind) dir=$root/kind-v$KIND_VERSION; files=(kind) ;;
    containerd) dir=$root/containerd-v$CONTAINERD_VERSION; files=(containerd containerd-shim-runc-v2 ctr) ;;
    crictl) dir=$root/crictl-v$CRICTL_VERSION; files=(crictl) ;;
    coredns) dir=$root/coredns-v$COREDNS_VERSION; files=(coredns) ;;
    pause) dir=$root/pause-$PAUSE_VERSION; files=(pause) ;;
    nosysres) dir=$root/nosysres-$(cksum <"$here/nosysres/main.go" | cut -d' ' -f1); files=(runc-nosysres) ;;
    *) echo "unknown tool $name" >&2; exit 2 ;;
  esac
  # One build per tool at a time: a second run waits, then finds it built.
  exec 9>"$dir.lock"
  flock -n 9 || { say "another build of $name is running (lock $dir.lock): waiting"; flock 9; }
  missing=0
  for f in "${files[@]}"; do [ -x "$dir/$f" ] || missing=1; done
  if [ $missing = 1 ]; then
    say "($n/${#names[@]}, $(( SECONDS - start ))s) building $name into $dir (a few minutes, once)"
    mkdir -p "$dir.tmp"
    log=$dir.log
    case "$name" in
      kind) GOBIN=$dir.tmp go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@v$KIND_VERSION" >"$log" 2>&1 ;;
      containerd)
        for c in containerd containerd-shim-runc-v2 ctr; do
          GOBIN=$dir.tmp go install -trimpath -tags no_btrfs \
            -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=v$CONTAINERD_VERSION" \
            "github.com/containerd/containerd/v2/cmd/$c@v$CONTAINERD_VERSION" >>"$log" 2>&1
        done ;;
      crictl) GOBIN=$dir.tmp go install -trimpath \
                -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRICTL_VERSION" \
                "sigs.k8s.io/cri-tools/cmd/crictl@v$CRICTL_VERSION" >"$log" 2>&1 ;;
      coredns) GOBIN=$dir.tmp go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@v$COREDNS_VERSION" >"$log" 2>&1 ;;
      pause) (cd "$here/pause" && go build -trimpath -ldflags "-s -w" -o "$dir.tmp/pause" .) >"$log" 2>&1 ;;
      nosysres) (cd "$here/nosysres" && go build -trimpath -ldflags "-s -w" -o "$dir.tmp/runc-nosysres" .) >"$log" 2>&1 ;;
    esac || { say "building $name failed; last lines of $log:"; tail -n 20 "$log" >&2; exit 1; }
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  for f in "${files[@]}"; do echo "$f=$dir/$f"; done
done
