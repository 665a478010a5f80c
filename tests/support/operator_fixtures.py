"""The real operator (`run_operator`), started against the emulator and the Renku double."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import pytest_asyncio

from renku_env_operator.config import Settings
from renku_env_operator.runner import run_operator
from tests.support.kube import GENV, Kube
from tests.support.operator_runner import OperatorThread, configure_for_emulator
from tests.support.renku_double import RenkuDouble

NAMESPACE = "renku"
ENVS = "/api/data/environments"  # the Renku double's environments collection
NO_SMOKE = {"enabled": False}


def test_settings(renku: RenkuDouble, **overrides: Any) -> Settings:
    """Settings for an operator under test: short intervals, no ports opened."""
    # Overrides may replace the Renku address too (renku_url=None: Renku not configured).
    return Settings(**{**operator_settings_values(renku.url, renku.admin_token), **overrides})


def operator_settings_values(renku_url: str, renku_token: str, **overrides: Any) -> dict[str, Any]:
    """The values of ``test_settings`` as plain data (the benchmark hands them to a process)."""
    values: dict[str, Any] = {
        "namespaces": [NAMESPACE],
        "operator_namespace": NAMESPACE,
        # Explicit: the tests' namespace may adopt and delete (tests of refusals override it).
        "trusted_namespaces": [NAMESPACE],
        "liveness_endpoint": None,
        "metrics_port": 0,
        "renku_url": renku_url,
        "renku_token": renku_token,
        "renku_retry_attempts": 1,
        "renku_timeout_seconds": 2.0,
        "retry_backoff_seconds": 0.2,
        "drift_interval_seconds": 600.0,
        "smoke_poll_seconds": 0.1,
        "image_checks": False,
    }
    values.update(overrides)
    return values


@dataclass
class RunningOperator:
    settings: Settings
    thread: OperatorThread


def genv(name: str, **spec: Any) -> dict[str, Any]:
    """A GlobalEnvironment manifest."""
    return {
        "apiVersion": "renku.io/v1alpha1",
        "kind": "GlobalEnvironment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"image": "ghcr.io/example/env:1.0.0", **spec},
    }


OperatorFactory = Callable[..., Any]


@pytest_asyncio.fixture
async def start_operator(
    kube: Kube, kube_env: Path, renku_double: RenkuDouble
) -> AsyncIterator[Callable[..., Any]]:
    """`await start_operator(**settings)` runs the operator until the test ends."""
    threads: list[OperatorThread] = []

    async def start(**overrides: Any) -> RunningOperator:
        settings = test_settings(renku_double, **overrides)

        def target(stop_flag: threading.Event, ready_flag: threading.Event) -> None:
            run_operator(
                settings, stop_flag=stop_flag, ready_flag=ready_flag, tune=configure_for_emulator
            )

        thread = OperatorThread(target)
        await thread.__aenter__()
        threads.append(thread)
        await kube.wait_watching(GENV, NAMESPACE)
        return RunningOperator(settings, thread)

    yield start
    for thread in reversed(threads):
        await thread.stop()


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    conditions = obj.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c.get("type") == type_), None)


def has_condition(
    type_: str, status: str, reason: str | None = None
) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        found = condition(obj, type_)
        return (
            found is not None
            and found["status"] == status
            and (reason is None or found["reason"] == reason)
        )

    return check


__all__ = [
    "ENVS",
    "NAMESPACE",
    "NO_SMOKE",
    "RunningOperator",
    "condition",
    "genv",
    "has_condition",
    "kopf",
    "start_operator",
    "synced_message",
]


def synced_message(obj: dict[str, Any]) -> str:
    """The Synced condition's message (the object must have one)."""
    found = condition(obj, "Synced")
    assert found is not None, obj.get("status")
    return str(found["message"])


def env_writes(renku: RenkuDouble) -> list[tuple[str, str]]:
    """(method, path) of every write to the environments API."""
    return [
        (r.method, r.path)
        for r in renku.requests
        if r.method in ("POST", "PATCH", "DELETE") and r.path.startswith(ENVS)
    ]


async def published(kube: Kube, name: str, **spec: Any) -> str:
    """Create a GlobalEnvironment without a smoke test, await Ready, return its Renku id."""
    await kube.create(genv(name, smokeTest=NO_SMOKE, **spec))
    obj = await kube.wait_for(GENV, NAMESPACE, name, has_condition("Ready", "True"))
    renku_id: str = obj["status"]["renkuId"]
    return renku_id
