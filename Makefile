# The two set-up commands from the README: `make install` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint e2e bench crds lock

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	bash .ci/install-tools.sh

lint:
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/pytest -q

e2e:
	$(BIN)/pytest -q tests/e2e --kubeconfig "$${KUBECONFIG:-$$HOME/.kube/config}"

# BENCH_ARGS: e.g. "--objects 1000 --steady-seconds 600 --drift-interval 60" (see --help).
bench:
	$(BIN)/python -m tests.benchmark $(BENCH_ARGS)

# The CRD is generated from the pydantic models; the chart holds a byte-for-byte copy.
crds:
	$(BIN)/renku-env-operator crd > crds/globalenvironments.renku.io.yaml
	cp crds/globalenvironments.renku.io.yaml helm/renku-env-operator/files/

# Pinned versions for CI and the container image (plain name==version lines).
lock:
	$(BIN)/pip freeze --exclude-editable --exclude renku-env-operator > requirements.lock
