#!/usr/bin/env bash
# `make cluster`: a real single-node Kubernetes on this machine, without Docker and without
# systemd. Every daemon runs in the background with a pid file and a log under $STATE:
#   registry (docker-registry, 127.0.0.1:5000)  etcd (TLS, client certs)
#   kube-apiserver (127.0.0.1:6443, Node,RBAC)   kube-controller-manager  kube-scheduler
#   containerd (own socket and root; CRI, runc)  kubelet (10.250.0.1:10250, TLS, webhook authz)
#   kube-router (NetworkPolicy only: iptables + ipset; no routing, no service proxy)
# The pod network: a CNI bridge (10.244.0.0/24) in network namespaces containerd creates. Pods
# get routes to the pod subnet and to the Service subnet only (no default route, no masquerade,
# IP forwarding stays off): no pod traffic leaves the machine. No kube-proxy: the API server's
# Service IP (10.96.0.1:443) is DNAT'ed to 127.0.0.1:6443. No cluster DNS (see README).
#
# Idempotent: on a cluster that is up it says so and exits 0. Writes the admin kubeconfig to
# $STATE/kubeconfig (printed at the end). `make cluster-down` (down.sh) undoes all of it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

started=$(date +%s)
stage_started=$started
stage() {
  local now; now=$(date +%s)
  printf '==> %s (previous stage: %ss)\n' "$1" "$((now - stage_started))"
  stage_started=$now
}

if cluster_up; then
  echo "cluster already up (node $NODE_NAME Ready); KUBECONFIG=$KUBECONFIG_ADMIN"
  exit 0
fi
if any_running; then
  echo "a part of the cluster runs but it is not healthy: run 'make cluster-down' first" >&2
  exit 1
fi

stage "host packages"
need=()
for tool in containerd runc ctr iptables ipset conntrack docker-registry buildah skopeo podman \
  debootstrap openssl; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
[[ -d /usr/lib/cni && -x /usr/lib/cni/bridge ]] || need+=(cni)
if [[ ${#need[@]} -gt 0 ]]; then
  echo "installing for: ${need[*]}"
  # shellcheck source=../../.ci/apt.sh
  source "$ROOT/.ci/apt.sh"
  apt_install containerd runc containernetworking-plugins iptables ipset conntrack \
    docker-registry buildah skopeo podman debootstrap uidmap openssl iproute2
fi

stage "binaries (tests/cluster/build.sh)"
"$here/build.sh"

mkdir -p "$STATE"/{pki,logs,run,etcd,registry,kubelet,containerd,cni/net.d,cni/ipam} "$RUN"
chmod 700 "$STATE" "$STATE/pki"

stage "certificates"
"$here/pki.sh"

stage "registry"
cat > "$STATE/registry.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $STATE/registry}
  delete: {enabled: true}
http: {addr: $REGISTRY}
EOF
start_daemon registry docker-registry serve "$STATE/registry.yml"
wait_until "registry" 30 curl -fsS "http://$REGISTRY/v2/"

stage "test images (tests/cluster/images.sh)"
REGISTRY=$REGISTRY "$here/images.sh"

stage "host network"
setup_network

stage "etcd"
P=$STATE/pki
start_daemon etcd "$(bin etcd)" --name default --data-dir "$STATE/etcd" \
  --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
  --listen-peer-urls https://127.0.0.1:2380 --initial-advertise-peer-urls https://127.0.0.1:2380 \
  --initial-cluster default=https://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
  --cert-file "$P/etcd.crt" --key-file "$P/etcd.key" --client-cert-auth --trusted-ca-file "$P/ca.crt" \
  --peer-cert-file "$P/etcd.crt" --peer-key-file "$P/etcd.key" --peer-client-cert-auth \
  --peer-trusted-ca-file "$P/ca.crt" --log-level warn
wait_until "etcd" 30 curl -fsS http://127.0.0.1:2381/health

stage "kube-apiserver"
start_daemon kube-apiserver "$(bin kube-apiserver)" \
  --etcd-servers https://127.0.0.1:2379 --etcd-cafile "$P/ca.crt" \
  --etcd-certfile "$P/apiserver-etcd-client.crt" --etcd-keyfile "$P/apiserver-etcd-client.key" \
  --bind-address 127.0.0.1 --secure-port 6443 --advertise-address "$NODE_IP" \
  --tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" \
  --client-ca-file "$P/ca.crt" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --kubelet-client-certificate "$P/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$P/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$P/ca.crt" --kubelet-preferred-address-types InternalIP \
  --requestheader-client-ca-file "$P/ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$P/front-proxy-client.crt" --proxy-client-key-file "$P/front-proxy-client.key" \
  --allow-privileged=true --profiling=false --v 1
wait_until "kube-apiserver /readyz" 120 kubectl get --raw /readyz

stage "kube-controller-manager, kube-scheduler"
start_daemon kube-controller-manager "$(bin kube-controller-manager)" \
  --kubeconfig "$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10257 \
  --service-account-private-key-file "$P/sa.key" --root-ca-file "$P/ca.crt" \
  --cluster-signing-cert-file "$P/ca.crt" --cluster-signing-key-file "$P/ca.key" \
  --use-service-account-credentials --controllers '*,bootstrapsigner,tokencleaner' \
  --allocate-node-cidrs --cluster-cidr "$CLUSTER_CIDR" --node-cidr-mask-size 24 \
  --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false --v 1
start_daemon kube-scheduler "$(bin kube-scheduler)" \
  --kubeconfig "$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10259 --profiling=false --v 1

stage "containerd"
write_containerd_config
start_daemon containerd containerd --config "$STATE/containerd/config.toml"
wait_until "containerd" 30 ctr --address "$CONTAINERD_SOCK" version

stage "kubelet"
write_kubelet_config
start_daemon kubelet "$(bin kubelet)" --config "$STATE/kubelet/config.yaml" \
  --kubeconfig "$STATE/kubelet.kubeconfig" --hostname-override "$NODE_NAME" \
  --node-ip "$NODE_IP" --root-dir "$STATE/kubelet" --v 1
wait_until "node $NODE_NAME registered" 60 kubectl get node "$NODE_NAME"

stage "kube-router (NetworkPolicy)"
kubectl apply -f "$here/kube-router-rbac.yaml" >/dev/null
has_pod_cidr() { [[ -n "$(kubectl get node "$NODE_NAME" -o jsonpath='{.spec.podCIDR}')" ]]; }
wait_until "node podCIDR" 60 has_pod_cidr
start_daemon kube-router "$(bin kube-router)" --kubeconfig "$STATE/kube-router.kubeconfig" \
  --hostname-override "$NODE_NAME" --run-router=false --run-service-proxy=false \
  --run-firewall=true --service-cluster-ip-range "$SERVICE_CIDR" --metrics-port 0 \
  --health-port 20244 --v 1
wait_until "kube-router healthy" 60 curl -fsS http://127.0.0.1:20244/healthz

stage "node Ready"
node_ready() {
  kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}
wait_until "node $NODE_NAME Ready" 120 node_ready
wait_until "default ServiceAccount" 60 kubectl -n default get serviceaccount default

stage "up"
echo "cluster up in $(( $(date +%s) - started ))s: Kubernetes $KUBERNETES_VERSION, node $NODE_NAME"
echo "KUBECONFIG=$KUBECONFIG_ADMIN"
