"""Writes to GlobalEnvironment status: the one path every status change takes (the object's
owner calls it, services/owner.py); kopf itself never writes status for this operator."""

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

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> str | None:
        """Merge-patch the status; returns the resourceVersion the write produced."""
        try:
            written = await asyncio.to_thread(
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
        except Exception as exc:  # connection errors of urllib3 and the like
            raise StatusWriteError(
                f"cannot write status of {namespace}/{name}: {type(exc).__name__}: {exc}"
            ) from None
        metadata = written.get("metadata") if isinstance(written, dict) else None
        version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        return str(version) if version is not None else None
