"""The installed `renku-env-operator` console script, run as an admin would run it.

`COMMAND` is the script beside this interpreter (None when the package is not installed, and
tests that need it skip). `command_env` is this process's environment without any operator
setting or in-cluster hint, so only what a test sets applies. `running` starts `run`, and
stops it with SIGTERM when the block ends: it must exit 0 (else its log's tail is shown).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from renku_env_operator.config import ENV_PREFIX

COMMAND = shutil.which("renku-env-operator", path=str(Path(sys.executable).parent))
needs_command = pytest.mark.skipif(COMMAND is None, reason="the console script is not installed")


def command_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    return env | extra


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`renku-env-operator ARGS` to its end (60 s at most): exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        str(COMMAND),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def running(
    env: dict[str, str], log_path: Path, *args: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`renku-env-operator run ARGS`, its output in `log_path`, until the block ends."""
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(COMMAND), "run", *args, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), timeout=30)
    assert code == 0, log_path.read_text()[-3000:]
