"""`renku-env-operator run`, the installed console command, as a process against the emulator."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.kube import GENV, Kube
from tests.support.operator_fixtures import NAMESPACE, condition, genv, has_condition
from tests.support.renku_double import RenkuDouble

COMMAND = shutil.which("renku-env-operator", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(COMMAND is None, reason="the console script is not installed in this venv")
async def test_the_run_command_starts_the_operator_and_stops_on_sigterm(
    kube: Kube, renku_double: RenkuDouble, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RENKU_ENV_OPERATOR_")},
        "KUBECONFIG": str(kube.kubeconfig_path),
        "POD_NAMESPACE": NAMESPACE,
        "RENKU_ENV_OPERATOR_RENKU_TOKEN": renku_double.admin_token,
        "RENKU_ENV_OPERATOR_IMAGE_CHECKS": "false",
        "RENKU_ENV_OPERATOR_METRICS_PORT": "0",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    args = ["run", "--namespace", NAMESPACE, "--renku-url", renku_double.url, "--liveness", ""]
    log = (tmp_path / "operator.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        str(COMMAND), *args, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
    )
    try:
        await kube.wait_watching(GENV, NAMESPACE, timeout=30)
        await kube.create(genv("from-cli", smokeTest={"enabled": False}))

        ready = await kube.wait_for(
            GENV, NAMESPACE, "from-cli", has_condition("Ready", "True"), timeout=30
        )

        synced = condition(ready, "Synced")
        assert synced is not None
        assert synced["reason"] == "Created"
        assert ready["status"]["renkuId"] in renku_double.environments
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
        log.close()
    assert code == 0, (tmp_path / "operator.log").read_text()[-3000:]


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
