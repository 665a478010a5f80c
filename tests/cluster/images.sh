#!/usr/bin/env bash
# The e2e test images, built on the debootstrap base that `make image-test` uses
# (.ci/base-image.sh) and pushed to the cluster's registry (127.0.0.1:5000):
#   renku-e2e/pause:3.10            the pod sandbox (tests/cluster/pause, a static Go binary)
#   renku-e2e/python:3.11           the base itself: the smoke tests give it a command
#   renku-e2e/server:<semver>       serves its working directory on 0.0.0.0:8888 (passes)
#   renku-e2e/never-listens:1.0.0   runs, never opens a port
#   renku-e2e/exits:1.0.0           exits 1 at once
#   renku-e2e/localhost-only:1.0.0  serves on 127.0.0.1:8888 only (probes cannot reach it)
#   renku-e2e/hidden-files:1.0.0    a server that ships files under its mount directory
#   renku-env-operator:ci           the operator image, when `make image-test` built one
# Idempotent: an image already in the registry is pushed again (cheap: skopeo skips blobs).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
REGISTRY=${REGISTRY:-127.0.0.1:5000}
BASE_IMAGE=${BASE_IMAGE:-localhost/debian-python:3.11}
OPERATOR_IMAGE=${OPERATOR_IMAGE:-localhost/renku-env-operator:ci}
export CONTAINERS_CONF=$root/.ci/containers/containers.conf
export CONTAINERS_STORAGE_CONF=$root/.ci/containers/storage.conf
export CONTAINERS_REGISTRIES_CONF=$root/.ci/containers/registries.conf
export BUILDAH_ISOLATION=chroot

BASE_IMAGE=$BASE_IMAGE bash "$root/.ci/base-image.sh"

push() { # local-image registry-path
  skopeo copy --quiet --dest-tls-verify=false "containers-storage:$1" "docker://$REGISTRY/$2"
  echo "pushed $REGISTRY/$2"
}

# image NAME CMD-JSON [DIR-TO-COPY-INTO-/home/renku/work]
image() {
  local name=$1 cmd=$2 files=${3:-} c
  c=$(buildah from --quiet "$BASE_IMAGE")
  if [[ -n "$files" ]]; then buildah copy --quiet "$c" "$files" /home/renku/work >/dev/null; fi
  buildah config --workingdir /home/renku/work --port 8888 --cmd "$cmd" \
    --label org.opencontainers.image.source=renku-env-operator/tests/cluster "$c"
  buildah commit --quiet --rm "$c" "localhost/renku-e2e/$name" >/dev/null
}

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# pause: FROM scratch with one static binary.
(cd "$here/pause" && CGO_ENABLED=0 /usr/local/go/bin/go build -trimpath -ldflags '-s -w' -o "$work/pause" .)
c=$(buildah from --quiet scratch)
buildah copy --quiet "$c" "$work/pause" /pause >/dev/null
buildah config --entrypoint '["/pause"]' --user 65535:65535 "$c"
buildah commit --quiet --rm "$c" localhost/renku-e2e/pause >/dev/null
push localhost/renku-e2e/pause "renku-e2e/pause:$PAUSE_TAG"

push "$BASE_IMAGE" renku-e2e/python:3.11

mkdir -p "$work/empty" "$work/hidden/.config"
echo "shipped by the image" > "$work/hidden/README.md"
echo "export SHIPPED=1" > "$work/hidden/.bashrc"
echo "x = 1" > "$work/hidden/.config/settings.ini"

image server '["python3", "-m", "http.server", "8888", "--bind", "0.0.0.0"]' "$work/empty"
for tag in $SERVER_TAGS; do push localhost/renku-e2e/server "renku-e2e/server:$tag"; done
image never-listens '["sleep", "infinity"]' "$work/empty"
push localhost/renku-e2e/never-listens renku-e2e/never-listens:1.0.0
image exits '["sh", "-c", "echo this session exits at once >&2; exit 1"]' "$work/empty"
push localhost/renku-e2e/exits renku-e2e/exits:1.0.0
image localhost-only '["python3", "-m", "http.server", "8888", "--bind", "127.0.0.1"]' "$work/empty"
push localhost/renku-e2e/localhost-only renku-e2e/localhost-only:1.0.0
image hidden-files '["python3", "-m", "http.server", "8888", "--bind", "0.0.0.0"]' "$work/hidden"
push localhost/renku-e2e/hidden-files renku-e2e/hidden-files:1.0.0

if podman image exists "$OPERATOR_IMAGE"; then
  push "$OPERATOR_IMAGE" renku-env-operator:ci
else
  echo "no $OPERATOR_IMAGE (make image-test builds it): the in-cluster operator test will skip"
fi
