# The two set-up commands from the README: `make install` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint unit tools e2e bench

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

bench:
	$(BIN)/python tests/benchmark.py
