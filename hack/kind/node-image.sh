#!/usr/bin/env bash
# Build a kind node image here, from Debian packages and Go modules only, for hosts that reach no
# image registry (kind's own kindest/node comes from Docker Hub; its control-plane images from
# registry.k8s.io). Hosts with a registry keep kind's default node image: this is not needed.
#
#   hack/kind/node-image.sh            print the image name, building it first if missing
#
# Layout: kind's node image (systemd, containerd with its CRI config, runc, kubelet, kubeadm,
# kubectl, CNI plugins, crictl; kind's entrypoint and units) plus, imported into containerd's
# k8s.io namespace, every image `kubeadm config images list` names (kube-apiserver,
# kube-controller-manager, kube-scheduler, kube-proxy, etcd, CoreDNS, pause), each built here
# from the binaries hack/controlplane/build.sh --node and hack/kind/tools.sh made (cached by
# version: the same Kubernetes binaries `make test` runs). The CNI is a bridge configuration in
# /etc/cni/net.d (one node; kind's own CNI is disabled by hack/kind/cluster.yaml), so no CNI
# image is needed.
#
# Cache: the Docker image pitwall-kind/node:v<K8S_VERSION>-<hash of these files and versions>.
set -euo pipefail
cd "$(dirname "$0")/../.."
K8S_VERSION=${K8S_VERSION:-1.37.2}
export K8S_VERSION
say() { printf '[node-image] %s\n' "$*" >&2; }
start=$SECONDS

declare -A tool
while IFS='=' read -r name path; do tool[$name]=$path; done < <(hack/kind/tools.sh containerd crictl coredns pause nosysres)
kbin=$(hack/controlplane/build.sh --node)
pause_version=$(basename "$(dirname "${tool[pause]}")"); pause_version=${pause_version#pause-}

hash=$( { find hack/kind/node hack/kind/nosysres hack/kind/pause hack/kind/node-image.sh -type f -print0 \
           | sort -z | xargs -0 cat; printf '%s\n' "${tool[@]}" "$kbin"; } | cksum | cut -d' ' -f1)
image=pitwall-kind/node:v$K8S_VERSION-$hash
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi
say "building $image (Kubernetes v$K8S_VERSION; a few minutes once the binaries are built)"

base=$(hack/kind/base.sh node)
kbase=$(hack/kind/base.sh kind-images)
ctx=$(mktemp -d "${TMPDIR:-/tmp}/pitwall-node.XXXXXX")
cid=
cleanup() { [ -n "$cid" ] && docker rm -f "$cid" >/dev/null 2>&1; rm -rf "$ctx"; }
trap cleanup EXIT

# 1. the node filesystem
cp -r hack/kind/node/Dockerfile hack/kind/node/files "$ctx/"
mkdir -p "$ctx/bin" "$ctx/kube" "$ctx/images"
cp "${tool[containerd]}" "${tool[containerd-shim-runc-v2]}" "${tool[ctr]}" "${tool[crictl]}" \
   "${tool[runc-nosysres]}" "$ctx/bin/"
cp "$kbin/kubelet" "$kbin/kubeadm" "$kbin/kubectl" "$ctx/kube/"
docker build -q --build-arg "BASE=$base" --build-arg "PAUSE_VERSION=$pause_version" \
  -t "pitwall-kind/node-build:$hash" "$ctx" >/dev/null
say "node filesystem built ($(( SECONDS - start ))s)"

# 2. the images kubeadm and the node need, under the names kubeadm expects
component_image() {   # ref dir binary-path path-in-image [FROM]
  local ref=$1 dir=$2 src=$3 dest=$4 from=${5:-scratch}
  mkdir -p "$dir"
  cp "$src" "$dir/$(basename "$dest")"
  {
    echo "FROM $from"
    echo "COPY $(basename "$dest") $dest"
    echo "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    case "$dest" in /coredns|/pause) echo "ENTRYPOINT [\"$dest\"]" ;; esac
  } >"$dir/Dockerfile"
  docker build -q -t "$ref" "$dir" >/dev/null
  docker save "$ref" -o "$ctx/images/$(basename "$dir").tar"
}
refs=$("$kbin/kubeadm" config images list --kubernetes-version "v$K8S_VERSION")
for ref in $refs; do
  name=${ref##*/}; name=${name%%:*}
  case "$name" in
    kube-apiserver|kube-controller-manager|kube-scheduler)
      component_image "$ref" "$ctx/c-$name" "$kbin/$name" "/usr/local/bin/$name" ;;
    kube-proxy) component_image "$ref" "$ctx/c-$name" "$kbin/$name" "/usr/local/bin/$name" "$kbase" ;;
    etcd) component_image "$ref" "$ctx/c-etcd" "$kbin/etcd" /usr/local/bin/etcd ;;
    coredns) component_image "$ref" "$ctx/c-coredns" "${tool[coredns]}" /coredns ;;
    pause) component_image "$ref" "$ctx/c-pause" "${tool[pause]}" /pause ;;
    *) echo "kubeadm needs an image this script cannot build: $ref" >&2; exit 1 ;;
  esac
done
say "images built: ${refs//$'\n'/ } ($(( SECONDS - start ))s)"

# 3. import them into the node's containerd (as kind's node-image build does), then commit
cid=$(docker run -d --entrypoint=sleep --security-opt seccomp=unconfined "pitwall-kind/node-build:$hash" infinity)
docker exec "$cid" bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
for _ in $(seq 30); do
  docker exec "$cid" ctr version >/dev/null 2>&1 && break
  sleep 1
done
for tar in "$ctx"/images/*.tar; do
  docker exec -i "$cid" ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
    --all-platforms --no-unpack --digests - <"$tar" >/dev/null
done
echo "v$K8S_VERSION" | docker exec -i "$cid" sh -c 'cat >/kind/version'
docker exec "$cid" ctr --namespace=k8s.io images list -q | sed 's/^/[node-image]   /' >&2
docker exec "$cid" pkill containerd || true
sleep 2
docker exec "$cid" rm -f /tmp/containerd.log
docker commit \
  --change 'ENTRYPOINT ["/usr/local/bin/pitwall-entrypoint", "/usr/local/bin/entrypoint", "/sbin/init"]' \
  --change 'CMD []' "$cid" "$image" >/dev/null
docker image rm "pitwall-kind/node-build:$hash" >/dev/null 2>&1 || true
say "built $image in $(( SECONDS - start ))s"
echo "$image"
