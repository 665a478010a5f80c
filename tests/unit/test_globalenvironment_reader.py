"""Whether a GlobalEnvironment is gone decides whether its claims are collected: only the API
server's own "not found" for that object counts, never another 404."""

from __future__ import annotations

from typing import Any

import pytest

from renku_env_operator.clients.globalenvironments import GlobalEnvironmentReader
from renku_env_operator.clients.kube import KubeError, KubeNotFoundError


class Answering:
    """A Kubernetes client whose every request raises `error`."""

    def __init__(self, error: KubeError) -> None:
        self.error = error

    async def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        raise self.error


def reader(error: KubeError) -> GlobalEnvironmentReader:
    return GlobalEnvironmentReader(Answering(error))  # type: ignore[arg-type]


async def test_the_objects_own_not_found_means_gone() -> None:
    gone = KubeNotFoundError(
        'Kubernetes API: globalenvironments.renku.io "python" not found',
        status=404,
        reason="NotFound",
    )
    assert await reader(gone).get("renku", "python") is None


@pytest.mark.parametrize(
    "error",
    [
        # The resource is not served (a CRD version turned off, an API group missing).
        KubeNotFoundError(
            "Kubernetes API: the server could not find the requested resource",
            status=404,
            reason="NotFound",
        ),
        # A proxy or load balancer in front of the API server answered.
        KubeNotFoundError("Kubernetes API: 404 page not found", status=404, reason=None),
        # Another object's name.
        KubeNotFoundError(
            'Kubernetes API: globalenvironments.renku.io "other" not found',
            status=404,
            reason="NotFound",
        ),
    ],
)
async def test_any_other_404_is_an_error_not_gone(error: KubeError) -> None:
    with pytest.raises(KubeError):
        await reader(error).get("renku", "python")
