#!/usr/bin/env bash
# CI's image step: build the real Dockerfile without a Docker engine and without pulling any base
# image, then run the image the way a cluster would (tests/image, with podman).
#
#   bash .ci/image.sh            # tools, base image, build, run checks
#   IMAGE=... bash .ci/image.sh  # another tag for the built image
#
# 1. buildah, podman, skopeo, runc, debootstrap, uidmap from apt (only when one is missing).
# 2. Container configuration from .ci/containers/ through CONTAINERS_CONF & co.: the machine's
#    /etc/containers is never written.
# 3. A Debian bookworm base with Python 3.11 built by debootstrap from the machine's own apt
#    mirror and imported as localhost/debian-python:3.11 (it stands in for python:3.11-slim-bookworm,
#    which cannot be pulled here). Reused when the machine still has it; built when it does not.
# 4. buildah bud --build-arg PYTHON_IMAGE=localhost/debian-python:3.11, with the host's CA bundle
#    lent to the build (pip goes through a TLS-intercepting proxy; nothing of it lands in the image).
# 5. pytest tests/image: --help, crd == crds/, validate on the examples, run against the emulator
#    until a GlobalEnvironment is Ready, SIGTERM and exit 0; read-only root, user 10001.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/apt.sh
. .ci/apt.sh
ROOT=$PWD
BASE_IMAGE=${BASE_IMAGE:-localhost/debian-python:3.11}
IMAGE=${IMAGE:-localhost/renku-env-operator:ci}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}

export CONTAINERS_CONF=$ROOT/.ci/containers/containers.conf
export CONTAINERS_STORAGE_CONF=$ROOT/.ci/containers/storage.conf
export CONTAINERS_REGISTRIES_CONF=$ROOT/.ci/containers/registries.conf

started=$(date +%s)
step_started=$started
step() {
    local now
    now=$(date +%s)
    printf '==> %s (previous step: %ss)\n' "$1" "$((now - step_started))"
    step_started=$now
}

step "container tools"
missing=()
for tool in buildah podman skopeo runc debootstrap newuidmap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing for: ${missing[*]}"
    apt_install buildah podman skopeo runc debootstrap uidmap
fi
podman --version
buildah --version

step "base image $BASE_IMAGE"
BASE_IMAGE=$BASE_IMAGE bash .ci/base-image.sh
podman image inspect --format 'base image size: {{.Size}} bytes' "$BASE_IMAGE"

step "build $IMAGE from the Dockerfile"
version=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
buildah bud --quiet --layers=false \
    --runtime runc \
    --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 \
    --volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" \
    --build-arg PYTHON_IMAGE="$BASE_IMAGE" \
    --build-arg VERSION="$version" \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --tag "$IMAGE" .
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $((size / 1000000)) MB ($size bytes; the base alone: $(podman image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes)"

step "run the image as a cluster would (tests/image)"
OPERATOR_IMAGE=$IMAGE "$ROOT/.venv/bin/pytest" -q -p no:cacheprovider tests/image

step "done"
echo "image steps took $(( $(date +%s) - started ))s in all"
