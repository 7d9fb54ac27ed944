# Pitwall: one image for the operator (`pitwall run`), the maintenance page
# (`pitwall maintenance-page`) and the status page (served by the operator).
# Multi-stage: wheels are built in the first stage; the final stage has no compilers.
#
#   docker build -t pitwall:dev .                       # python:3.11-slim, wheels from PyPI
#   make image                                          # the same; see below without a registry
#
# Without an image registry or package index (air-gapped hosts, this project's CI machines),
# `make image` (hack/kind/image.sh) builds the wheels on the host into build/wheels/, makes a
# Python 3.11 base from Debian's packages (hack/kind/base.sh python) and passes
#   --build-arg BASE=pitwall-base/python:... --build-arg PIP_NO_INDEX=1
# so nothing inside the build reaches the network.

ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
# 1: install only from the wheels copied in (build/wheels/ from the host), never an index.
ARG PIP_NO_INDEX=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# build/wheel[s]: host-built wheels when present (the glob matches nothing otherwise).
COPY requirements.lock build/wheel[s] /wheelhouse/
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python3 -m venv /build \
 && /build/bin/pip wheel --find-links /wheelhouse --wheel-dir /wheels -r /wheelhouse/requirements.lock \
 && /build/bin/pip wheel --find-links /wheelhouse --no-deps --wheel-dir /wheels .
# The runtime venv, copied whole into the final stage (same base, so its python links hold).
# A venv: the same on python:3.11-slim and on Debian's python3 (which refuses system-wide pip
# installs, PEP 668). Modules are compiled at install time: nothing is written at run time.
RUN python3 -m venv /opt/pitwall \
 && /opt/pitwall/bin/pip install --no-index --find-links=/wheels pitwall \
 && /opt/pitwall/bin/pip uninstall -y -q pip

FROM ${BASE}
LABEL org.opencontainers.image.title="pitwall" \
      org.opencontainers.image.description="Kubernetes operator for API marketplaces" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/pitwall/bin:$PATH
COPY --from=build /opt/pitwall /opt/pitwall
RUN useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin pitwall
USER 65532:65532
# Nothing is written to the root filesystem: run with readOnlyRootFilesystem.
EXPOSE 8080 8081 8082
ENTRYPOINT ["pitwall"]
CMD ["run"]
