# Pitwall: the two commands are `make dev` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STATE := .pitwall

.PHONY: help dev test lint lock unit integration install controlplane cluster cluster-down crds bench \
        e2e-kind image clean chaos

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dev]'
	touch $@

install: $(VENV)/.installed ## Python virtualenv with Pitwall and its test tools

controlplane: ## build (once, cached by version) etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok; K8S_VERSION=1.35.4 for another
	@hack/controlplane/build.sh >/dev/null

dev: install controlplane ## local control plane + CRDs + demo API + operator + examples (Ctrl-C stops all); KIND=1: on real pods in kind
	$(if $(filter 1,$(KIND)),hack/dev-kind.sh,$(PY) hack/dev.py --dir $(STATE))

test: lint ## lint, unit and integration tests (integration runs a real local control plane)
	$(MAKE) controlplane
	$(PY) -m pytest tests -q $(PYTEST_ARGS)

lint: install ## ruff (check and format), the import contracts (.importlinter) and mypy (pyproject.toml); docs/architecture.md
	$(PY) -m ruff check operator tests hack $(wildcard bench)
	$(PY) -m ruff format --check operator tests hack $(wildcard bench)
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

unit: install ## unit tests only (no cluster)
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

integration: install controlplane ## integration tests only
	$(PY) -m pytest tests/integration -q $(PYTEST_ARGS)

cluster: install controlplane ## start the control plane in the background; kubeconfig in .pitwall/kubeconfig
	$(PY) -m pitwall_testing.cluster up --dir $(STATE)

cluster-down: ## stop it (no process left behind)
	@if [ -x $(PY) ]; then $(PY) -m pitwall_testing.cluster down --dir $(STATE); \
	else $(PYTHON) -c 'import sys; sys.path.insert(0, "operator"); from pitwall_testing.cluster import main; main(["down", "--dir", "$(STATE)"])'; fi

lock: install ## pin the image's dependencies (requirements.lock) and the dev tools (requirements-dev.lock)
	$(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11 --quiet --custom-compile-command "make lock" -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11 --quiet --custom-compile-command "make lock" --extra test --extra dev \
		--constraint requirements.lock -o requirements-dev.lock

crds: install ## regenerate crds/*.yaml from the API models in operator/pitwall/api/ (the single source)
	$(PY) -m pitwall.crds

bench: install controlplane ## benchmarks; results in bench/results/
	$(PY) -m bench.run $(BENCH_ARGS)

chaos: install controlplane ## >= 100 SIGKILLs, an API server stop, a receiver outage; results in bench/results/chaos.md
	$(PY) -m bench.chaos $(CHAOS_ARGS)

IMAGE ?= pitwall:dev
image: ## build the operator image (starts/installs a Docker engine if none; no registry: a Debian-made base)
	hack/kind/image.sh $(IMAGE)

e2e-kind: install ## kind end-to-end: installs/builds Docker, kind, node image, images; cluster, install, journeys with real pods
	PYTHON=$(PY) hack/e2e-kind.sh

clean: cluster-down
	rm -rf $(VENV) $(STATE) artifacts
