#!/usr/bin/env bash
# `make cluster-down`: stops what up.sh started and removes what it added to the host: the pod
# containers and their network namespaces, kubelet's mounts, kube-router's iptables rules and
# ipsets, our own iptables chains, the bridge and the node address on lo. The state dir
# ($STATE: etcd data, certificates, registry, logs) goes too unless KEEP_STATE=1. The cached
# binaries (/var/cache/renku-env-e2e) stay. Safe to run when nothing is up.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

stop() { # name: SIGTERM, then SIGKILL after 15 s; only the pid we recorded
  local name=$1 pid i
  pid=$(pid_of "$name") || { rm -f "$STATE/run/$name.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$STATE/run/$name.pid"
  echo "stopped $name (pid $pid)"
}

stop kube-router
# kube-router's own --cleanup-config leaves its filter rules (v2.1.0, iptables-nft) and then
# crashes in its IPVS part; the kubelet leaves KUBE-FIREWALL and its canaries. Remove the jumps
# to those chains, then the chains (only KUBE-* names: nothing else on the host is touched).
OURS='^KUBE-(ROUTER|POD-FW|NWPLCY|SRC|DST|FIREWALL|KUBELET-CANARY|IPTABLES-HINT)'
cleanup_kube_chains() {
  local table chain rule set
  for table in filter nat mangle; do
    for chain in INPUT FORWARD OUTPUT PREROUTING POSTROUTING; do
      iptables -t "$table" -S "$chain" 2>/dev/null | awk -v re="$OURS" '$0 ~ "-j " && $NF ~ re' |
        sed 's/^-A //' | while read -r rule; do eval "iptables -t $table -D $rule" || true; done ||
        true # a table without this chain
    done
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk -v re="$OURS" '$1 == "-N" && $2 ~ re { print $2 }'); do
      iptables -t "$table" -F "$chain" || true
    done
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk -v re="$OURS" '$1 == "-N" && $2 ~ re { print $2 }'); do
      iptables -t "$table" -X "$chain" || true
    done
  done
  for set in $(ipset list -n 2>/dev/null | grep -E '^(KUBE-|kube-router)' || true); do
    ipset destroy "$set" 2>/dev/null || true
  done
}
stop kubelet
cleanup_kube_chains

# The pods' containers: their netns paths first (from the sandboxes' specs), then kill and
# delete through our containerd (never another containerd on the machine).
netns=()
if [[ -S "$CONTAINERD_SOCK" ]] && pid_of containerd >/dev/null; then
  ctr_() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }
  for id in $(ctr_ containers ls -q 2>/dev/null); do
    path=$(ctr_ containers info "$id" 2>/dev/null | python3 -c '
import json, sys
spec = json.load(sys.stdin).get("Spec") or {}
for ns in (spec.get("linux") or {}).get("namespaces") or []:
    if ns.get("type") == "network" and ns.get("path"):
        print(ns["path"])' 2>/dev/null || true)
    [[ -n "$path" ]] && netns+=("$path")
    ctr_ tasks kill --signal SIGKILL "$id" >/dev/null 2>&1 || true
  done
  sleep 1
  for id in $(ctr_ containers ls -q 2>/dev/null); do
    ctr_ tasks delete --force "$id" >/dev/null 2>&1 || true
    ctr_ containers delete "$id" >/dev/null 2>&1 || true
  done
fi
stop containerd
# Shims of our containerd that outlived it (their -address names our socket).
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" || true); do
  kill -KILL "$pid" 2>/dev/null || true
done
for path in $(printf '%s\n' "${netns[@]}" | sort -u); do
  umount "$path" 2>/dev/null || true
  rm -f "$path"
done

stop kube-scheduler
stop kube-controller-manager
stop kube-apiserver
stop etcd
stop registry

# kubelet's and containerd's mounts (volumes, overlay snapshots, shm), deepest first.
for base in "$STATE" "$RUN"; do
  awk -v base="$base" '$2 == base || index($2, base "/") == 1 { print $2 }' /proc/mounts |
    sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
done

teardown_network
rm -rf "$RUN"
if [[ "${KEEP_STATE:-0}" != 1 ]]; then
  rm -rf --one-file-system "$STATE"
  echo "removed $STATE"
fi
echo "cluster down"
