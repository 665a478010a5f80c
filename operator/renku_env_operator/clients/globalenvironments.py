"""Direct writes to GlobalEnvironment status, for the few that cannot wait for kopf's patch.

A create in Renku must be recorded *before* the POST goes out (so that a lost answer can be
recovered instead of repeated); kopf applies a handler's patch only after the handler returns.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ..api import crd


class StatusWriteError(Exception):
    """The status could not be written; nothing was sent to Renku."""


class GlobalEnvironmentStatusWriter:
    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = client.CustomObjectsApi(api_client)

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(
                self._api.patch_namespaced_custom_object_status,
                crd.GROUP,
                crd.VERSION,
                namespace,
                crd.PLURAL,
                name,
                {"status": status},
            )
        except ApiException as exc:
            raise StatusWriteError(
                f"cannot write status of {namespace}/{name}: {exc.status} {exc.reason}"
            ) from None
