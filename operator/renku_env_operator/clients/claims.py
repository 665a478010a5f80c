"""GlobalEnvironmentClaims in the operator's own namespace: create (atomic), read, update, delete.

Only the operator writes there. A create is a POST, so a name can be taken only once: the API
server answers 409 to the second, whoever sends it (another replica, a restarted operator).
Updates and deletes carry the resourceVersion they were decided on (409 if it moved).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api import claim
from ..api.crd import GROUP, VERSION
from .kube import MERGE_PATCH, KubeClient, KubeError, custom_path


class ClaimError(Exception):
    """A claim could not be read or written; the message names the operator's rights."""


class ClaimConflictError(ClaimError):
    """409: the claim exists already (create), or changed since it was read."""


class ClaimsClient:
    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self._kube = kube
        self.namespace = namespace

    async def create(
        self, name: str, spec: Mapping[str, Any], labels: Mapping[str, str]
    ) -> dict[str, Any]:
        """Create a claim; ClaimConflictError when the name is taken."""
        body = {
            "apiVersion": claim.API_VERSION,
            "kind": claim.KIND,
            "metadata": {"name": name, "namespace": self.namespace, "labels": dict(labels)},
            "spec": dict(spec),
        }
        return await self._run("create", name, "POST", self._path(), body=body)

    async def get(self, name: str) -> dict[str, Any] | None:
        """The claim, or None when there is none."""
        try:
            return await self._run("get", name, "GET", self._path(name))
        except _NotFoundError:
            return None

    async def update(
        self,
        name: str,
        spec: Mapping[str, Any],
        resource_version: str,
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Replace a claim's spec (and set `labels`), if it is still at `resource_version`
        (else 409)."""
        metadata: dict[str, Any] = {"resourceVersion": resource_version}
        if labels:
            metadata["labels"] = dict(labels)
        body = {"metadata": metadata, "spec": dict(spec)}
        return await self._run("update", name, "PATCH", self._path(name), body=body, patch=True)

    async def delete(self, name: str, resource_version: str | None = None) -> None:
        """Delete a claim (if still at `resource_version`); one already gone is fine."""
        body = (
            {"preconditions": {"resourceVersion": resource_version}} if resource_version else None
        )
        try:
            await self._run("delete", name, "DELETE", self._path(name), body=body)
        except _NotFoundError:
            return

    async def list(self, label_selector: str) -> list[dict[str, Any]]:
        """Claims matching a label selector."""
        result = await self._run(
            "list", label_selector, "GET", self._path(), query={"labelSelector": label_selector}
        )
        return list(result.get("items") or [])

    def _path(self, name: str | None = None) -> str:
        return custom_path(GROUP, VERSION, claim.PLURAL, self.namespace, name)

    async def _run(
        self,
        verb: str,
        name: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        patch: bool = False,
    ) -> dict[str, Any]:
        try:
            return await self._kube.request(
                method, path, query=query, body=body, content_type=MERGE_PATCH if patch else None
            )
        except KubeError as exc:
            raise self._translated(verb, name, exc) from None

    def _translated(self, verb: str, name: str, exc: KubeError) -> ClaimError:
        where = f"{claim.PLURAL} {self.namespace}/{name}"
        if exc.status is None:
            return ClaimError(f"cannot {verb} {where}: {exc}")  # unreachable, says how
        if exc.status == 404 and verb in ("get", "delete"):
            return _NotFoundError(where)
        if exc.status == 409:
            return ClaimConflictError(f"{where} exists already or changed meanwhile")
        hint = ""
        if exc.status in (401, 403):
            hint = (
                f": the operator needs get, list, create, patch and delete on {claim.PLURAL} "
                f"in its namespace {self.namespace}"
            )
        elif exc.status == 404:
            hint = f": is the {claim.CRD_NAME} CRD installed?"
        return ClaimError(f"cannot {verb} {where}: {exc.status} {exc}{hint}")


class _NotFoundError(ClaimError):
    pass
