"""GlobalEnvironmentClaims in the operator's own namespace: create (atomic), read, update, delete.

Only the operator writes there. A create is a POST, so a name can be taken only once: the API
server answers 409 to the second, whoever sends it (another replica, a restarted operator).
Updates and deletes carry the resourceVersion they were decided on (409 if it moved).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ..api import claim
from ..api.crd import GROUP, VERSION

T = TypeVar("T")


class ClaimError(Exception):
    """A claim could not be read or written; the message names the operator's rights."""


class ClaimConflictError(ClaimError):
    """409: the claim exists already (create), or changed since it was read."""


class ClaimsClient:
    def __init__(
        self, api_client: client.ApiClient, namespace: str, *, request_timeout: float = 30.0
    ) -> None:
        self._api = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self._timeout = request_timeout

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
        return await self._run(
            "create",
            name,
            functools.partial(
                self._api.create_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                claim.PLURAL,
                body,
            ),
        )

    async def get(self, name: str) -> dict[str, Any] | None:
        """The claim, or None when there is none."""
        try:
            return await self._run(
                "get",
                name,
                functools.partial(
                    self._api.get_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    claim.PLURAL,
                    name,
                ),
            )
        except _NotFoundError:
            return None

    async def update(
        self, name: str, spec: Mapping[str, Any], resource_version: str
    ) -> dict[str, Any]:
        """Replace a claim's spec, if it is still at `resource_version` (else 409)."""
        body = {"metadata": {"resourceVersion": resource_version}, "spec": dict(spec)}
        return await self._run(
            "update",
            name,
            functools.partial(
                self._api.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                claim.PLURAL,
                name,
                body,
            ),
        )

    async def delete(self, name: str, resource_version: str | None = None) -> None:
        """Delete a claim (if still at `resource_version`); one already gone is fine."""
        preconditions = (
            client.V1Preconditions(resource_version=resource_version) if resource_version else None
        )
        try:
            await self._run(
                "delete",
                name,
                functools.partial(
                    self._api.delete_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    claim.PLURAL,
                    name,
                    body=client.V1DeleteOptions(preconditions=preconditions),
                ),
            )
        except _NotFoundError:
            return

    async def list(self, label_selector: str) -> list[dict[str, Any]]:
        """Claims matching a label selector."""
        result = await self._run(
            "list",
            label_selector,
            functools.partial(
                self._api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                claim.PLURAL,
                label_selector=label_selector,
            ),
        )
        return list(result.get("items") or [])

    async def _run(self, verb: str, name: str, call: Callable[..., T]) -> T:
        def run() -> T:
            try:
                return call(_request_timeout=self._timeout)
            except ApiException as exc:
                raise self._translated(verb, name, exc) from None
            except urllib3.exceptions.HTTPError as exc:
                raise ClaimError(
                    f"cannot {verb} {claim.PLURAL} {self.namespace}/{name}: "
                    f"Kubernetes API unreachable ({type(exc).__name__})"
                ) from None

        return await asyncio.to_thread(run)

    def _translated(self, verb: str, name: str, exc: ApiException) -> ClaimError:
        where = f"{claim.PLURAL} {self.namespace}/{name}"
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
        return ClaimError(f"cannot {verb} {where}: {exc.status} {exc.reason}{hint}")


class _NotFoundError(ClaimError):
    pass
