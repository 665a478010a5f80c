"""The Helm chart, rendered by the real helm binary for realistic value sets.

Every rendered object is checked against Kubernetes' own schemas (kubernetes-validate), the RBAC
is evaluated as the API server would (who may do what, where), and the operator's environment
is loaded into the real Settings class.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from renku_env_operator.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "renku-env-operator"
RELEASE, NAMESPACE, KUBE_VERSION = "genv", "renku", "1.35.0"
SMOKE = f"{NAMESPACE}-smoke"  # the default smoke namespace
FULLNAME = f"{RELEASE}-renku-env-operator"
# Kinds kubernetes-validate has no schema for: kopf's peering objects and the Prometheus
# Operator's ServiceMonitor (checked by hand below).
NOT_BUILTIN = {"KopfPeering", "ClusterKopfPeering", "ServiceMonitor"}
URL = "https://renku.example.org/api/data"


def find_helms() -> dict[str, str]:
    """The helm binaries to test with, by major version: `helm4` and `helm3` when both exist."""
    candidates = [
        os.environ.get("HELM"),
        os.environ.get("HELM3"),
        str(ROOT / ".tools" / "bin" / "helm"),
        str(ROOT / ".tools" / "bin" / "helm3"),
        shutil.which("helm"),
    ]
    found: dict[str, str] = {}
    for candidate in candidates:
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        version = subprocess.run(
            [candidate, "version", "--short"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if version[:2] in {"v3", "v4"}:
            found.setdefault(f"helm{version[1]}", candidate)
    return found


HELMS = find_helms()
pytestmark = [
    pytest.mark.helm,
    pytest.mark.skipif(not HELMS, reason="no helm binary: set HELM or run .ci/install-tools.sh"),
]
# The binary of the running test (the autouse fixture below runs every test with each).
CURRENT: list[str] = []


@pytest.fixture(autouse=True, params=sorted(HELMS))
def helm_binary(request: pytest.FixtureRequest) -> Iterator[str]:
    CURRENT[:] = [HELMS[request.param]]
    yield request.param
    CURRENT.clear()


def test_the_chart_is_tested_with_helm_3_and_helm_4() -> None:
    assert set(HELMS) == {"helm3", "helm4"}, f"found only {HELMS}: run .ci/install-tools.sh"


# Realistic values files, as an admin would write them.
VALUE_SETS: dict[str, dict[str, Any]] = yaml.safe_load(f"""
default: {{}}
cluster-wide:
  rbac: {{clusterWide: true, readNodes: true}}
ha:
  ha: {{enabled: true, replicas: 3}}
  watchNamespaces: [team-a, team-b]
ha-cluster-wide:
  ha: {{enabled: true}}
  rbac: {{clusterWide: true}}
existing-secret:
  renku: {{url: {URL}, credentials: {{existingSecret: renku-admin}}}}
keycloak-client:
  renku:
    url: {URL}
    credentials:
      create:
        enabled: true
        clientId: renku-env-operator
        clientSecret: s3cret
        tokenUrl: https://renku.example.org/auth/realms/Renku/protocol/openid-connect/token
static-token:
  renku: {{credentials: {{create: {{enabled: true, token: t0ken}}}}}}
service-monitor:
  metrics: {{serviceMonitor: {{enabled: true, labels: {{release: kps}}}}}}
several-namespaces:
  watchNamespaces: [team-a, team-b, team-c]
custom-smoke:
  smoke:
    namespace: sandbox
    timeoutSeconds: 600
    maxConcurrent: 4
    resources: {{requests: {{cpu: 1, memory: 1Gi}}, limits: {{cpu: 4, memory: 8Gi}}}}
    nodeSelector: {{nvidia.com/gpu.present: "true"}}
    tolerations: [{{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}]
  imageChecks: {{tagPolicy: Error, nodeArchitectures: [amd64, arm64]}}
production:
  renku: {{url: {URL}, credentials: {{existingSecret: renku-admin}}}}
  image: {{tag: 0.1.0, digest: "sha256:{"ab" * 32}", pullPolicy: Always}}
  imagePullSecrets: [{{name: ghcr}}]
  logFormat: json
  metrics: {{port: 9100}}
  crds: {{keep: false}}
  extraEnv: [{{name: RENKU_ENV_OPERATOR_DRIFT_INTERVAL_SECONDS, value: "600"}}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms: [{{matchExpressions: [{{key: node-role, operator: In, values: [system]}}]}}]
  podAnnotations: {{example.org/team: platform}}
no-crds-no-metrics:
  crds: {{install: false}}
  metrics: {{port: 0}}
default-with-cluster-cidrs:
  cluster: {{cidrs: [10.96.0.0/12, 10.244.0.0/16, "fd00:10::/56"]}}
  smoke: {{networkPolicy: {{apiServerCIDRs: [0.0.0.0/0, "::/0"]}}}}
smoke-fences-off:
  smoke:
    namespace: sandbox
    createNamespace: false
    networkPolicy: {{enabled: false}}
    resourceQuota: {{enabled: false}}
    limitRange: {{enabled: false}}
hardened:
  renku: {{url: {URL}, credentials: {{existingSecret: renku-admin}}, imageCheck: Error}}
  security: {{trustedNamespaces: [renku, platform]}}
  ownership: {{claimGcIntervalSeconds: 600}}
  registry:
    internalAllowlist: ["mirror.internal:5000", 10.1.0.0/16]
    checkDeadlineSeconds: 30
    cacheEntries: 128
    cacheMiB: 4
    readBudgetMiB: 16
  cluster: {{cidrs: [10.96.0.0/12, 10.244.0.0/16, "fd00:10::/56"]}}
  smoke:
    resources:
      requests: {{cpu: 100m, memory: 256Mi}}
      limits: {{cpu: 1, memory: 2Gi}}
      ephemeralStorageRequest: 200Mi
      ephemeralStorageLimit: 2Gi
    networkPolicy:
      apiServerCIDRs: [172.18.0.2/32]
      extraEgress:
        - to: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: kube-system}}}}}}]
          ports: [{{port: 53, protocol: UDP}}]
    resourceQuota: {{hard: {{pods: "10", limits.memory: 20Gi}}}}
    limitRange: {{max: {{cpu: "2", memory: 4Gi}}}}
  priorityClassName: system-cluster-critical
  networkPolicy:
    enabled: true
    metricsFrom: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: monitoring}}}}}}]
    apiServer: {{cidrs: [172.18.0.2/32, 172.18.0.3/32], ports: [6443]}}
    renku: {{peers: [{{podSelector: {{matchLabels: {{app.kubernetes.io/name: data-service}}}}}}]}}
    registries: {{cidrs: [0.0.0.0/0, "::/0", 192.0.2.0/24]}}
openshift:
  # null removes a default key (Helm merges maps).
  podSecurityContext: {{runAsUser: null, runAsGroup: null, fsGroup: null}}
  securityContext: {{runAsUser: null, runAsGroup: null, seccompProfile: null}}
""")
# The values of the example Argo CD Application must install too.
_APPLICATION = yaml.safe_load((ROOT / "examples" / "argocd-application.yaml").read_text())
VALUE_SETS["argocd-example"] = _APPLICATION["spec"]["sources"][0]["helm"]["valuesObject"]


# The chart requires the API server's addresses for the smoke NetworkPolicy: every value set
# below gets these, unless it sets its own.
API_SERVER = "172.18.0.2/32"
BASE: dict[str, Any] = {"smoke": {"networkPolicy": {"apiServerCIDRs": [API_SERVER]}}}


def merged(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """`values` over `base`, maps merged key by key (as Helm merges values files)."""
    out = dict(base)
    for key, value in values.items():
        below = out.get(key)
        both = isinstance(below, dict) and isinstance(value, dict)
        out[key] = merged(below, value) if both else value  # type: ignore[arg-type]
    return out


def helm(
    *args: str, values: dict[str, Any] | None = None, base: dict[str, Any] = BASE
) -> subprocess.CompletedProcess[str]:
    (binary,) = CURRENT
    command = [binary, *args, "--values", "-"] if values is not None else [binary, *args]
    return subprocess.run(
        command,
        input=json.dumps(merged(base, values or {})),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def render(name: str) -> tuple[dict[str, Any], ...]:
    """The manifests of VALUE_SETS[name], CRDs from crds/ included (as ArgoCD renders them)."""
    (binary,) = CURRENT
    return _render(binary, name)


@functools.cache
def _render(binary: str, name: str) -> tuple[dict[str, Any], ...]:
    options = ["--namespace", NAMESPACE, "--include-crds", "--kube-version", KUBE_VERSION]
    result = helm("template", RELEASE, str(CHART), *options, values=VALUE_SETS[name])
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def deployment(name: str) -> dict[str, Any]:
    (found,) = of_kind(render(name), "Deployment")
    return found


def container_env(name: str) -> dict[str, dict[str, Any]]:
    (container,) = deployment(name)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


@dataclass(frozen=True)
class Grant:
    """One rule, and where it applies (None: every namespace and cluster-scoped resources)."""

    namespace: str | None
    rule: dict[str, Any]


def grants(docs: tuple[dict[str, Any], ...]) -> list[Grant]:
    """The rules bound to the operator's ServiceAccount, as the RBAC authorizer sees them."""
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
        for d in docs
        if d["kind"] in {"Role", "ClusterRole"}
    }
    found = []
    for binding in docs:
        if binding["kind"] not in {"RoleBinding", "ClusterRoleBinding"}:
            continue
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
        ]
        scope = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        role = roles[(ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"])]
        found += [Grant(scope, rule) for rule in role["rules"]]
    return found


def allowed(
    name: str,
    verb: str,
    resource: str,
    group: str = "",
    namespace: str | None = None,
    object_name: str | None = None,
) -> bool:
    for grant in grants(render(name)):
        rule = grant.rule
        if grant.namespace is not None and grant.namespace != namespace:
            continue
        names = rule.get("resourceNames")
        if (
            group in rule["apiGroups"]
            and resource in rule["resources"]
            and verb in rule["verbs"]
            and (not names or object_name in names)
        ):
            return True
    return False


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_passes(name: str, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(VALUE_SETS[name]))
    result = helm("lint", "--strict", str(CHART), "--values", str(values))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_manifest_is_valid_for_kubernetes(name: str) -> None:
    for doc in render(name):
        if doc["kind"] not in NOT_BUILTIN:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rbac_has_no_wildcards_and_reads_secrets_by_name_only(name: str) -> None:
    rules = [g.rule for g in grants(render(name))]
    assert rules
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
        assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["get"], rule
            assert rule["resourceNames"], rule


@pytest.mark.parametrize("name", VALUE_SETS)
def test_cluster_wide_rules_only_when_asked_for(name: str) -> None:
    rbac = VALUE_SETS[name].get("rbac", {})
    cluster_roles = of_kind(render(name), "ClusterRole")
    assert bool(cluster_roles) == bool(rbac.get("clusterWide") or rbac.get("readNodes"))
    can_list_nodes = allowed(name, "list", "nodes")
    assert can_list_nodes == bool(rbac.get("readNodes"))
    if can_list_nodes:
        assert not allowed(name, "watch", "nodes")
        assert not allowed(name, "patch", "nodes")


def test_default_permissions_are_the_release_namespace_only() -> None:
    ns, other = NAMESPACE, "elsewhere"
    for verb in ("get", "list", "watch", "patch"):
        assert allowed("default", verb, "globalenvironments", "renku.io", ns)
        assert not allowed("default", verb, "globalenvironments", "renku.io", other)
    # The operator only patches (kopf's finalizer, the owner's merge patches): no update, delete.
    for verb in ("update", "delete", "create"):
        assert not allowed("default", verb, "globalenvironments", "renku.io", ns)
        assert not allowed("default", verb, "globalenvironments/status", "renku.io", ns)
    assert allowed("default", "patch", "globalenvironments/status", "renku.io", ns)
    assert allowed("default", "create", "events", "", ns)
    assert allowed("default", "create", "events", "events.k8s.io", ns)
    # Pods only in the smoke namespace; patch: the verdict is stamped on a smoke pod's labels.
    for verb in ("get", "list", "watch", "create", "patch", "delete"):
        assert allowed("default", verb, "pods", "", SMOKE)
        assert not allowed("default", verb, "pods", "", ns)
        assert not allowed("default", verb, "pods", "", other)
    assert not allowed("default", "update", "pods", "", SMOKE)
    for sub in ("pods/log", "pods/proxy"):
        assert allowed("default", "get", sub, "", SMOKE)
        assert not allowed("default", "get", sub, "", ns)
    assert not allowed("default", "create", "pods/exec", "", SMOKE)
    assert allowed("default", "list", "events", "", SMOKE)
    assert not allowed("default", "get", "secrets", "", ns, "renku-admin")
    assert not allowed("default", "list", "customresourcedefinitions", "apiextensions.k8s.io")
    assert not allowed("default", "list", "namespaces")


CLAIM_VERBS = ("get", "list", "create", "patch", "delete")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_claims_are_written_in_the_release_namespace_only(name: str) -> None:
    # The ownership records: in the operator's own namespace, in every mode (cluster-wide too).
    claims = "globalenvironmentclaims"
    for verb in CLAIM_VERBS:
        assert allowed(name, verb, claims, "renku.io", NAMESPACE), verb
        for elsewhere in (SMOKE, "team-a", "sandbox", "elsewhere", None):
            assert not allowed(name, verb, claims, "renku.io", elsewhere), (verb, elsewhere)
    # Nothing it does not use: no watch, no update (patches carry a resourceVersion).
    for verb in ("watch", "update", "deletecollection"):
        assert not allowed(name, verb, claims, "renku.io", NAMESPACE), verb
    assert not allowed(name, "patch", f"{claims}/status", "renku.io", NAMESPACE)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_nothing_in_the_chart_lets_anyone_else_write_claims(name: str) -> None:
    docs = render(name)
    # grants() asserts that every binding's only subject is the operator's ServiceAccount.
    assert grants(docs)
    for role in of_kind(docs, "Role") + of_kind(docs, "ClusterRole"):
        labels = role["metadata"].get("labels", {})
        # No aggregation into admin/edit/view (it would hand these rules to namespace users).
        assert "aggregationRule" not in role, role["metadata"]["name"]
        assert not [k for k in labels if "aggregate-to" in k], role["metadata"]["name"]
        for rule in role["rules"]:
            if any(r.startswith("globalenvironmentclaims") for r in rule["resources"]):
                assert role["kind"] == "Role", role["metadata"]["name"]
                assert role["metadata"]["name"] == f"{FULLNAME}-claims"
                assert role["metadata"]["namespace"] == NAMESPACE


def templated(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifests `helm template` renders with `values` (over BASE)."""
    options = ["--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    result = helm("template", RELEASE, str(CHART), *options, values=values)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_rbac_create_false_renders_no_rbac() -> None:
    kinds = {d["kind"] for d in templated({"rbac": {"create": False}})}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def test_the_credentials_secret_and_nothing_else() -> None:
    assert allowed("existing-secret", "get", "secrets", "", NAMESPACE, "renku-admin")
    assert not allowed("existing-secret", "get", "secrets", "", NAMESPACE, "other")
    assert not allowed("existing-secret", "list", "secrets", "", NAMESPACE)
    secret_name = f"{FULLNAME}-renku-credentials"
    assert allowed("keycloak-client", "get", "secrets", "", NAMESPACE, secret_name)


def test_watched_namespaces_each_get_a_role() -> None:
    for ns in ("team-a", "team-b", "team-c"):
        assert allowed("several-namespaces", "watch", "globalenvironments", "renku.io", ns)
    assert not allowed("several-namespaces", "watch", "globalenvironments", "renku.io", NAMESPACE)
    # Smoke pods run in the smoke namespace, never in a watched one.
    assert allowed("several-namespaces", "create", "pods", "", SMOKE)
    assert not allowed("several-namespaces", "create", "pods", "", "team-a")


def test_smoke_pods_live_in_their_own_namespace() -> None:
    assert allowed("custom-smoke", "create", "pods", "", "sandbox")
    assert allowed("custom-smoke", "watch", "events", "", "sandbox")
    assert not allowed("custom-smoke", "create", "pods", "", NAMESPACE)
    assert not allowed("custom-smoke", "create", "pods", "", SMOKE)
    assert container_env("custom-smoke")["RENKU_ENV_OPERATOR_SMOKE_NAMESPACE"]["value"] == "sandbox"


@pytest.mark.parametrize("name", VALUE_SETS)
def test_no_pod_rights_in_renkus_own_namespace(name: str) -> None:
    for verb in ("get", "list", "watch", "create", "patch", "delete"):
        assert not allowed(name, verb, "pods", "", NAMESPACE)
    for sub in ("pods/log", "pods/proxy", "pods/exec"):
        assert not allowed(name, "get", sub, "", NAMESPACE)
        assert not allowed(name, "create", sub, "", NAMESPACE)


def smoke_objects(name: str, kind: str) -> list[dict[str, Any]]:
    return [d for d in of_kind(render(name), kind) if d["metadata"].get("namespace") == SMOKE]


def test_default_smoke_namespace_is_created_and_fenced() -> None:
    docs = render("default")
    (namespace,) = of_kind(docs, "Namespace")
    assert namespace["metadata"]["name"] == SMOKE
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert container_env("default")["RENKU_ENV_OPERATOR_SMOKE_NAMESPACE"]["value"] == SMOKE
    assert allowed("default", "create", "pods", "", SMOKE)

    (policy,) = smoke_objects("default", "NetworkPolicy")
    spec = policy["spec"]
    assert spec["podSelector"] == {}, "every pod of the namespace"
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    # Default-deny egress: not the metadata endpoint, not Renku, not DNS.
    assert spec["egress"] == []
    # Ingress: the API server's pod proxy, from the API server's addresses only.
    (rule,) = spec["ingress"]
    assert "ports" not in rule, "each environment chooses its session port"
    assert rule["from"] == [{"ipBlock": {"cidr": API_SERVER}}]

    (quota,) = smoke_objects("default", "ResourceQuota")
    hard = quota["spec"]["hard"]
    assert hard["pods"] == "4", "2 x smoke.maxConcurrent"
    assert hard["limits.memory"] == "8Gi"
    assert hard["limits.ephemeral-storage"] == "8Gi"
    assert hard["services"] == "0"
    assert hard["persistentvolumeclaims"] == "0"

    (limit_range,) = smoke_objects("default", "LimitRange")
    (limits,) = limit_range["spec"]["limits"]
    assert limits["type"] == "Container"
    # Every resource the quota caps has a default, so that no pod is refused for lacking one.
    for resource in ("cpu", "memory", "ephemeral-storage"):
        assert resource in limits["default"]
        assert resource in limits["defaultRequest"]
    assert limits["max"] == {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "1Gi"}
    assert limits["defaultRequest"]["ephemeral-storage"] == "100Mi"
    # The chart repeats the operator's ephemeral-storage defaults there: they must not drift.
    fields = Settings.model_fields
    assert limits["max"]["ephemeral-storage"] == fields["smoke_ephemeral_storage_limit"].default
    assert (
        limits["defaultRequest"]["ephemeral-storage"]
        == fields["smoke_ephemeral_storage_request"].default
    )


def test_smoke_fences_follow_their_values() -> None:
    (policy,) = smoke_objects("hardened", "NetworkPolicy")
    assert policy["spec"]["ingress"] == [{"from": [{"ipBlock": {"cidr": "172.18.0.2/32"}}]}]
    (egress,) = policy["spec"]["egress"]
    assert egress["ports"] == [{"port": 53, "protocol": "UDP"}]
    (quota,) = smoke_objects("hardened", "ResourceQuota")
    assert quota["spec"]["hard"]["pods"] == "10"
    assert quota["spec"]["hard"]["limits.memory"] == "20Gi"
    (limit_range,) = smoke_objects("hardened", "LimitRange")
    (limits,) = limit_range["spec"]["limits"]
    assert limits["max"] == {"cpu": "2", "memory": "4Gi"}
    assert limits["default"]["ephemeral-storage"] == "2Gi"
    assert limits["defaultRequest"]["ephemeral-storage"] == "200Mi"

    # Any address, chosen explicitly: still not the cluster's own ranges.
    docs = render("default-with-cluster-cidrs")
    (policy,) = [d for d in of_kind(docs, "NetworkPolicy") if d["metadata"]["namespace"] == SMOKE]
    assert policy["spec"]["ingress"][0]["from"] == [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.96.0.0/12", "10.244.0.0/16"]}},
        {"ipBlock": {"cidr": "::/0", "except": ["fd00:10::/56"]}},
    ]


def test_smoke_fences_can_be_switched_off_for_an_existing_namespace() -> None:
    docs = render("smoke-fences-off")
    for kind in ("Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange"):
        # The operator's own NetworkPolicy (in the release namespace) stays.
        outside = [d for d in of_kind(docs, kind) if d["metadata"].get("namespace") != NAMESPACE]
        assert not outside, kind
    assert allowed("smoke-fences-off", "create", "pods", "", "sandbox")


def test_cluster_wide_watches_everywhere() -> None:
    assert allowed("cluster-wide", "watch", "globalenvironments", "renku.io", "any")
    assert allowed("cluster-wide", "create", "events", "", "any")
    assert allowed("cluster-wide", "watch", "customresourcedefinitions", "apiextensions.k8s.io")
    assert not allowed("cluster-wide", "create", "pods", "", "any")
    assert "RENKU_ENV_OPERATOR_NAMESPACES" not in container_env("cluster-wide")


def test_ha_peering_objects_rbac_and_disruption_budget() -> None:
    docs = render("ha")
    dep = deployment("ha")["spec"]
    assert dep["replicas"] == 3
    assert dep["strategy"]["type"] == "RollingUpdate"
    assert container_env("ha")["RENKU_ENV_OPERATOR_PEERING"]["value"] == FULLNAME
    peerings = of_kind(docs, "KopfPeering")
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings} == {
        ("team-a", FULLNAME),
        ("team-b", FULLNAME),
    }
    crds = {c["metadata"]["name"] for c in of_kind(docs, "CustomResourceDefinition")}
    assert {"kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"} <= crds
    for crd in of_kind(docs, "CustomResourceDefinition"):
        if crd["spec"]["group"] == "kopf.dev":
            assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    assert allowed("ha", "watch", "kopfpeerings", "kopf.dev", "team-a")
    assert allowed("ha", "patch", "kopfpeerings", "kopf.dev", "team-a", FULLNAME)
    assert not allowed("ha", "patch", "kopfpeerings", "kopf.dev", "team-a", "another-operator")
    (pdb,) = of_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == dep["selector"]["matchLabels"]


def test_ha_cluster_wide_uses_a_cluster_peering() -> None:
    (peering,) = of_kind(render("ha-cluster-wide"), "ClusterKopfPeering")
    name = peering["metadata"]["name"]
    assert allowed("ha-cluster-wide", "patch", "clusterkopfpeerings", "kopf.dev", None, name)
    assert not of_kind(render("ha-cluster-wide"), "KopfPeering")


def test_single_replica_is_recreated_never_doubled() -> None:
    spec = deployment("default")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert not of_kind(render("default"), "PodDisruptionBudget")
    assert "RENKU_ENV_OPERATOR_PEERING" not in container_env("default")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_restricted_security_context_and_writable_tmp(name: str) -> None:
    pod = deployment(name)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    if name != "openshift":
        assert security["runAsUser"] == 10001
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["securityContext"]["runAsUser"] == 10001
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
    assert "emptyDir" in volume
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = container_env(name)["RENKU_ENV_OPERATOR_LIVENESS_ENDPOINT"]["value"]
    assert env.endswith(":8080/healthz")


def test_openshift_can_leave_the_uid_to_the_platform() -> None:
    pod = deployment("openshift")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = pod["containers"]
    assert "runAsUser" not in container["securityContext"]
    assert "runAsGroup" not in container["securityContext"]
    assert "seccompProfile" not in container["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_priority_class_only_when_given() -> None:
    assert deployment("hardened")["spec"]["template"]["spec"]["priorityClassName"] == (
        "system-cluster-critical"
    )
    assert "priorityClassName" not in deployment("default")["spec"]["template"]["spec"]


# Settings the chart sets only when their value is: an empty value leaves the operator's own
# default (config.py), so no default lives in two places and the default install stays minimal.
# TRUSTED_NAMESPACES in particular defaults to the operator's own namespace, which the operator
# knows from POD_NAMESPACE: rendering it would only repeat that.
OPTIONAL_SETTINGS = {
    "trusted_namespaces",
    "registry_internal_allowlist",
    "registry_check_deadline_seconds",
    "claim_gc_interval_seconds",
    "registry_cache_entries",
    "registry_cache_mib",
    "registry_read_budget_mib",
    "cluster_cidrs",
    "smoke_ephemeral_storage_request",
    "smoke_ephemeral_storage_limit",
    "renku_image_check",
}


def load_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The operator's Settings from the Deployment's environment, as the pod would load them."""
    env = container_env(name)
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("POD_NAMESPACE", NAMESPACE)
    for key, entry in env.items():
        if key.startswith(ENV_PREFIX):
            monkeypatch.setenv(key, entry["value"])
    return Settings()


def test_optional_settings_are_real_settings() -> None:
    assert set(Settings.model_fields) >= OPTIONAL_SETTINGS


def test_optional_settings_are_set_only_when_their_value_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = container_env("hardened")
    values = {k.removeprefix(ENV_PREFIX): v.get("value") for k, v in env.items()}
    assert values["TRUSTED_NAMESPACES"] == "renku,platform"
    assert values["REGISTRY_INTERNAL_ALLOWLIST"] == "mirror.internal:5000,10.1.0.0/16"
    assert values["REGISTRY_CHECK_DEADLINE_SECONDS"] == "30"
    assert values["CLAIM_GC_INTERVAL_SECONDS"] == "600"
    assert (values["REGISTRY_CACHE_ENTRIES"], values["REGISTRY_CACHE_MIB"]) == ("128", "4")
    assert values["REGISTRY_READ_BUDGET_MIB"] == "16"
    assert values["CLUSTER_CIDRS"] == "10.96.0.0/12,10.244.0.0/16,fd00:10::/56"
    assert values["SMOKE_EPHEMERAL_STORAGE_REQUEST"] == "200Mi"
    assert values["SMOKE_EPHEMERAL_STORAGE_LIMIT"] == "2Gi"
    assert values["RENKU_IMAGE_CHECK"] == "Error"
    hardened = load_settings("hardened", monkeypatch)
    assert hardened.trusted_namespaces == ["renku", "platform"]
    assert hardened.registry_internal_allowlist == ["mirror.internal:5000", "10.1.0.0/16"]
    assert hardened.registry_check_deadline_seconds == 30
    assert hardened.claim_gc_interval_seconds == 600
    assert (hardened.registry_cache_entries, hardened.registry_cache_mib) == (128, 4.0)
    assert hardened.registry_read_budget_mib == 16.0
    assert hardened.cluster_cidrs == ["10.96.0.0/12", "10.244.0.0/16", "fd00:10::/56"]
    assert hardened.smoke_ephemeral_storage_request == "200Mi"
    assert hardened.smoke_ephemeral_storage_limit == "2Gi"
    assert hardened.renku_image_check == "Error"
    assert container_env("default-with-cluster-cidrs")[f"{ENV_PREFIX}CLUSTER_CIDRS"]["value"]
    for name in VALUE_SETS:
        if name not in {"hardened", "default-with-cluster-cidrs"}:
            present = {n.removeprefix(ENV_PREFIX).lower() for n in container_env(name)}
            assert not present & OPTIONAL_SETTINGS, (name, present & OPTIONAL_SETTINGS)
    # Unset, the operator's defaults apply: only its own namespace is trusted.
    default = load_settings("default", monkeypatch)
    for field in OPTIONAL_SETTINGS:
        expected = Settings.model_fields[field].get_default(call_default_factory=True)
        assert getattr(default, field) == expected, field
    assert default.trusted_namespaces == []
    assert default.is_trusted(NAMESPACE)
    assert not default.is_trusted("team-a")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_variable_is_a_setting_and_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = container_env(name)
    names = {n.removeprefix(ENV_PREFIX).lower() for n in env if n.startswith(ENV_PREFIX)}
    assert names <= set(Settings.model_fields), names - set(Settings.model_fields)
    assert set(env) - {f"{ENV_PREFIX}{n.upper()}" for n in names} == {"POD_NAMESPACE", "POD_ID"}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    settings = load_settings(name, monkeypatch)
    assert settings.operator_namespace == NAMESPACE
    if name == "custom-smoke":
        assert settings.smoke_pod_namespace == "sandbox"
        assert settings.smoke_cpu_request == "1"
        assert settings.smoke_memory_limit == "8Gi"
        assert settings.smoke_node_selector == {"nvidia.com/gpu.present": "true"}
        assert settings.smoke_tolerations[0]["key"] == "nvidia.com/gpu"
        assert settings.node_architectures == ["amd64", "arm64"]
        assert settings.tag_policy == "Error"
        assert settings.smoke_max_concurrent == 4
    if name == "several-namespaces":
        assert settings.namespaces == ["team-a", "team-b", "team-c"]
    if name == "keycloak-client":
        assert settings.renku_credentials_secret == f"{FULLNAME}-renku-credentials"
        assert str(settings.renku_url) == URL


@pytest.mark.parametrize(
    ("typo", "key"),
    [
        ("renku.ulr=x", "ulr"),
        ("smoke.timeoutSecond=5", "timeoutSecond"),
        ("smoke.networkPolicy.enable=false", "enable"),
        ("security.trustedNamespace=a", "trustedNamespace"),
        ("networkPolicy.apiserver.cidrs=x", "apiserver"),
        ("renku.imageCheck=Warning", "imageCheck"),
        ("ha.replica=2", "replica"),
        ("metrics.serviceMonitor.enable=true", "enable"),
        ("logformat=json", "logformat"),
    ],
)
def test_the_schema_rejects_typos(typo: str, key: str) -> None:
    result = helm("template", RELEASE, str(CHART), "--set", typo)
    assert result.returncode != 0
    assert key in result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {
                "renku": {
                    "credentials": {
                        "existingSecret": "a",
                        "create": {"enabled": True, "token": "t"},
                    }
                }
            },
            "not both",
        ),
        (
            {"renku": {"credentials": {"create": {"enabled": True, "clientId": "c"}}}},
            "all of clientId",
        ),
        (
            {
                "renku": {
                    "credentials": {"create": {"enabled": True, "token": "t", "clientId": "c"}}
                }
            },
            "not both",
        ),
        (
            {"rbac": {"clusterWide": True}, "watchNamespaces": ["a"]},
            "watchNamespaces must be empty",
        ),
        ({"metrics": {"port": 0, "serviceMonitor": {"enabled": True}}}, "needs metrics.port"),
        (
            {"ha": {"enabled": True, "replicas": 2, "podDisruptionBudget": {"minAvailable": 2}}},
            "lower than",
        ),
        ({"logLevel": "TRACE"}, "logLevel"),
        ({"smoke": {"namespace": NAMESPACE}}, "must not be the release namespace"),
        (
            {"smoke": {"networkPolicy": {"enabled": False, "apiServerCIDRs": []}}},
            "networkPolicy.apiServer.cidrs (or smoke.networkPolicy.apiServerCIDRs) is required",
        ),
        ({"cluster": {"cidrs": ["10.96.0.0"]}}, "cidrs"),
        ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
    ],
)
def test_contradictions_fail_with_a_message(values: dict[str, Any], message: str) -> None:
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, values=values)
    assert result.returncode != 0
    assert message in result.stderr


def test_schema_closes_every_object() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, path
            for key, child in node.items():
                walk(child, f"{path}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{path}/{index}")

    walk(schema, "")


OPERATOR_CRDS = ("globalenvironments.renku.io", "globalenvironmentclaims.renku.io")


@pytest.mark.parametrize("crd_name", OPERATOR_CRDS)
def test_the_charts_crds_are_the_repositorys(crd_name: str) -> None:
    chart_copy = CHART / "files" / f"{crd_name}.yaml"
    source = ROOT / "crds" / f"{crd_name}.yaml"
    assert chart_copy.read_bytes() == source.read_bytes(), f"make crds (cp {source} {chart_copy})"
    (rendered,) = [
        c
        for c in of_kind(render("default"), "CustomResourceDefinition")
        if c["metadata"]["name"] == crd_name
    ]
    annotations = rendered["metadata"].pop("annotations")
    rendered["metadata"].pop("labels")
    assert rendered == yaml.safe_load(source.read_text())
    assert annotations["helm.sh/resource-policy"] == "keep"
    assert annotations["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
    assert annotations["argocd.argoproj.io/sync-wave"] == "-1"


def test_the_chart_ships_every_crd_the_repository_has() -> None:
    assert {p.stem for p in (ROOT / "crds").glob("*.yaml")} == set(OPERATOR_CRDS)
    assert {p.stem for p in (CHART / "files").glob("*.renku.io.yaml")} == set(OPERATOR_CRDS)


def test_crd_keep_and_install_switches() -> None:
    crds = [
        c
        for c in of_kind(render("production"), "CustomResourceDefinition")
        if c["spec"]["group"] == "renku.io"
    ]
    assert sorted(c["metadata"]["name"] for c in crds) == sorted(OPERATOR_CRDS)
    for crd in crds:
        assert "helm.sh/resource-policy" not in crd["metadata"]["annotations"]
        assert "argocd.argoproj.io/sync-options" not in crd["metadata"]["annotations"]
    groups = {
        c["spec"]["group"]
        for c in of_kind(render("no-crds-no-metrics"), "CustomResourceDefinition")
    }
    assert groups == set()


@pytest.mark.parametrize("name", VALUE_SETS)
def test_kopf_peering_crds_only_in_ha_mode(name: str) -> None:
    groups = {c["spec"]["group"] for c in of_kind(render(name), "CustomResourceDefinition")}
    ha = VALUE_SETS[name].get("ha", {}).get("enabled", False)
    assert ("kopf.dev" in groups) == ha
    assert (
        bool(of_kind(render(name), "KopfPeering") + of_kind(render(name), "ClusterKopfPeering"))
        == ha
    )


def operator_policy(name: str) -> dict[str, Any] | None:
    """The operator's own NetworkPolicy (in the release namespace) of VALUE_SETS[name]."""
    found = [
        d for d in of_kind(render(name), "NetworkPolicy") if d["metadata"]["namespace"] == NAMESPACE
    ]
    assert len(found) <= 1
    return found[0]["spec"] if found else None


MONITORING = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["monitoring"]}


def test_operator_network_policy_is_on_by_default_and_opens_only_the_metrics_port() -> None:
    """Finding 8: the metrics port was reachable from every pod (the policy was off)."""
    spec = operator_policy("default")
    assert spec is not None
    assert (
        spec["podSelector"]["matchLabels"]
        == deployment("default")["spec"]["selector"]["matchLabels"]
    )
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # Ingress: metrics only, from the pods of the `monitoring` namespace.
    assert spec["ingress"] == [
        {
            "ports": [{"port": "metrics", "protocol": "TCP"}],
            "from": [{"namespaceSelector": {"matchExpressions": [MONITORING]}}],
        }
    ]
    dns, api, renku, registries = spec["egress"]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    # The API server's addresses default to the smoke policy's (the chart requires one).
    assert api["to"] == [{"ipBlock": {"cidr": API_SERVER}}]
    assert {p["port"] for p in api["ports"]} == {443, 6443}
    # Renku: its own namespace, where the chart is installed.
    assert renku["to"] == [{"podSelector": {}}]
    assert registries["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert "169.254.0.0/16" in registries["to"][0]["ipBlock"]["except"]
    assert registries["ports"] == [{"port": 443, "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("values", "peers"),
    [
        (
            {"metricsNamespaceLabels": {"team": "observability"}, "metricsPodLabels": {"app": "p"}},
            [
                {
                    "namespaceSelector": {"matchLabels": {"team": "observability"}},
                    "podSelector": {"matchLabels": {"app": "p"}},
                }
            ],
        ),
        (
            {"metricsNamespaces": ["monitoring", "prometheus"]},
            [
                {
                    "namespaceSelector": {
                        "matchExpressions": [{**MONITORING, "values": ["monitoring", "prometheus"]}]
                    }
                }
            ],
        ),
        ({"metricsNamespaces": []}, [{"namespaceSelector": {}}]),
        (
            {"metricsFrom": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]},
            [{"ipBlock": {"cidr": "192.0.2.0/24"}}],
        ),
    ],
)
def test_who_may_scrape_metrics(values: dict[str, Any], peers: list[dict[str, Any]]) -> None:
    result = helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE, values={"networkPolicy": values}
    )
    assert result.returncode == 0, result.stderr
    (spec,) = [
        d["spec"]
        for d in yaml.safe_load_all(result.stdout)
        if d and d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == NAMESPACE
    ]
    assert spec["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}], "from": peers}]


def test_operator_network_policy_without_metrics_refuses_all_ingress() -> None:
    spec = operator_policy("no-crds-no-metrics")
    assert spec is not None
    assert spec["ingress"] == []


def cilium_policies(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in templated(values) if d["kind"] == "CiliumNetworkPolicy"]


def test_on_cilium_the_api_server_is_allowed_by_entity_not_by_address() -> None:
    """ipBlocks never match the API server on Cilium: without these the operator could not
    reach it, and the session-URL check could not reach smoke pods."""
    assert cilium_policies({}) == []  # not on other clusters (no such CRD there)

    found = cilium_policies({"networkPolicy": {"cilium": {"enabled": True}}})

    by_name = {d["metadata"]["name"]: d for d in found}
    operator = by_name[f"{RELEASE}-renku-env-operator-apiserver"]
    assert operator["metadata"]["namespace"] == NAMESPACE
    assert operator["spec"]["egress"] == [{"toEntities": ["kube-apiserver"]}]
    assert operator["spec"]["endpointSelector"]["matchLabels"]  # the operator's pods only
    smoke = by_name[f"{RELEASE}-renku-env-operator-smoke-apiserver"]
    assert smoke["metadata"]["namespace"] == SMOKE
    assert smoke["spec"]["ingress"] == [{"fromEntities": ["kube-apiserver"]}]
    assert "egress" not in smoke["spec"]  # smoke pods still reach nothing

    wider = {"networkPolicy": {"cilium": {"enabled": True, "apiServerEntities": ["host"]}}}
    assert {d["metadata"]["name"] for d in cilium_policies(wider)} == set(by_name)
    refused = helm(
        "template",
        RELEASE,
        str(CHART),
        values={"networkPolicy": {"cilium": {"apiServerEntities": ["pods"]}}},
    )
    assert refused.returncode != 0
    assert "apiServerEntities" in refused.stderr


def test_operator_network_policy_can_be_switched_off() -> None:
    assert operator_policy("smoke-fences-off") is not None  # only the smoke fences are off
    namespaces = [
        d["metadata"]["namespace"]
        for d in templated({"networkPolicy": {"enabled": False}})
        if d["kind"] == "NetworkPolicy"
    ]
    assert namespaces == [SMOKE]


def test_operator_network_policy() -> None:
    spec = operator_policy("hardened")
    assert spec is not None
    # Ingress: metrics from the monitoring namespace; liveness needs no rule (the kubelet).
    (metrics,) = spec["ingress"]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    dns, api, renku, registries = spec["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert api["to"] == [
        {"ipBlock": {"cidr": "172.18.0.2/32"}},
        {"ipBlock": {"cidr": "172.18.0.3/32"}},
    ]
    assert api["ports"] == [{"port": 6443, "protocol": "TCP"}]
    assert renku["to"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "data-service"}}}
    ]
    v4, v6, narrow = registries["to"]
    # Public registries: anywhere but private, link-local, loopback and the cluster's ranges.
    assert {"169.254.0.0/16", "10.0.0.0/8", "10.96.0.0/12", "127.0.0.0/8"} <= set(
        v4["ipBlock"]["except"]
    )
    assert v6["ipBlock"] == {"cidr": "::/0", "except": ["fd00:10::/56"]}
    assert narrow["ipBlock"] == {"cidr": "192.0.2.0/24"}
    assert registries["ports"] == [{"port": 443, "protocol": "TCP"}]


def test_created_secret_has_the_keys_the_operator_reads() -> None:
    (secret,) = of_kind(render("keycloak-client"), "Secret")
    assert set(secret["stringData"]) == {"clientId", "clientSecret", "tokenUrl"}
    (token,) = of_kind(render("static-token"), "Secret")
    assert token["stringData"] == {"token": "t0ken"}
    annotations = deployment("static-token")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/credentials" in annotations


def test_image_reference_and_pull_settings() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (default,) = deployment("default")["spec"]["template"]["spec"]["containers"]
    assert default["image"].endswith(f":{chart['appVersion']}")
    pod = deployment("production")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"].endswith(":0.1.0@sha256:" + "ab" * 32)
    assert pod["imagePullSecrets"] == [{"name": "ghcr"}]


def test_metrics_service_and_monitor_match_the_pod() -> None:
    docs = render("service-monitor")
    (service,) = of_kind(docs, "Service")
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    (container,) = deployment("service-monitor")["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]
    assert not of_kind(render("no-crds-no-metrics"), "Service")


def test_notes_tell_what_to_do_next(helm_binary: str) -> None:
    if helm_binary == "helm3":
        pytest.skip("Helm 3's install --dry-run=client asks a cluster for its version")

    def notes(values: dict[str, Any]) -> str:
        result = helm(
            "install", RELEASE, str(CHART), "--dry-run=client", "-n", NAMESPACE, values=values
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split("NOTES:", 1)[1]

    bare = notes({})
    assert "renku.url is empty" in bare
    assert "no Renku credentials" in bare
    ready = notes(VALUE_SETS["existing-secret"])
    assert "WARNING" not in ready
    assert "kubectl get genv" in ready
    assert "rollout status" in ready
    # Who may scrape, since the operator's NetworkPolicy is on by default.
    assert "scraped from the namespaces monitoring only" in ready
    labelled = notes({"networkPolicy": {"metricsNamespaceLabels": {"team": "obs"}}})
    assert 'namespaces labelled {"team":"obs"} only' in labelled
    assert "scraped" not in notes({"networkPolicy": {"enabled": False}})


def test_app_version_is_the_packages() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{chart["appVersion"]}"' in pyproject


# --- The GitOps example (docs/gitops.md) ---


def example_environments() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "GlobalEnvironment":
                found.append((path, doc))
    return found


def test_example_environments_carry_their_sync_wave() -> None:
    environments = example_environments()
    assert len(environments) >= 2
    for path, doc in environments:
        annotations = doc["metadata"].get("annotations", {})
        assert annotations.get("argocd.argoproj.io/sync-wave") == "1", path.name


def test_the_argocd_application_points_at_what_a_release_publishes() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    release = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    operator_source, environments_source = _APPLICATION["spec"]["sources"]
    # The chart at the release tag of this chart version (release.yml publishes its image).
    assert operator_source["path"] == "helm/renku-env-operator"
    assert operator_source["targetRevision"] == f"v{chart['version']}"
    assert 'tags: ["v[0-9]+.[0-9]+.[0-9]+*"]' in release
    values = operator_source["helm"]["valuesObject"]
    assert values["image"]["repository"]
    assert not values.get("metrics", {}).get("serviceMonitor", {}).get("enabled", False)
    assert values["renku"]["credentials"]["existingSecret"]
    # The environments: files of this repository, in the Application's namespace.
    assert environments_source["targetRevision"] == operator_source["targetRevision"]
    include = environments_source["directory"]["include"]
    names = include.strip("{}").split(",")
    destination = _APPLICATION["spec"]["destination"]["namespace"]
    environments = {path.name: doc for path, doc in example_environments()}
    for name in names:
        assert (ROOT / environments_source["path"] / name).is_file(), name
        assert environments[name]["metadata"]["namespace"] == destination
    assert "argocd-application.yaml" not in names
    # The smoke namespace the chart creates is not the Application's own.
    smoke = of_kind(render("argocd-example"), "Namespace")
    assert [n["metadata"]["name"] for n in smoke] == [f"{NAMESPACE}-smoke"]


def test_smoke_pods_are_closed_to_the_cluster_unless_told_where_the_api_server_is() -> None:
    """Finding 9: without the API server's addresses the chart refuses to render (it used to
    open smoke pods to 0.0.0.0/0, every pod of the cluster included)."""
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, values={}, base={})
    assert result.returncode != 0
    assert "smoke.networkPolicy.apiServerCIDRs is required" in result.stderr

    # The operator's own policy's API server addresses serve when they are set.
    values = {"networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["10.0.0.1/32"]}}}
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, values=values, base={})
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    (policy,) = [
        d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == SMOKE
    ]
    assert policy["spec"]["ingress"] == [{"from": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]}]

    # No fence, no requirement.
    off = {"smoke": {"networkPolicy": {"enabled": False}}, "networkPolicy": {"enabled": False}}
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, values=off, base={})
    assert result.returncode == 0, result.stderr
