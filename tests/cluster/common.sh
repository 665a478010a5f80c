# Sourced by up.sh, down.sh and pki.sh: the cluster's names, addresses and helpers.
# shellcheck shell=bash
here="${here:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
ROOT="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

STATE=${RENKU_E2E_STATE:-/var/lib/renku-env-e2e}
RUN=/run/renku-env-e2e
CACHE=${RENKU_E2E_CACHE:-/var/cache/renku-env-e2e}
KUBECONFIG_ADMIN=$STATE/kubeconfig
NODE_NAME=renku-e2e-node
# The node's address, on loopback (this kernel has no dummy links): the kubelet listens there
# only, and pods have no route to it.
NODE_IP=10.250.0.1
BRIDGE=renkue2e0
CLUSTER_CIDR=10.244.0.0/16
POD_CIDR=10.244.0.0/24 # the controller-manager gives the first /24 to the only node
POD_GATEWAY=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
REGISTRY=127.0.0.1:5000
CONTAINERD_SOCK=$RUN/containerd.sock
# Stopped in this order by down.sh (the reverse of up.sh).
DAEMONS=(kube-router kubelet containerd kube-scheduler kube-controller-manager kube-apiserver etcd registry)

bin() { # the cached binary of a component
  local version=$KUBERNETES_VERSION
  case "$1" in etcd) version=$ETCD_VERSION ;; kube-router) version=$KUBE_ROUTER_VERSION ;; esac
  echo "$CACHE/$1-$version/$1"
}

kubectl() { "$(bin kubectl)" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

pid_of() { # the pid of a daemon we started, if it still runs
  local f="$STATE/run/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

any_running() {
  local d
  for d in "${DAEMONS[@]}"; do pid_of "$d" >/dev/null && return 0; done
  return 1
}

cluster_up() {
  local d
  for d in "${DAEMONS[@]}"; do pid_of "$d" >/dev/null || return 1; done
  [[ -f "$KUBECONFIG_ADMIN" ]] || return 1
  kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' \
    2>/dev/null | grep -qx True
}

start_daemon() { # name command... : in the background, its own session, log and pid file
  local name=$1; shift
  if pid_of "$name" >/dev/null; then echo "$name already runs"; return 0; fi
  setsid "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/run/$name.pid"
  echo "$name started (pid $!, log $STATE/logs/$name.log)"
}

wait_until() { # what seconds command... : polls once a second
  local what=$1 seconds=$2 i; shift 2
  for ((i = 0; i < seconds; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "timed out after ${seconds}s waiting for $what; the logs are in $STATE/logs" >&2
  for f in "$STATE"/logs/*.log; do echo "--- $f"; tail -5 "$f"; done >&2
  return 1
}

setup_network() {
  # The node's own address.
  ip addr replace "$NODE_IP/32" dev lo
  # The pod bridge exists before the first pod, so the sysctls below can be set on it.
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr replace "$POD_GATEWAY/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Pods reach 127.0.0.1:6443 through the DNAT below only if the bridge routes to loopback.
  sysctl -qw "net.ipv4.conf.$BRIDGE.route_localnet=1"
  # Bridged pod-to-pod traffic must pass iptables, or NetworkPolicy could not see it.
  modprobe br_netfilter 2>/dev/null || true
  sysctl -qw net.bridge.bridge-nf-call-iptables=1
  iptables -t nat -N RENKU-E2E-DNAT 2>/dev/null || iptables -t nat -F RENKU-E2E-DNAT
  iptables -t nat -A RENKU-E2E-DNAT -d "$API_SERVICE_IP/32" -p tcp --dport 443 \
    -j DNAT --to-destination 127.0.0.1:6443
  iptables -t nat -C PREROUTING -j RENKU-E2E-DNAT 2>/dev/null ||
    iptables -t nat -I PREROUTING -j RENKU-E2E-DNAT
  # Whatever the host's ip_forward says: nothing from the pod bridge is routed elsewhere.
  iptables -N RENKU-E2E-FORWARD 2>/dev/null || iptables -F RENKU-E2E-FORWARD
  iptables -A RENKU-E2E-FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -j DROP
  iptables -A RENKU-E2E-FORWARD -o "$BRIDGE" ! -i "$BRIDGE" -j DROP
  iptables -C FORWARD -j RENKU-E2E-FORWARD 2>/dev/null || iptables -I FORWARD -j RENKU-E2E-FORWARD
  cat >"$STATE/cni/net.d/10-renku-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "renku-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "$SERVICE_CIDR"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

teardown_network() {
  iptables -t nat -D PREROUTING -j RENKU-E2E-DNAT 2>/dev/null || true
  iptables -t nat -F RENKU-E2E-DNAT 2>/dev/null || true
  iptables -t nat -X RENKU-E2E-DNAT 2>/dev/null || true
  iptables -D FORWARD -j RENKU-E2E-FORWARD 2>/dev/null || true
  iptables -F RENKU-E2E-FORWARD 2>/dev/null || true
  iptables -X RENKU-E2E-FORWARD 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  ip addr del "$NODE_IP/32" dev lo 2>/dev/null || true
}

write_containerd_config() {
  mkdir -p "$STATE/containerd/certs.d/$REGISTRY"
  cat >"$STATE/containerd/certs.d/$REGISTRY/hosts.toml" <<EOF
server = "http://$REGISTRY"
[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
EOF
  cat >"$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$RUN/containerd"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[debug]
  address = "$RUN/containerd-debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REGISTRY/renku-e2e/pause:$PAUSE_TAG"
  # No CAP_SYS_RESOURCE here: runc cannot lower oom_score_adj to the kubelet's -998.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$STATE/containerd/certs.d"
EOF
}

write_kubelet_config() {
  local P=$STATE/pki
  cat >"$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $P/kubelet.crt
tlsPrivateKeyFile: $P/kubelet.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
# The host is cgroup v1 (hybrid); 1.35+ refuses it unless told.
failCgroupV1: false
protectKernelDefaults: false
failSwapOn: false
# No cluster DNS: pods get the host's resolver list, which they cannot reach (no default route).
resolvConf: /etc/resolv.conf
serializeImagePulls: false
# A shared build machine: never evict the suite's pods for the disk other jobs fill.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
maxPods: 60
EOF
}
