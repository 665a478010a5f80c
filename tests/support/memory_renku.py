"""An in-memory Renku client for unit tests of the publishing logic (no HTTP), and its fixture.

It keeps environments like CONTRACT.md says and logs every call, so tests can check what was
sent and in which order; `fail` injects the client's typed errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from renku_env_operator.clients.claims import ClaimsClient
from renku_env_operator.clients.renku import RenkuClient
from renku_env_operator.clients.renku_errors import (
    RenkuError,
    RenkuInUseError,
    RenkuNotFoundError,
)
from renku_env_operator.config import Settings
from renku_env_operator.services.objects import Objects
from renku_env_operator.services.ownership import Ownership
from renku_env_operator.services.publishing import Publisher
from renku_env_operator.services.renku_sync import RenkuSnapshot, RenkuSync
from tests.support.renku_double import new_ulid

# CONTRACT.md: the PATCH value that clears a field (null leaves the others unchanged).
CLEARED_BY = {"command": None, "args": None, "working_directory": "", "mount_directory": ""}


class MemoryRenku(RenkuClient):
    """Renku's environments in memory. `log` lists the calls (and status writes) in order."""

    def __init__(self, **client: Any) -> None:
        super().__init__("http://renku.invalid/api/data", None, **client)
        self.envs: dict[str, dict[str, Any]] = {}
        self.log: list[str] = []
        self.launchers: set[str] = set()
        self.listing = asyncio.Event()  # set when a list request arrives
        self.list_gate: asyncio.Event | None = None  # if set, a list waits for it
        self._failures: dict[str, tuple[RenkuError, bool]] = {}

    def fail(self, method: str, error: RenkuError, *, applied: bool = False) -> None:
        """The next `method` call raises `error`, after doing its work if `applied`."""
        self._failures[method] = (error, applied)

    def _call(self, method: str, *, applied: bool) -> None:
        if method in self._failures and self._failures[method][1] == applied:
            raise self._failures.pop(method)[0]

    async def list_environments(self, include_archived: bool = True) -> list[dict[str, Any]]:
        self.log.append("LIST")
        self.listing.set()
        if self.list_gate is not None:
            await self.list_gate.wait()
        self._call("LIST", applied=False)
        return [dict(env) for env in self.envs.values()]

    async def get_environment(self, env_id: str) -> dict[str, Any]:
        self.log.append("GET")
        self._call("GET", applied=False)
        if env_id not in self.envs:
            raise RenkuNotFoundError("Not found in Renku", status=404)
        return dict(self.envs[env_id])

    async def create_environment(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        self.log.append("POST")
        self._call("POST", applied=False)
        env_id = new_ulid()
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        env = {k: v for k, v in payload.items() if k != "environment_image_source"}
        self.envs[env_id] = env | {"id": env_id, "creation_date": created}
        self._call("POST", applied=True)
        return dict(self.envs[env_id])

    async def patch_environment(self, env_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        self.log.append("PATCH")
        self._call("PATCH", applied=False)
        env = self.envs[env_id]
        for key, value in payload.items():  # CONTRACT.md's PATCH semantics
            if key in CLEARED_BY and value == CLEARED_BY[key]:
                env.pop(key, None)
            elif value is not None:
                env[key] = value
        return dict(env)

    async def delete_environment(self, env_id: str) -> None:
        self.log.append("DELETE")
        self._call("DELETE", applied=False)
        if env_id in self.launchers:
            raise RenkuInUseError("still used by session launchers", status=500)
        self.envs.pop(env_id, None)


@pytest.fixture
async def renku() -> AsyncIterator[MemoryRenku]:
    client = MemoryRenku()
    yield client
    await client.aclose()


def publisher_for(
    renku: MemoryRenku, claims: ClaimsClient, objects: Objects | None = None, **settings: Any
) -> Publisher:
    """A Publisher over the in-memory Renku, with real ownership records (``claims``) cached
    in ``objects`` (the owners' records, when given)."""
    defaults: dict[str, Any] = {"retry_backoff_seconds": 30.0, "operator_namespace": "renku"}
    config = Settings(**(defaults | settings))
    sync = RenkuSync(renku, RenkuSnapshot(renku, 300.0), Ownership(claims, objects))
    return Publisher(config, sync)
