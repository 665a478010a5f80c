"""`renku-env-operator run`, the installed console command, as a process against the emulator."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from tests.support.console import COMMAND, command_env, needs_command, running
from tests.support.kube import GENV, Kube
from tests.support.operator_fixtures import NAMESPACE, condition, genv, has_condition
from tests.support.renku_double import RenkuDouble


@needs_command
async def test_the_run_command_starts_the_operator_and_stops_on_sigterm(
    kube: Kube, renku_double: RenkuDouble, tmp_path: Path
) -> None:
    env = command_env(
        KUBECONFIG=str(kube.kubeconfig_path),
        POD_NAMESPACE=NAMESPACE,
        RENKU_ENV_OPERATOR_RENKU_TOKEN=renku_double.admin_token,
        RENKU_ENV_OPERATOR_IMAGE_CHECKS="false",
        RENKU_ENV_OPERATOR_METRICS_PORT="0",
    )
    args = ["--namespace", NAMESPACE, "--renku-url", renku_double.url, "--liveness", ""]
    async with running(env, tmp_path / "operator.log", *args):
        await kube.wait_watching(GENV, NAMESPACE, timeout=30)
        await kube.create(genv("from-cli", smokeTest={"enabled": False}))

        ready = await kube.wait_for(
            GENV, NAMESPACE, "from-cli", has_condition("Ready", "True"), timeout=30
        )

        synced = condition(ready, "Synced")
        assert synced is not None
        assert synced["reason"] == "Created"
        assert ready["status"]["renkuId"] in renku_double.environments


async def test_a_bad_setting_stops_the_run_command_with_its_name(tmp_path: Path) -> None:
    env: dict[str, Any] = {**os.environ, "RENKU_ENV_OPERATOR_SMOKE_MAX_CONCURRENT": "zero"}
    process = await asyncio.create_subprocess_exec(
        str(COMMAND),
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2
    assert b"RENKU_ENV_OPERATOR_SMOKE_MAX_CONCURRENT" in output
    assert b"Traceback" not in output
