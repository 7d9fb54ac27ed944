# Pitwall: one image for the operator (`pitwall run`), the maintenance page
# (`pitwall maintenance-page`) and the status page (served by the operator).
# Multi-stage: wheels are built in the first stage; the final stage has no compilers.

ARG PYTHON=python:3.11-slim-bookworm

FROM ${PYTHON} AS build
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.lock \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON}
LABEL org.opencontainers.image.title="pitwall" \
      org.opencontainers.image.description="Kubernetes operator for API marketplaces" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels /wheels/*.whl \
 && rm -rf /wheels \
 && useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin pitwall
USER 65532:65532
# Nothing is written to the root filesystem: run with readOnlyRootFilesystem.
EXPOSE 8080 8081 8082
ENTRYPOINT ["pitwall"]
CMD ["run"]
