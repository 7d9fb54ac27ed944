#!/usr/bin/env bash
# Build the operator image from the Dockerfile (make image), and with --demo the demo API image
# (the same build with `pitwall demo-api` as its command: ApiProduct versions in e2e-kind and
# `make dev KIND=1` run it).
#
#   hack/kind/image.sh [--demo] [IMAGE [DEMO_IMAGE]]      defaults pitwall:dev pitwall-demo:dev
#
# The base is python:3.11-slim when it is present or can be pulled. When no registry answers,
# the base is made from Debian's packages (hack/kind/base.sh python) and the wheels are built
# on the host (build/wheels/, pip's ordinary index) and installed inside with --no-index:
# containers here reach no package index. BASE=... forces a base; OFFLINE=1 forces that path.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=hack/kind
say() { printf '[image] %s\n' "$*" >&2; }

demo=0
if [ "${1:-}" = "--demo" ]; then demo=1; shift; fi
IMAGE=${1:-pitwall:dev}
DEMO_IMAGE=${2:-pitwall-demo:dev}
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python
UPSTREAM_BASE=python:3.11-slim-bookworm

"$here/docker.sh"

args=()
base=${BASE:-}
if [ -z "$base" ] && [ "${OFFLINE:-0}" != 1 ]; then
  if docker image inspect "$UPSTREAM_BASE" >/dev/null 2>&1 \
     || timeout 120 docker pull -q "$UPSTREAM_BASE" >/dev/null 2>&1; then
    base=$UPSTREAM_BASE
  fi
fi
if [ -z "$base" ]; then
  say "no image registry answers: base from Debian's packages, wheels built on the host"
  base=$("$here/base.sh" python)
  start=$SECONDS
  # offline first (every pinned wheel already in build/wheels: no index round trips), else PyPI
  "$PYTHON" -m pip wheel -q --disable-pip-version-check --no-index --find-links build/wheels \
      -w build/wheels -r requirements.lock 'setuptools>=77' wheel >/dev/null 2>&1 \
    || "$PYTHON" -m pip wheel -q --disable-pip-version-check -w build/wheels \
      -r requirements.lock 'setuptools>=77' wheel
  say "host wheels in build/wheels ($(( SECONDS - start ))s)"
  args+=(--build-arg PIP_NO_INDEX=1)
fi
args+=(--build-arg "BASE=$base")

start=$SECONDS
say "docker build -t $IMAGE (base $base)"
docker build -q "${args[@]}" -t "$IMAGE" . >/dev/null
say "built $IMAGE in $(( SECONDS - start ))s"
if [ "$demo" = 1 ]; then
  { cat Dockerfile; printf '\nENTRYPOINT ["pitwall", "demo-api", "--host", "0.0.0.0", "--port", "8080"]\nCMD []\n'; } \
    | docker build -q "${args[@]}" -t "$DEMO_IMAGE" -f - . >/dev/null
  say "built $DEMO_IMAGE"
fi
# The image's promises: non-root, read-only root filesystem.
docker run --rm --read-only --user 65532:65532 --entrypoint pitwall "$IMAGE" --help >/dev/null
say "$IMAGE runs as uid $(docker run --rm --read-only --entrypoint id "$IMAGE" -u) with a read-only root filesystem"
