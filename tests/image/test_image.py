"""The built container image, run with podman the way a cluster runs it.

Read-only root filesystem, a tmpfs on /tmp (the chart's emptyDir), the chart's user 10001, no
network unless the check needs one. `.ci/image.sh` builds the image from the Dockerfile and runs
these tests with OPERATOR_IMAGE set; without it (or without podman) they are skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import httpx
import kmock
import pytest

from renku_env_operator.domain.smokepod import GLOBAL_ENVIRONMENT, ROLE
from tests.support.kube import GENV, PODS, Kube
from tests.support.kubelet import Kubelet
from tests.support.operator_fixtures import NAMESPACE, condition, genv, has_condition
from tests.support.renku_double import RenkuDouble

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("OPERATOR_IMAGE", "")
PODMAN = shutil.which("podman")
# What a cluster does to the operator's pod (templates/deployment.yaml).
SMOKE_NAMESPACE = f"{NAMESPACE}-smoke"  # as the chart sets it
PROBE_LOG = "\n".join(
    [
        "renku-probe user 1000 1000 1000 1000",
        "renku-probe mount writable /home/renku/work",
        "renku-probe workdir writable /home/renku/work",
        "renku-probe shipped-count 0 /home/renku/work",
    ]
)
AS_A_CLUSTER = ["--rm", "--read-only", "--tmpfs", "/tmp:rw,size=64m", "--user", "10001:10001"]

pytestmark = pytest.mark.skipif(
    not IMAGE or PODMAN is None, reason="set OPERATOR_IMAGE (and install podman): .ci/image.sh"
)


def podman_run(*args: str, volumes: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    assert PODMAN is not None
    mounts = [f"--volume={v}" for v in volumes]
    command = [PODMAN, "run", *AS_A_CLUSTER, "--network=none", *mounts, IMAGE, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_help_lists_the_commands() -> None:
    result = podman_run("--help")
    assert result.returncode == 0, result.stderr
    for command in ("run", "validate", "crd"):
        assert f"  {command} " in result.stdout, result.stdout


def test_crd_is_byte_for_byte_the_repositorys() -> None:
    crd_files = sorted((ROOT / "crds").glob("*.yaml"))
    commands = {
        "globalenvironments.renku.io.yaml": ("crd",),
        "globalenvironmentclaims.renku.io.yaml": ("crd", "--claims"),
    }
    assert sorted(f.name for f in crd_files) == sorted(commands)
    for name, args in commands.items():
        result = podman_run(*args)
        assert result.returncode == 0, result.stderr
        assert result.stdout == (ROOT / "crds" / name).read_text(), name
        chart_copy = ROOT / "helm/renku-env-operator/files" / name
        assert result.stdout == chart_copy.read_text(), name


def test_validate_accepts_the_examples_and_names_what_is_wrong() -> None:
    examples = f"{ROOT / 'examples'}:/examples:ro"
    result = podman_run("validate", "/examples", volumes=(examples,))
    assert result.returncode == 0, result.stdout + result.stderr

    invalid = ROOT / "tests/corpus/invalid/image-empty.yaml"
    result = podman_run("validate", "/in/bad.yaml", volumes=(f"{invalid}:/in/bad.yaml:ro",))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "image" in result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_run_reconciles_until_ready_and_stops_cleanly_on_sigterm(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, tmp_path: Path
) -> None:
    assert PODMAN is not None
    # The container user is not root: the kubeconfig must be readable by anyone (a copy).
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kube.kubeconfig_path.read_text())
    kubeconfig.chmod(0o644)
    liveness = free_port()
    name = f"renku-env-operator-test-{uuid.uuid4().hex[:8]}"
    env = {
        "KUBECONFIG": "/etc/kube/config",
        "POD_NAMESPACE": NAMESPACE,
        "RENKU_ENV_OPERATOR_RENKU_URL": renku_double.url,
        "RENKU_ENV_OPERATOR_RENKU_TOKEN": renku_double.admin_token,
        "RENKU_ENV_OPERATOR_NAMESPACES": NAMESPACE,
        "RENKU_ENV_OPERATOR_SMOKE_NAMESPACE": SMOKE_NAMESPACE,
        "RENKU_ENV_OPERATOR_IMAGE_CHECKS": "false",
        "RENKU_ENV_OPERATOR_METRICS_PORT": "0",
        "RENKU_ENV_OPERATOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{liveness}/healthz",
    }
    command = [
        PODMAN,
        "run",
        *AS_A_CLUSTER,
        f"--name={name}",
        # The emulator and the Renku double listen on the host's loopback.
        "--network=host",
        f"--volume={kubeconfig}:/etc/kube/config:ro",
        *[f"--env={key}={value}" for key, value in env.items()],
        IMAGE,
        "run",
    ]
    log_path = tmp_path / "operator.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
        try:
            await kube.wait_watching(GENV, NAMESPACE, timeout=60)
            await kube.create(genv("from-image", smokeTest={"enabled": False}))

            ready = await kube.wait_for(
                GENV, NAMESPACE, "from-image", has_condition("Ready", "True"), timeout=60
            )

            synced = condition(ready, "Synced")
            assert synced is not None
            assert synced["reason"] == "Created"
            assert ready["status"]["renkuId"] in renku_double.environments

            # A smoke test: the kubernetes client's pods, logs and pod proxy, from the trimmed venv.
            labels = {GLOBAL_ENVIRONMENT: "smoke-tested"}
            kubelet.plan({ROLE: "session", **labels}, kubelet.scenario("ready", port=8888))
            kubelet.plan({ROLE: "probe", **labels}, kubelet.scenario("completed", log=PROBE_LOG))
            smoke = {"timeoutSeconds": 30, "stableSeconds": 0}
            await kube.create(
                {
                    **genv("smoke-tested"),
                    "spec": {
                        "image": "ghcr.io/example/env:1.0.0",
                        "port": 8888,
                        "defaultUrl": "/",
                        "workingDirectory": "/home/renku/work",
                        "mountDirectory": "/home/renku/work",
                        "smokeTest": smoke,
                    },
                }
            )
            tested = await kube.wait_for(
                GENV, NAMESPACE, "smoke-tested", has_condition("Ready", "True"), timeout=60
            )
            assert tested["status"]["smokeTest"]["result"] == "Passed"
            checks = {c["name"]: c["result"] for c in tested["status"]["smokeTest"]["checks"]}
            assert checks, tested["status"]["smokeTest"]
            assert set(checks.values()) == {"Passed"}, checks
            # In the smoke namespace the chart gives it, never the operator's own (the pods
            # are gone once the test passed: count their creations).
            created = [r.namespace for r in kube.emulator[kmock.method.POST, kmock.resource(PODS)]]
            assert created
            assert set(created) == {SMOKE_NAMESPACE}, created
            # The chart's liveness probe would pass.
            async with httpx.AsyncClient() as client:
                health = await client.get(f"http://127.0.0.1:{liveness}/healthz", timeout=10)
            assert health.status_code == 200
        finally:
            if process.returncode is None:
                stop = await asyncio.create_subprocess_exec(
                    PODMAN, "kill", "--signal=TERM", name, stdout=asyncio.subprocess.DEVNULL
                )
                await stop.wait()
            code = await asyncio.wait_for(process.wait(), timeout=60)
    output = log_path.read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
