"""The operator's ownership records (GlobalEnvironmentClaims) on the emulated API server.

``claims`` is the real ``ClaimsClient`` against the ``kube`` fixture's emulator, in the
operator's namespace of the tests; ``stored_claims`` reads what the API server holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio

from renku_env_operator.clients.claims import ClaimsClient
from renku_env_operator.clients.kube import KubeClient
from tests.support.kube import CLAIMS, Kube

NAMESPACE = "renku"


@pytest_asyncio.fixture
async def claims(kube: Kube) -> AsyncIterator[ClaimsClient]:
    client = KubeClient.from_environment(str(kube.kubeconfig_path))
    yield ClaimsClient(client, NAMESPACE)
    await client.close()


def stored_claims(kube: Kube, kind: str | None = None) -> dict[str, dict[str, Any]]:
    """Claims by name, as the API server holds them (``kind``: env, attempt or era)."""
    found = {}
    for (resource, namespace, name), stored in kube.emulator.objects.items():
        if resource != CLAIMS or stored.deleted or namespace != NAMESPACE:
            continue
        raw = stored.raw
        if kind is None or raw["metadata"].get("labels", {}).get("renku.io/claim") == kind:
            found[name] = raw
    return found


async def age_attempt(kube: Kube, owner_uid: str, minutes: int = 60) -> None:
    """Move a recorded create attempt into the past (as if recorded ``minutes`` ago)."""
    old = datetime.now(UTC) - timedelta(minutes=minutes)
    started = old.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch = {"spec": {"createAttempt": {"startedAt": started}}}
    await kube.patch(CLAIMS, NAMESPACE, f"attempt-{owner_uid}", patch)
