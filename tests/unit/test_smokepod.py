"""The smoke pod mirrors Renku's session pod (SESSIONS.md); the probe pod and its log parsing."""

from __future__ import annotations

import json
import re
from typing import Any

import kubernetes_validate
import pytest

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.config import Settings
from renku_env_operator.domain import smokepod as sp
from renku_env_operator.domain.probe import (
    build_probe_pod,
    parse_probe_log,
    probe_checks,
)

IMAGE = "ghcr.io/swissdatasciencecenter/renku/py-basic-jupyterlab@sha256:" + "a" * 64
OWNER = sp.OwnerRef("renku.io/v1alpha1", "GlobalEnvironment", "jupyter", "uid-1", "envs")
K8S_VERSION = "1.35.0"


def spec(**fields: Any) -> GlobalEnvironmentSpec:
    return GlobalEnvironmentSpec.model_validate({"image": IMAGE, **fields})


def build(
    the_spec: GlobalEnvironmentSpec | None = None,
    *,
    settings: Settings | None = None,
    namespace: str = "envs",
    image_workdir: str | None = None,
) -> dict[str, Any]:
    the_spec = the_spec or spec()
    labels = sp.smoke_labels(
        owner=OWNER,
        generation=3,
        spec_hash=sp.smoke_hash(the_spec, IMAGE, image_workdir),
        purpose="current",
        role="session",
    )
    return sp.build_smoke_pod(
        name="smoke-jupyter-1",
        namespace=namespace,
        owner=OWNER,
        spec=the_spec,
        image=IMAGE,
        image_workdir=image_workdir,
        generation=3,
        settings=settings or Settings(),
        labels=labels,
        timeout_seconds=900,
    )


def session(pod: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = pod["spec"]["containers"][0]
    return container


def env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in session(pod)["env"]}


RENKU_LIKE = spec(
    port=8888,
    uid=1000,
    gid=100,
    workingDirectory="/home/renku/work/project",
    mountDirectory="/home/renku/work",
    command=["bash", "-c"],
    args=["jupyter lab"],
    defaultUrl="/lab",
)


def test_session_container_mirrors_renku() -> None:
    pod = build(RENKU_LIKE)
    container = session(pod)
    # "image: container_image, imagePullPolicy: Always, no pull secrets"
    assert container["image"] == IMAGE
    assert container["imagePullPolicy"] == "Always"
    assert "imagePullSecrets" not in pod["spec"]
    # "command / args: the environment's, when set"
    assert container["command"] == ["bash", "-c"]
    assert container["args"] == ["jupyter lab"]
    # "workingDir: work_dir"
    assert container["workingDir"] == "/home/renku/work/project"
    # "runAsUser: uid, runAsGroup: gid, runAsNonRoot: true, capabilities: {drop: [ALL]}"
    security = container["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (1000, 100)
    assert security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["allowPrivilegeEscalation"] is False
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_pod_level_fields_mirror_renku() -> None:
    pod_spec = build(RENKU_LIKE)["spec"]
    # "Pod: securityContext.fsGroup: gid, automountServiceAccountToken: false,
    #  enableServiceLinks: false"
    assert pod_spec["securityContext"] == {"fsGroup": 100}
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["enableServiceLinks"] is False
    assert pod_spec["restartPolicy"] == "Always"
    assert pod_spec["activeDeadlineSeconds"] == 900


def test_volumes_mirror_renku() -> None:
    pod = build(RENKU_LIKE)
    mounts = {m["name"]: m["mountPath"] for m in session(pod)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    # A writable volume at mount_dir (the PVC, default 1Gi)...
    assert mounts["workspace"] == "/home/renku/work"
    assert volumes["workspace"]["emptyDir"] == {"sizeLimit": "1Gi"}
    # ... and "an emptyDir with medium: Memory (size 1G) at /dev/shm"
    assert mounts["shm"] == "/dev/shm"
    assert volumes["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1G"}


def test_environment_variables_mirror_renku() -> None:
    variables = env(build(RENKU_LIKE))
    server = variables["RENKU_BASE_URL_PATH"].removeprefix("/sessions/")
    # "The server name looks like <slug, 12 chars>-<md5 prefix, 12 chars>"
    assert re.fullmatch(r"[a-z][a-z0-9-]{0,11}-[0-9a-f]{12}", server), server
    assert variables["RENKU_BASE_URL"] == f"https://renku.example.org/sessions/{server}"
    assert variables["RENKU_MOUNT_DIR"] == "/home/renku/work"
    assert variables["RENKU_WORKING_DIR"] == "/home/renku/work/project"
    assert variables["CNB_APP_DIR"] == "/home/renku/work/project"  # "(= work_dir)"
    assert variables["RENKU_SESSION_IP"] == "0.0.0.0"
    assert variables["RENKU_SESSION_PORT"] == "8888"
    assert variables["RENKU_SESSION"] == "1"
    assert variables["RENKU_SECRETS_PATH"].startswith("/")
    ulid = r"[0-7][0-9A-HJKMNP-TV-Z]{25}"
    assert re.fullmatch(ulid, variables["RENKU_PROJECT_ID"])
    assert re.fullmatch(ulid, variables["RENKU_LAUNCHER_ID"])
    assert variables["RENKU_PROJECT_ID"] != variables["RENKU_LAUNCHER_ID"]
    assert re.fullmatch(r"[a-z0-9-]+/[a-z0-9-]+", variables["RENKU_PROJECT_PATH"])


def test_base_url_takes_the_host_from_renku_url() -> None:
    settings = Settings(renku_url="https://renku.epfl.ch:8443/api/data")
    variables = env(build(settings=settings))
    assert variables["RENKU_BASE_URL"].startswith("https://renku.epfl.ch:8443/sessions/")


def test_credentials_of_renku_url_never_reach_the_smoke_pod() -> None:
    """Smoke pods run images that namespace users choose: a user:password@ in RENKU_URL must
    not end up in their environment (it did, through the URL's netloc)."""
    settings = Settings(renku_url="https://admin:s3cret@renku.epfl.ch:8443/api/data")
    pod = build(settings=settings)
    assert env(pod)["RENKU_BASE_URL"].startswith("https://renku.epfl.ch:8443/sessions/")
    assert "s3cret" not in json.dumps(pod)


def test_the_public_url_wins_over_the_internal_service_address() -> None:
    settings = Settings(
        renku_url="http://renku-data-service.renku.svc/api/data",
        renku_public_url="https://renku.example.ch",
    )
    variables = env(build(settings=settings))
    assert variables["RENKU_BASE_URL"].startswith("https://renku.example.ch/sessions/")


def test_readiness_probe_is_renkus_and_nothing_else() -> None:
    container = session(build(RENKU_LIKE))
    assert container["readinessProbe"] == {
        "tcpSocket": {"port": 8888},
        "initialDelaySeconds": 10,
        "periodSeconds": 5,
        "successThreshold": 5,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
    }
    assert "livenessProbe" not in container
    assert "startupProbe" not in container


def test_renku_defaults_apply_to_an_empty_spec() -> None:
    pod = build(spec())
    container = session(pod)
    assert "command" not in container
    assert "args" not in container
    assert container["readinessProbe"]["tcpSocket"] == {"port": 8080}
    security = container["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (1000, 1000)
    assert pod["spec"]["securityContext"] == {"fsGroup": 1000}
    assert container["workingDir"] == "/home/jovyan/work"
    assert env(pod)["RENKU_MOUNT_DIR"] == "/home/jovyan/work"


def test_paths_are_resolved_as_renku_does() -> None:
    pod = build(spec(workingDirectory="/opt/app", mountDirectory="/"))
    assert session(pod)["workingDir"] == "/work"
    assert env(pod)["RENKU_MOUNT_DIR"] == "/work"
    image_dir = build(spec(), image_workdir="/home/renku/work")
    assert session(image_dir)["workingDir"] == "/home/renku/work"


def test_operator_settings_apply() -> None:
    settings = Settings(
        smoke_cpu_request="50m",
        smoke_memory_request="128Mi",
        smoke_cpu_limit="2",
        smoke_memory_limit="4Gi",
        smoke_ephemeral_storage_request="200Mi",
        smoke_ephemeral_storage_limit="2Gi",
        smoke_node_selector={"gpu": "true"},
        smoke_tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    pod = build(settings=settings)
    assert session(pod)["resources"] == {
        "requests": {"cpu": "50m", "memory": "128Mi", "ephemeral-storage": "200Mi"},
        "limits": {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "2Gi"},
    }
    assert pod["spec"]["nodeSelector"] == {"gpu": "true"}
    assert pod["spec"]["tolerations"][0]["key"] == "gpu"
    assert "nodeSelector" not in build()["spec"]


def test_owner_reference_and_labels() -> None:
    metadata = build()["metadata"]
    assert metadata["ownerReferences"] == [
        {
            "apiVersion": "renku.io/v1alpha1",
            "kind": "GlobalEnvironment",
            "name": "jupyter",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    labels = metadata["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "renku-env-operator"
    assert labels["renku.io/smoke-test"] == "true"
    assert labels["renku.io/globalenvironment"] == "jupyter"
    assert labels["renku.io/globalenvironment-uid"] == "uid-1"
    assert labels["renku.io/generation"] == "3"
    assert re.fullmatch(r"[0-9a-f]{12}", labels["renku.io/smoke-hash"])


def test_no_owner_reference_across_namespaces() -> None:
    # The garbage collector would delete the pod at once: owners must share the namespace.
    assert "ownerReferences" not in build(namespace="smoke-tests")["metadata"]


def test_hash_changes_with_what_shapes_the_pod() -> None:
    base = sp.smoke_hash(spec(), IMAGE, None)
    assert base == sp.smoke_hash(spec(description="other words"), IMAGE, None)
    assert base != sp.smoke_hash(spec(port=8888), IMAGE, None)
    assert base != sp.smoke_hash(spec(), IMAGE.replace("a" * 64, "b" * 64), None)
    assert base != sp.smoke_hash(spec(), IMAGE, "/srv")


def test_long_names_fit_labels_and_pod_names() -> None:
    long_name = "a" * 200
    assert len(sp.label_value(long_name)) <= 63
    assert sp.label_value("short") == "short"
    name = sp.smoke_pod_name(long_name, "0123456789ab", "abcdef")
    assert len(name) <= 57
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)


@pytest.mark.parametrize("the_spec", [spec(), RENKU_LIKE])
def test_manifests_are_valid_kubernetes(the_spec: GlobalEnvironmentSpec) -> None:
    kubernetes_validate.validate(build(the_spec), K8S_VERSION, strict=True)
    kubernetes_validate.validate(probe(the_spec), K8S_VERSION, strict=True)


# --- the probe pod ---


def probe(the_spec: GlobalEnvironmentSpec | None = None) -> dict[str, Any]:
    return build_probe_pod(
        name="smoke-jupyter-1-probe",
        namespace="envs",
        owner=OWNER,
        spec=the_spec or RENKU_LIKE,
        image=IMAGE,
        image_workdir=None,
        settings=Settings(),
        labels={"renku.io/smoke-role": "probe"},
        timeout_seconds=120,
    )


def test_probe_pod_runs_like_the_session() -> None:
    pod = probe()
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["securityContext"] == {"fsGroup": 100}
    mounted, shipped = pod["spec"]["containers"]
    for container in (mounted, shipped):
        assert container["image"] == IMAGE
        assert container["command"][:2] == ["/bin/sh", "-c"]
        assert container["securityContext"]["runAsUser"] == 1000
        assert container["securityContext"]["runAsGroup"] == 100
    assert mounted["workingDir"] == "/home/renku/work/project"
    assert mounted["volumeMounts"] == [{"name": "workspace", "mountPath": "/home/renku/work"}]
    # The other container sees what the image itself has under the mount directory.
    assert "volumeMounts" not in shipped
    variables = {e["name"]: e["value"] for e in mounted["env"]}
    assert variables["PROBE_MOUNT"] == "/home/renku/work"
    assert variables["PROBE_WORK"] == "/home/renku/work/project"


def test_parse_probe_log_of_a_good_image() -> None:
    log = (
        "some noise the image printed\n"
        "renku-probe user 1000 100 1000 100\n"
        "renku-probe mount writable /home/renku/work\n"
        "renku-probe workdir writable /home/renku/work/project\n"
        "renku-probe done mounted\n"
        "renku-probe shipped-count 0 /home/renku/work\n"
        "renku-probe done image\n"
    )
    checks = {c.name: c for c in parse_probe_log(log)}
    assert {name: c.result for name, c in checks.items()} == {
        "User": "Passed",
        "MountWritable": "Passed",
        "WorkingDirectory": "Passed",
        "HiddenFiles": "Passed",
    }


def test_parse_probe_log_of_a_bad_image() -> None:
    log = (
        "renku-probe user 1000 1000 1000 100\n"
        "renku-probe mount readonly /home/renku/work\n"
        "renku-probe workdir readonly /home/renku/work/project\n"
        "renku-probe shipped .bashrc\n"
        "renku-probe shipped my notes.txt\n"
        "renku-probe shipped-count 2 /home/renku/work\n"
    )
    checks = {c.name: c for c in parse_probe_log(log)}
    assert checks["User"].result == "Failed"
    assert "gid 1000 instead of uid 1000, gid 100" in checks["User"].message
    assert checks["MountWritable"].result == "Failed"
    assert checks["WorkingDirectory"].result == "Warning"
    assert checks["HiddenFiles"].result == "Warning"
    assert ".bashrc, my notes.txt" in checks["HiddenFiles"].message


def test_parse_probe_log_ignores_truncated_lines() -> None:
    assert parse_probe_log("renku-probe user 1000\nrenku-probe mount\nrenku-probe\n") == []


def terminated(exit_code: int = 0, **extra: Any) -> dict[str, Any]:
    return {"terminated": {"exitCode": exit_code, "reason": "Completed", **extra}}


def probe_pod(mounted: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": {
            "containerStatuses": [
                {"name": "mounted", "state": mounted},
                {"name": "image", "state": image},
            ]
        }
    }


def test_probe_checks_wait_for_both_containers() -> None:
    running = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    assert probe_checks(probe_pod(terminated(), running), {"mounted": ""}) is None
    assert probe_checks({"status": {}}, {}) is None


def test_probe_checks_of_finished_containers() -> None:
    logs = {
        "mounted": "renku-probe user 1000 100 1000 100\nrenku-probe mount writable /w\n",
        "image": "renku-probe shipped-count 0 /w\n",
    }
    checks = probe_checks(probe_pod(terminated(), terminated()), logs)
    assert checks is not None
    results = {c.name: c.result for c in checks}
    # The working directory line is missing: that check is skipped, not passed.
    assert results == {
        "User": "Passed",
        "MountWritable": "Passed",
        "HiddenFiles": "Passed",
        "WorkingDirectory": "Skipped",
    }


NO_SHELL_CONTAINERD = (
    "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
    'runc create failed: unable to start container process: exec: "/bin/sh": stat /bin/sh: '
    "no such file or directory: unknown"
)
NO_SHELL_DOCKER = (
    "OCI runtime create failed: container_linux.go:380: starting container process caused: "
    'exec: "/bin/sh": stat /bin/sh: no such file or directory: unknown'
)


@pytest.mark.parametrize(
    "state",
    [
        terminated(128, reason="StartError", message=NO_SHELL_CONTAINERD),
        terminated(127, reason="ContainerCannotRun", message=NO_SHELL_DOCKER),
        {"waiting": {"reason": "RunContainerError", "message": NO_SHELL_CONTAINERD}},
    ],
)
def test_no_shell_is_skipped_never_failed(state: dict[str, Any]) -> None:
    checks = probe_checks(probe_pod(state, state), {})
    assert checks is not None
    assert {c.result for c in checks} == {"Skipped"}
    assert {c.name for c in checks} == {"User", "MountWritable", "WorkingDirectory", "HiddenFiles"}
    assert all(c.message.startswith("no shell") for c in checks)


def test_probe_that_crashed_is_skipped_with_its_exit_code() -> None:
    checks = probe_checks(probe_pod(terminated(2), terminated(2)), {"mounted": "", "image": ""})
    assert checks is not None
    assert {c.result for c in checks} == {"Skipped"}
    assert "exited with code 2" in checks[0].message


def test_probe_containers_have_the_ephemeral_storage_bounds() -> None:
    for container in probe()["spec"]["containers"]:
        resources = container["resources"]
        assert resources["requests"]["ephemeral-storage"] == "100Mi"
        assert resources["limits"]["ephemeral-storage"] == "1Gi"
