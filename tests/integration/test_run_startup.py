"""`renku-env-operator run` start-up failures, as the installed console script meets them.

Each failure ends the process with exit 1 and ONE line on stderr that says what is wrong and
what to do: no traceback, no "coroutine ... was never awaited". An unreachable Renku is not a
start-up failure: the operator starts and reports it per object (RenkuUnavailable).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import kmock
import pytest

from tests.support.console import COMMAND, command_env, needs_command, running
from tests.support.kube import CLAIMS, GENV, Kube, write_kubeconfig
from tests.support.operator_fixtures import NAMESPACE, NO_SMOKE, genv, has_condition
from tests.support.renku_double import RenkuDouble

pytestmark = needs_command


def environment(tmp_path: Path, kubeconfig: Path | None, **settings: str) -> dict[str, str]:
    env = command_env()
    env["HOME"] = str(tmp_path)  # no ~/.kube/config to fall back on
    env["KUBECONFIG"] = str(kubeconfig or tmp_path / "no-such-kubeconfig")
    env["POD_NAMESPACE"] = NAMESPACE
    env["RENKU_ENV_OPERATOR_IMAGE_CHECKS"] = "false"
    env["RENKU_ENV_OPERATOR_METRICS_PORT"] = "0"
    env.update({f"RENKU_ENV_OPERATOR_{k.upper()}": v for k, v in settings.items()})
    return env


async def failed_start(env: dict[str, str], *args: str) -> str:
    """Run the command to its end; assert exit 1 and one line on stderr; return that line."""
    process = await asyncio.create_subprocess_exec(
        str(COMMAND),
        "run",
        "--liveness",
        "",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    text = err.decode()
    assert process.returncode == 1, text
    assert out == b""
    assert text.count("\n") == 1, text
    assert text.startswith("error: cannot start: ")
    assert "Traceback" not in text
    assert "never awaited" not in text
    return text.strip()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_no_kubernetes_configuration(tmp_path: Path) -> None:
    line = await failed_start(environment(tmp_path, None))
    assert "no usable Kubernetes configuration" in line
    assert line.endswith(
        "set KUBECONFIG to a kubeconfig file, or run in a pod with a ServiceAccount"
    )


async def test_api_server_unreachable(tmp_path: Path) -> None:
    server = f"http://127.0.0.1:{closed_port()}"
    config = write_kubeconfig(tmp_path / "kubeconfig", server)
    line = await failed_start(environment(tmp_path, config))
    assert line == (
        f"error: cannot start: cannot reach the Kubernetes API server at {server} ([Errno 111] "
        "Connection refused): check the kubeconfig's server address and the network"
    )


async def test_crd_not_installed(kube: Kube, tmp_path: Path) -> None:
    del kube.emulator.resources[GENV]
    line = await failed_start(environment(tmp_path, kube.kubeconfig_path), "-n", NAMESPACE)
    assert (
        "the GlobalEnvironment CRD (globalenvironments.renku.io, v1alpha1) is not installed" in line
    )
    assert "kubectl apply -f crds/globalenvironments.renku.io.yaml" in line


async def test_ownership_record_crd_not_installed(
    kube: Kube, renku_double: RenkuDouble, tmp_path: Path
) -> None:
    del kube.emulator.resources[CLAIMS]
    env = environment(tmp_path, kube.kubeconfig_path, renku_url=renku_double.url)
    line = await failed_start(env, "-n", NAMESPACE)
    assert "the ownership-record CRD (globalenvironmentclaims.renku.io, v1alpha1)" in line
    assert "kubectl apply -f crds/globalenvironmentclaims.renku.io.yaml" in line


async def test_no_permission_on_ownership_records(
    kube: Kube, renku_double: RenkuDouble, tmp_path: Path
) -> None:
    kube.emulator["list", kmock.resource(CLAIMS)] << 403
    env = environment(tmp_path, kube.kubeconfig_path, renku_url=renku_double.url)
    line = await failed_start(env, "-n", NAMESPACE)
    assert f"cannot list globalenvironmentclaims.renku.io in namespace {NAMESPACE}" in line
    assert "get, list, create, patch and delete" in line


async def test_no_permission_to_list_global_environments(kube: Kube, tmp_path: Path) -> None:
    kube.emulator["list", kmock.resource(GENV)] << 403
    line = await failed_start(environment(tmp_path, kube.kubeconfig_path), "-n", NAMESPACE)
    assert f"no permission to list globalenvironments.renku.io in namespace {NAMESPACE}" in line
    assert "grant the operator's ServiceAccount get, list, watch and patch on it" in line


async def test_no_permission_to_watch_global_environments(kube: Kube, tmp_path: Path) -> None:
    # The authorizer's answer, as a cluster gives it to a ServiceAccount with list only.
    reviews = kmock.resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews")
    kube.emulator["create", reviews] << {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "watch", "resource": "globalenvironments"}},
        "status": {"allowed": False},
    }
    line = await failed_start(environment(tmp_path, kube.kubeconfig_path), "-n", NAMESPACE)
    assert line.startswith(
        "error: cannot start: no permission to watch globalenvironments.renku.io in namespace "
        f"{NAMESPACE}: grant the operator's ServiceAccount get, list, watch and patch on it"
    )


async def test_no_permission_cluster_wide(kube: Kube, tmp_path: Path) -> None:
    kube.emulator["list", kmock.resource(GENV)] << 403
    line = await failed_start(environment(tmp_path, kube.kubeconfig_path))
    assert "no permission to list globalenvironments.renku.io cluster-wide" in line


async def test_credentials_secret_missing(
    kube: Kube, renku_double: RenkuDouble, tmp_path: Path
) -> None:
    env = environment(
        tmp_path,
        kube.kubeconfig_path,
        renku_url=renku_double.url,
        renku_credentials_secret="renku-admin",
    )
    line = await failed_start(env, "-n", NAMESPACE)
    assert line == (
        f"error: cannot start: the Renku credentials Secret {NAMESPACE}/renku-admin does not "
        "exist: create it (key 'token', or 'clientId', 'clientSecret' and 'tokenUrl') or point "
        "RENKU_ENV_OPERATOR_RENKU_CREDENTIALS_SECRET at the right one"
    )


async def test_no_permission_to_read_the_credentials_secret(
    kube: Kube, renku_double: RenkuDouble, tmp_path: Path
) -> None:
    kube.emulator["get", kmock.resource("", "v1", "secrets")] << 403
    env = environment(
        tmp_path,
        kube.kubeconfig_path,
        renku_url=renku_double.url,
        renku_credentials_secret="renku-admin",
    )
    line = await failed_start(env, "-n", NAMESPACE)
    assert f"no permission to read the Renku credentials Secret {NAMESPACE}/renku-admin" in line


async def test_renku_unreachable_at_start_is_reported_per_object_not_fatal(
    kube: Kube, tmp_path: Path
) -> None:
    renku = f"http://127.0.0.1:{closed_port()}/api/data"
    env = environment(
        tmp_path,
        kube.kubeconfig_path,
        renku_url=renku,
        renku_token='{"id":"admin1","is_admin":true}',
        renku_retry_attempts="1",
    )
    async with running(
        env, tmp_path / "operator.log", "-n", NAMESPACE, "--liveness", ""
    ) as process:
        await kube.wait_watching(GENV, NAMESPACE, timeout=30)
        await kube.create(genv("offline", smokeTest=NO_SMOKE))
        await kube.wait_for(
            GENV,
            NAMESPACE,
            "offline",
            has_condition("Synced", "False", "RenkuUnavailable"),
            timeout=30,
        )
        assert process.returncode is None  # still running


async def test_a_start_up_handler_failure_kopf_meets_is_one_message_too(
    kube: Kube, kube_env: Path, renku_double: RenkuDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pre-flight normally catches this; should the Secret vanish between the pre-flight
    # and kopf's start-up handler, run_operator still ends with one StartupError.
    from renku_env_operator import runner
    from tests.support.operator_fixtures import test_settings
    from tests.support.operator_runner import configure_for_emulator

    async def passes(config: object) -> None:
        return None

    monkeypatch.setattr(runner, "preflight", passes)
    settings = test_settings(renku_double, renku_token=None, renku_credentials_secret="renku-admin")

    with pytest.raises(runner.StartupError) as failed:
        await asyncio.wait_for(
            asyncio.to_thread(runner.run_operator, settings, tune=configure_for_emulator),
            timeout=60,
        )

    assert str(failed.value) == (
        f"the Renku credentials Secret {NAMESPACE}/renku-admin does not exist: create it (key "
        "'token', or 'clientId', 'clientSecret' and 'tokenUrl') or point "
        "RENKU_ENV_OPERATOR_RENKU_CREDENTIALS_SECRET at the right one"
    )
