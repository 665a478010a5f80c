"""Writes to GlobalEnvironment status: the one path every status change takes (the object's
owner calls it, services/owner.py); kopf itself never writes status for this operator."""

from __future__ import annotations

from typing import Any

from ..api import crd
from .kube import MERGE_PATCH, KubeClient, KubeError, custom_path


class StatusWriteError(Exception):
    """The status could not be written; nothing was sent to Renku."""


class GlobalEnvironmentStatusWriter:
    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> str | None:
        """Merge-patch the status; returns the resourceVersion the write produced."""
        path = custom_path(crd.GROUP, crd.VERSION, crd.PLURAL, namespace, name) + "/status"
        try:
            written = await self._kube.request(
                "PATCH", path, body={"status": status}, content_type=MERGE_PATCH
            )
        except KubeError as exc:
            where = f"{exc.status} " if exc.status else ""
            raise StatusWriteError(
                f"cannot write status of {namespace}/{name}: {where}{exc}"
            ) from None
        metadata = written.get("metadata")
        version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        return str(version) if version is not None else None


async def list_globalenvironments(
    kube: KubeClient, namespaces: list[str], *, page: int = 500
) -> list[dict[str, Any]]:
    """Every GlobalEnvironment in `namespaces` (all namespaces when empty), page by page."""
    found: list[dict[str, Any]] = []
    scopes: list[str | None] = [*namespaces] or [None]
    for namespace in scopes:
        path = custom_path(crd.GROUP, crd.VERSION, crd.PLURAL, namespace)
        query = {"limit": str(page)}
        while True:
            answer = await kube.request("GET", path, query=query)
            found += [item for item in answer.get("items") or [] if isinstance(item, dict)]
            token = (answer.get("metadata") or {}).get("continue")
            if not token:
                break
            query = {"limit": str(page), "continue": str(token)}
    return found


class GlobalEnvironmentReader:
    """Reads of GlobalEnvironments themselves, straight from the API server (not kopf's view):
    whether an object still exists decides whether its claims may be collected."""

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as the API server holds it now; None when there is none."""
        path = custom_path(crd.GROUP, crd.VERSION, crd.PLURAL, namespace, name)
        try:
            return await self._kube.request("GET", path)
        except KubeError as exc:
            # Only the API server's "this object is not found" means gone: a 404 for the
            # resource itself (a CRD version not served, a proxy's page) must never let the
            # claims' collection retire what may still exist.
            if exc.status == 404 and exc.reason == "NotFound" and f'"{name}" not found' in str(exc):
                return None
            raise

    async def uid(self, namespace: str, name: str) -> str | None:
        """The uid of the object at namespace/name now (None: there is none)."""
        found = await self.get(namespace, name)
        uid = ((found or {}).get("metadata") or {}).get("uid")
        return str(uid) if uid else None

    async def uids(self, namespace: str) -> set[str]:
        """The uids of every GlobalEnvironment in a namespace (a list: it may lag)."""
        path = custom_path(crd.GROUP, crd.VERSION, crd.PLURAL, namespace)
        listed = await self._kube.request("GET", path)
        return {
            str((item.get("metadata") or {}).get("uid"))
            for item in listed.get("items") or []
            if isinstance(item, dict)
        }
