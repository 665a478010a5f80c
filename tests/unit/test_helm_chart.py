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
FULLNAME = f"{RELEASE}-renku-env-operator"
# Kinds kubernetes-validate has no schema for: kopf's peering objects and the Prometheus
# Operator's ServiceMonitor (checked by hand below).
NOT_BUILTIN = {"KopfPeering", "ClusterKopfPeering", "ServiceMonitor"}
URL = "https://renku.example.org/api/data"


def find_helm() -> str | None:
    candidates = [os.environ.get("HELM"), str(ROOT / ".tools" / "bin" / "helm")]
    found = [c for c in candidates if c and os.access(c, os.X_OK)]
    return found[0] if found else shutil.which("helm")


HELM = find_helm()
pytestmark = [
    pytest.mark.helm,
    pytest.mark.skipif(HELM is None, reason="no helm binary: set HELM or run .ci/install-tools.sh"),
]

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
  smokeTest:
    namespace: renku-smoke
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
""")
# The values of the example Argo CD Application must install too.
_APPLICATION = yaml.safe_load((ROOT / "examples" / "argocd-application.yaml").read_text())
VALUE_SETS["argocd-example"] = _APPLICATION["spec"]["sources"][0]["helm"]["valuesObject"]


def helm(*args: str, values: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    command = [HELM, *args, "--values", "-"] if values is not None else [HELM, *args]
    return subprocess.run(
        command,
        input=json.dumps(values or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@functools.cache
def render(name: str) -> tuple[dict[str, Any], ...]:
    """The manifests of VALUE_SETS[name], CRDs from crds/ included (as ArgoCD renders them)."""
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
    for verb in ("get", "list", "watch", "patch", "update"):
        assert allowed("default", verb, "globalenvironments", "renku.io", ns)
        assert not allowed("default", verb, "globalenvironments", "renku.io", other)
    assert not allowed("default", "delete", "globalenvironments", "renku.io", ns)
    assert allowed("default", "patch", "globalenvironments/status", "renku.io", ns)
    assert allowed("default", "create", "events", "", ns)
    assert allowed("default", "create", "events", "events.k8s.io", ns)
    # patch: the verdict is stamped on a smoke pod's labels and annotations.
    for verb in ("get", "list", "watch", "create", "patch", "delete"):
        assert allowed("default", verb, "pods", "", ns)
        assert not allowed("default", verb, "pods", "", other)
    assert not allowed("default", "update", "pods", "", ns)
    assert allowed("default", "get", "pods/log", "", ns)
    assert allowed("default", "get", "pods/proxy", "", ns)
    assert not allowed("default", "create", "pods/exec", "", ns)
    assert allowed("default", "list", "events", "", ns)
    assert not allowed("default", "get", "secrets", "", ns, "renku-admin")
    assert not allowed("default", "list", "customresourcedefinitions", "apiextensions.k8s.io")
    assert not allowed("default", "list", "namespaces")


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
    # Smoke pods still run in the release namespace.
    assert allowed("several-namespaces", "create", "pods", "", NAMESPACE)
    assert not allowed("several-namespaces", "create", "pods", "", "team-a")


def test_smoke_pods_live_in_their_own_namespace() -> None:
    assert allowed("custom-smoke", "create", "pods", "", "renku-smoke")
    assert allowed("custom-smoke", "watch", "events", "", "renku-smoke")
    assert not allowed("custom-smoke", "create", "pods", "", NAMESPACE)


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
    assert security["runAsUser"] == 10001
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
    assert "emptyDir" in volume
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = container_env(name)["RENKU_ENV_OPERATOR_LIVENESS_ENDPOINT"]["value"]
    assert env.endswith(":8080/healthz")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_variable_is_a_setting_and_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = container_env(name)
    names = {n.removeprefix(ENV_PREFIX).lower() for n in env if n.startswith(ENV_PREFIX)}
    assert names <= set(Settings.model_fields), names - set(Settings.model_fields)
    assert set(env) - {f"{ENV_PREFIX}{n.upper()}" for n in names} == {"POD_NAMESPACE", "POD_ID"}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("POD_NAMESPACE", NAMESPACE)
    for key, entry in env.items():
        if key.startswith(ENV_PREFIX):
            monkeypatch.setenv(key, entry["value"])
    settings = Settings()
    assert settings.operator_namespace == NAMESPACE
    if name == "custom-smoke":
        assert settings.smoke_pod_namespace == "renku-smoke"
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
        ("smokeTest.timeoutSecond=5", "timeoutSecond"),
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
        ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
    ],
)
def test_contradictions_fail_with_a_message(values: dict[str, Any], message: str) -> None:
    result = helm("template", RELEASE, str(CHART), values=values)
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


def test_the_charts_crd_is_the_repositorys() -> None:
    chart_copy = CHART / "files" / "globalenvironments.renku.io.yaml"
    source = ROOT / "crds" / "globalenvironments.renku.io.yaml"
    assert chart_copy.read_bytes() == source.read_bytes(), f"cp {source} {chart_copy}"
    (rendered,) = [
        c
        for c in of_kind(render("default"), "CustomResourceDefinition")
        if c["metadata"]["name"] == "globalenvironments.renku.io"
    ]
    annotations = rendered["metadata"].pop("annotations")
    rendered["metadata"].pop("labels")
    assert rendered == yaml.safe_load(source.read_text())
    assert annotations["helm.sh/resource-policy"] == "keep"
    assert annotations["argocd.argoproj.io/sync-wave"] == "-1"


def test_crd_keep_and_install_switches() -> None:
    (crd,) = [
        c
        for c in of_kind(render("production"), "CustomResourceDefinition")
        if c["spec"]["group"] == "renku.io"
    ]
    assert "helm.sh/resource-policy" not in crd["metadata"]["annotations"]
    groups = {
        c["spec"]["group"]
        for c in of_kind(render("no-crds-no-metrics"), "CustomResourceDefinition")
    }
    assert groups == {"kopf.dev"}


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


def test_notes_tell_what_to_do_next() -> None:
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


def test_app_version_is_the_packages() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{chart["appVersion"]}"' in pyproject
