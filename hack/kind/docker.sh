#!/usr/bin/env bash
# Make sure a Docker engine answers, installing and starting one only where none runs.
#
#   hack/kind/docker.sh            exit 0 once `docker info` works
#
# - A running Docker (Docker Desktop, a systemd-managed dockerd, CI's): used as it is, never
#   reconfigured or restarted.
# - No engine: Debian's docker.io is installed with apt-get if missing, and dockerd is started
#   in the background (log: /var/log/pitwall-dockerd.log; these machines have no systemd).
# - Sandbox workaround, only when detected: if this process's capability bounding set lacks
#   CAP_SYS_RESOURCE (bit 24 of CapBnd in /proc/self/status), `docker run --privileged` (and so
#   kind) fails with "unable to apply caps: operation not permitted". Then dockerd is started
#   with hack/kind/nosysres (runc-nosysres) as its default runtime: it removes that one
#   capability from each container's spec before running the real runc. A host that has the
#   capability never gets it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
say() { printf '[docker] %s\n' "$*" >&2; }

sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)

lacks_sys_resource() {
  local bnd
  bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
  [ -n "$bnd" ] && [ $(( 0x$bnd >> 24 & 1 )) = 0 ]
}

if docker info >/dev/null 2>&1; then
  if lacks_sys_resource && ! docker info --format '{{.DefaultRuntime}}' 2>/dev/null | grep -qx nosysres; then
    say "note: this host lacks CAP_SYS_RESOURCE and the running dockerd does not use runc-nosysres;"
    say "privileged containers (kind nodes) will fail. Stop that dockerd and rerun this script."
  fi
  exit 0
fi

if ! command -v dockerd >/dev/null; then
  say "installing Debian's docker.io (apt-get)"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker.io >/dev/null
fi
if docker info >/dev/null 2>&1; then   # the package's own service may have started it
  exit 0
fi
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  say "starting docker with systemctl"
  "${sudo[@]}" systemctl start docker
else
  args=()
  if lacks_sys_resource; then
    wrapper=$("$here/tools.sh" nosysres | sed -n 's/^runc-nosysres=//p')
    "${sudo[@]}" install -D -m 0755 "$wrapper" /usr/local/libexec/pitwall/runc-nosysres
    say "this host's capability bounding set lacks CAP_SYS_RESOURCE: dockerd runs containers"
    say "through /usr/local/libexec/pitwall/runc-nosysres (drops that capability; see hack/kind/docker.sh)"
    args+=(--add-runtime nosysres=/usr/local/libexec/pitwall/runc-nosysres --default-runtime nosysres)
  fi
  say "starting dockerd ${args[*]} (log /var/log/pitwall-dockerd.log)"
  "${sudo[@]}" bash -c 'nohup dockerd "$@" >>/var/log/pitwall-dockerd.log 2>&1 </dev/null &' dockerd "${args[@]}"
fi
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
say "dockerd did not answer within 60 s; last lines of /var/log/pitwall-dockerd.log:"
tail -n 20 /var/log/pitwall-dockerd.log >&2 || true
exit 1
