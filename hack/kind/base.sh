#!/usr/bin/env bash
# Base images made from Debian's packages with mmdebstrap + `docker import`, for hosts that
# reach Debian's archive but no image registry (the Dockerfile's and kind's usual bases come
# from Docker Hub and registry.k8s.io). Cached as Docker images tagged by their package list.
#
#   hack/kind/base.sh python     Python 3.11 + venv (bookworm): the operator image's base
#   hack/kind/base.sh iptables   iptables, conntrack: kube-proxy's image base
#   hack/kind/base.sh node       systemd, mount tools, iptables, runc, CNI plugins: kind node base
# Prints the image name.
set -euo pipefail
SUITE=${DEBIAN_SUITE:-bookworm}
say() { printf '[base] %s\n' "$*" >&2; }

kind=${1:?usage: base.sh python|iptables|node}
env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
changes=()
case "$kind" in
  python)
    packages=python3,python3-venv,ca-certificates,tzdata,passwd
    changes=('CMD ["python3"]') ;;
  iptables)
    packages=iptables,conntrack,ipset,kmod,ca-certificates ;;
  node)
    # kind's images/base: systemd as PID 1, the mount/network tools kubelet and kubeadm call,
    # runc (containerd 2 and the rest come from Go modules: hack/kind/node-image.sh).
    packages=systemd,systemd-sysv,dbus,libseccomp2,runc,iptables,nftables,conntrack,ipset,ethtool,socat,ebtables,kmod,iproute2,mount,util-linux,e2fsprogs,xfsprogs,pigz,bash,ca-certificates,curl,procps,hostname,findutils,lsb-release,containernetworking-plugins,apparmor
    changes=('ENTRYPOINT ["/sbin/init"]' 'STOPSIGNAL SIGRTMIN+3') ;;
  *) echo "unknown base $kind" >&2; exit 2 ;;
esac
tag=$(printf '%s %s' "$SUITE" "$packages" | cksum | cut -d' ' -f1)
image=pitwall-base/$kind:$SUITE-$tag
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
