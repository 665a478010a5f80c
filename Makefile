# The two set-up commands from the README: `make install` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Optional dependency groups (dev: tests, linters and actionlint).
EXTRAS ?= dev

.PHONY: install test lint e2e bench bench-memory bench-validate crds lock image-test cluster cluster-down cluster-binaries

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[$(EXTRAS)]'
	bash .ci/install-tools.sh

lint:
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/pytest -q

# Build the image from the Dockerfile (buildah, on a debootstrapped Debian base) and run it as a
# cluster would (podman, tests/image). Needs root and apt; see .ci/image.sh.
image-test:
	bash .ci/image.sh

# A real single-node Kubernetes on this machine (root, no Docker; tests/cluster/up.sh says what
# runs). Its version is in tests/cluster/versions.env; binaries are cached by version.
CLUSTER_STATE ?= /var/lib/renku-env-e2e
include tests/cluster/versions.env
export KUBERNETES_VERSION

cluster-binaries:
	bash tests/cluster/build.sh

cluster:
	RENKU_E2E_STATE=$(CLUSTER_STATE) bash tests/cluster/up.sh

cluster-down:
	RENKU_E2E_STATE=$(CLUSTER_STATE) bash tests/cluster/down.sh

# Against `make cluster` when it is up (its kubeconfig and local registry), else $KUBECONFIG.
E2E_REGISTRY ?= 127.0.0.1:5000
e2e:
	@if [ -f $(CLUSTER_STATE)/kubeconfig ] && [ -z "$$KUBECONFIG" ]; then \
	  export KUBECONFIG=$(CLUSTER_STATE)/kubeconfig \
	    RENKU_E2E_SMOKE_IMAGE=$${RENKU_E2E_SMOKE_IMAGE:-$(E2E_REGISTRY)/renku-e2e/python:3.11} \
	    RENKU_E2E_IMAGE_REGISTRY=$(E2E_REGISTRY); \
	  if [ -z "$$RENKU_E2E_OPERATOR_IMAGE" ] && curl -fsS -o /dev/null \
	      http://$(E2E_REGISTRY)/v2/renku-env-operator/manifests/ci \
	      -H 'Accept: application/vnd.oci.image.manifest.v1+json'; then \
	    export RENKU_E2E_OPERATOR_IMAGE=$(E2E_REGISTRY)/renku-env-operator:ci; fi; \
	fi; \
	echo "e2e: KUBECONFIG=$${KUBECONFIG:-$$HOME/.kube/config}"; \
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/pytest -q tests/e2e --kubeconfig "$${KUBECONFIG:-$$HOME/.kube/config}"

# BENCH_ARGS: e.g. "--objects 1000 --steady-seconds 600 --drift-interval 60" (see --help).
bench:
	$(BIN)/python -m tests.benchmark $(BENCH_ARGS)

# The operator's peak RSS under a hostile registry, 100 objects, beside half the chart's
# memory limit (prints figures, asserts nothing). MEMORY_ARGS: e.g. "--seconds 300" (--help).
bench-memory:
	$(BIN)/python -m tests.benchmark.memory $(MEMORY_ARGS)

# `validate` speed: 5 MB of manifests, 200 files, one file (prints figures, asserts nothing).
bench-validate:
	$(BIN)/python -m tests.bench_validate

# The CRDs are generated from the pydantic models; the chart holds byte-for-byte copies.
crds:
	$(BIN)/renku-env-operator crd > crds/globalenvironments.renku.io.yaml
	cp crds/globalenvironments.renku.io.yaml helm/renku-env-operator/files/
	$(BIN)/renku-env-operator crd --claims > crds/globalenvironmentclaims.renku.io.yaml
	cp crds/globalenvironmentclaims.renku.io.yaml helm/renku-env-operator/files/

# Pinned versions for CI and the container image (plain name==version lines).
lock:
	$(BIN)/pip freeze --exclude-editable --exclude renku-env-operator > requirements.lock.new
	mv requirements.lock.new requirements.lock
