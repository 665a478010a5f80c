"""Two operator processes against one API server and one Renku, as in a rolling update (two
standalone replicas for a moment): a create still in flight in one is never repeated by the
other, and the object ends with exactly one environment in Renku."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.support.console import command_env, needs_command, running
from tests.support.kube import GENV, Kube
from tests.support.operator_fixtures import ENVS, NAMESPACE, NO_SMOKE, genv, has_condition
from tests.support.renku_double import RenkuDouble

pytestmark = needs_command
# Long enough that the attempt of the stalled POST is still young when the second process has
# started and looked (its budget: timeout x attempts + backoff, plus the clock skew).
RENKU_TIMEOUT = 20.0


def second_operator_env(tmp_path: Path, kubeconfig: Path, renku: RenkuDouble) -> dict[str, str]:
    env = command_env(HOME=str(tmp_path), KUBECONFIG=str(kubeconfig), POD_NAMESPACE=NAMESPACE)
    settings = {
        "OPERATOR_NAMESPACE": NAMESPACE,
        "TRUSTED_NAMESPACES": NAMESPACE,
        "METRICS_PORT": "0",
        "IMAGE_CHECKS": "false",
        "RENKU_URL": renku.url,
        "RENKU_TOKEN": renku.admin_token,
        "RENKU_RETRY_ATTEMPTS": "1",
        "RENKU_TIMEOUT_SECONDS": str(RENKU_TIMEOUT),
        "RETRY_BACKOFF_SECONDS": "0.3",
        "DRIFT_INTERVAL_SECONDS": "600",
    }
    env |= {f"RENKU_ENV_OPERATOR_{key}": value for key, value in settings.items()}
    return env


async def test_a_create_in_flight_in_one_operator_is_not_repeated_by_another(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any, tmp_path: Path
) -> None:
    renku_double.stall_next_request("POST")
    await start_operator(renku_timeout_seconds=RENKU_TIMEOUT, retry_backoff_seconds=0.3)
    await kube.create(genv("twice", smokeTest=NO_SMOKE))
    # The first operator's POST is on its way (held by the double before it is carried out).
    await asyncio.to_thread(renku_double.stalled.wait, 10)
    assert renku_double.stalled.is_set()

    env = second_operator_env(tmp_path, kube.kubeconfig_path, renku_double)
    async with running(env, tmp_path / "second.log", "-n", NAMESPACE, "--liveness", ""):
        # The second operator sees the young attempt: it says so, and sends nothing.
        await kube.wait_for(
            GENV,
            NAMESPACE,
            "twice",
            has_condition("Synced", "Unknown", "CreateInFlight"),
            timeout=RENKU_TIMEOUT / 2,
        )
        assert renku_double.count("POST", ENVS) == 0

        renku_double.release_hung()
        await renku_double.wait_until_async(lambda d: len(d.environments) == 1, timeout=10)
        created = next(iter(renku_double.environments))
        ready = await kube.wait_for(
            GENV,
            NAMESPACE,
            "twice",
            lambda o: (
                o.get("status", {}).get("renkuId") == created and has_condition("Synced", "True")(o)
            ),
            timeout=20,
        )
        assert ready["status"]["renkuId"] == created
        # An edit wakes both operators: both converge on the one environment, neither creates.
        await kube.patch(GENV, NAMESPACE, "twice", {"spec": {"description": "edited"}})
        await renku_double.wait_until_async(
            lambda d: d.environments[created].get("description") == "edited", timeout=15
        )
        await kube.wait_for(
            GENV,
            NAMESPACE,
            "twice",
            lambda o: (
                o.get("status", {}).get("observedGeneration") == 2
                and has_condition("Synced", "True")(o)
            ),
            timeout=15,
        )
        assert list(renku_double.environments) == [created]
        assert renku_double.count("POST", ENVS) == 1
