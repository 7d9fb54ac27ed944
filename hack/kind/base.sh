#!/usr/bin/env bash
# Base images made from Debian's packages with mmdebstrap + `docker import`, for hosts that
# reach Debian's archive but no image registry (the Dockerfile's and kind's usual bases come
# from Docker Hub and registry.k8s.io). Cached as Docker images tagged by their package list.
#
#   hack/kind/base.sh python     Python 3.11 + venv (bookworm): the operator image's base
#   hack/kind/base.sh kind-images  iptables, conntrack, curl: kube-proxy's base, the journeys' client pods
#   hack/kind/base.sh node       systemd, mount tools, iptables, runc, CNI plugins: kind node base
# Prints the image name.
set -euo pipefail
SUITE=${DEBIAN_SUITE:-bookworm}
say() { printf '[base] %s\n' "$*" >&2; }

kind=${1:?usage: base.sh python|kind-images|node}
env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
changes=()
case "$kind" in
  python)
    packages=python3,python3-venv,ca-certificates,tzdata,passwd
    changes=('CMD ["python3"]') ;;
  node)
    # kind's images/base: systemd as PID 1, the mount/network tools kubelet and kubeadm call,
    # runc (containerd 2 and the rest come from Go modules: hack/kind/node-image.sh).
    packages=systemd,systemd-sysv,dbus,libseccomp2,runc,iptables,nftables,conntrack,ipset,ethtool,socat,ebtables,kmod,iproute2,mount,util-linux,e2fsprogs,pigz,bash,ca-certificates,curl,jq,procps,hostname,findutils,containernetworking-plugins
    changes=('ENTRYPOINT ["/sbin/init"]') ;;   # STOPSIGNAL: in hack/kind/node/Dockerfile
  kind-images)
    # the kube-proxy image's base (iptables) and a shell for the journeys' client pods
    packages=iptables,conntrack,ipset,kmod,ca-certificates,curl,procps ;;
  *) echo "unknown base $kind" >&2; exit 2 ;;
esac
tag=$(printf '%s %s' "$SUITE" "$packages" | cksum | cut -d' ' -f1)
image=pitwall-base/$kind:$SUITE-$tag
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi
# One build per base at a time: a second run waits, then finds the image.
lock=${PITWALL_CACHE:-$HOME/.cache/pitwall}/base-$kind.lock
mkdir -p "$(dirname "$lock")"
exec 9>"$lock"
flock -n 9 || { say "another build of $image is running: waiting"; flock 9; }
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi
command -v mmdebstrap >/dev/null || {
  say "installing mmdebstrap (apt-get)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
}
work=$(mktemp -d "${TMPDIR:-/tmp}/pitwall-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "building $image from Debian $SUITE packages ($packages); about a minute"
start=$SECONDS
# shellcheck disable=SC2016  # the hook's $1 is mmdebstrap's, not this script's
mmdebstrap --quiet --variant=minbase --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/{doc,man,info,locale}/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
  "$SUITE" "$work/rootfs.tar" >&2
change_args=()
for e in "${env[@]}"; do change_args+=(--change "ENV $e"); done
for c in "${changes[@]}"; do change_args+=(--change "$c"); done
docker import "${change_args[@]}" "$work/rootfs.tar" "$image" >/dev/null
say "built $image in $(( SECONDS - start ))s"
echo "$image"
