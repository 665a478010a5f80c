#!/usr/bin/env bash
# Builds the e2e cluster's binaries from the Go module proxy, cached by version:
#   /var/cache/renku-env-e2e/<component>-<version>/<component>   (reused when present).
# Usage: build.sh [component...]   (default: all). Prints each build's duration.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
export PATH="/usr/local/go/bin:$PATH"
# Go 1.27 turns on GOEXPERIMENT=jsonv2, with which kube-openapi serves /openapi/v2 as 503.
export GOEXPERIMENT="${GOEXPERIMENT:-nojsonv2}"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath"
cache="${RENKU_E2E_CACHE:-/var/cache/renku-env-e2e}"

k8s_ldflags() {
  local v="$KUBERNETES_VERSION" minor
  minor="$(echo "$v" | cut -d. -f2)"
  local f=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    f+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "-s -w$f"
}

build_one() {
  local c="$1" version pkg dir start
  case "$c" in
    etcd) version="$ETCD_VERSION"; pkg=go.etcd.io/etcd/server/v3; dir="$here/etcd" ;;
    # NetworkPolicy on the node: kube-router's firewall alone (iptables + ipset). The kernel here
    # has no nft `queue` (CONFIG_NFT_QUEUE), which kube-network-policies needs.
    kube-router) version="$KUBE_ROUTER_VERSION"; pkg=github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
      dir="$here/kube-router" ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kubectl)
      version="$KUBERNETES_VERSION"; pkg="k8s.io/kubernetes/cmd/$c"; dir="$here/k8s" ;;
    *) echo "build.sh: unknown component $c" >&2; return 2 ;;
  esac
  local out="$cache/$c-$version"
  if [[ -x "$out/$c" ]]; then echo "build: $c $version cached ($out)"; return 0; fi
  mkdir -p "$out"
  start=$(date +%s)
  local ldflags="-s -w"
  [[ "$c" == etcd ]] || ldflags="$(k8s_ldflags)"
  (cd "$dir" && nice -n 19 go build -ldflags "$ldflags" -o "$out/$c.tmp" "$pkg")
  mv "$out/$c.tmp" "$out/$c"
  echo "build: $c $version took $(( $(date +%s) - start ))s"
}

components=("$@")
[[ ${#components[@]} -gt 0 ]] || components=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd kube-router)
for c in "${components[@]}"; do build_one "$c"; done
