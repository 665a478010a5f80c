"""Publishing a declared state into Renku's registry: create, adopt, update, recover, retire.

The Renku id is the only identity (names are not unique). A create whose answer was lost is
recovered from the list, never repeated blindly: before a POST, the caller records a create
attempt (time + fingerprint) in status; a later run finds the environment that attempt made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Container, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from ..api.spec import DeletionPolicy
from ..clients.renku import RenkuClient
from ..clients.renku_errors import RenkuInUseError, RenkuNotFoundError
from ..domain import payload
from ..domain.payload import Declared, FieldDiff

Action = Literal["Created", "Recovered", "Adopted", "Updated", "InSync", "Drifted", "Missing"]
# How far a server's creation_date may lie before our recorded attempt (clock skew).
CLOCK_SKEW = timedelta(seconds=120)


@dataclass(frozen=True)
class SyncResult:
    """What one publish did; `changes` are the fields that differed before it."""

    action: Action
    renku_id: str | None
    changes: list[FieldDiff] = field(default_factory=list)


class AdoptionError(Exception):
    """spec.renkuId names an environment that does not exist, or that another object owns."""


class RenkuSnapshot:
    """All of Renku's environments, fetched at most once per interval for every object."""

    def __init__(self, client: RenkuClient, max_age: float) -> None:
        self._client = client
        self._max_age = max_age
        self._lock = asyncio.Lock()
        self._taken = float("-inf")
        self._writes = 0  # bumped by invalidate(), also while a list request is in flight
        self._environments: dict[str, dict[str, Any]] = {}

    async def get(self) -> dict[str, dict[str, Any]]:
        async with self._lock:
            if time.monotonic() - self._taken >= self._max_age:
                started, writes = time.monotonic(), self._writes
                listed = await self._client.list_environments(include_archived=True)
                self._environments = {env["id"]: env for env in listed}
                # Age counts from the request, and a write that overlapped it makes the list
                # stale at once: it may predate the write, and must not hide it for an interval.
                self._taken = started if writes == self._writes else float("-inf")
            return self._environments

    def invalidate(self) -> None:
        """Our own write changed Renku: the next get() lists again."""
        self._writes += 1
        self._taken = float("-inf")


class RenkuSync:
    """Create/update/adopt/delete against one Renku, as the reconciler asks."""

    def __init__(self, client: RenkuClient, snapshot: RenkuSnapshot) -> None:
        self.client = client
        self.snapshot = snapshot

    async def adopt(self, env_id: str, claimed: Container[str]) -> dict[str, Any]:
        if env_id in claimed:
            raise AdoptionError(
                f"environment {env_id} is already managed by another GlobalEnvironment: "
                "one Renku environment can have only one owner"
            )
        try:
            return await self.client.get_environment(env_id)
        except RenkuNotFoundError:
            raise AdoptionError(
                f"spec.renkuId {env_id} does not exist in Renku: copy the id from the admin "
                "panel, or remove spec.renkuId to create a new environment"
            ) from None

    async def fetch(self, env_id: str) -> dict[str, Any] | None:
        try:
            return await self.client.get_environment(env_id)
        except RenkuNotFoundError:
            return None

    async def recover(
        self, declared: Declared, started_at: datetime, claimed: Container[str]
    ) -> str | None:
        """The environment a lost create made, if any: same state, made after the attempt."""
        self.snapshot.invalidate()
        candidates = [
            env
            for env in (await self.snapshot.get()).values()
            if env["id"] not in claimed
            and not payload.diff(declared, payload.observed_state(env))
            and _created_after(env, started_at - CLOCK_SKEW)
        ]
        candidates.sort(key=lambda env: str(env.get("creation_date", "")))
        return candidates[0]["id"] if candidates else None

    async def create(
        self, declared: Declared, record_attempt: Callable[[], Awaitable[None]]
    ) -> str:
        await record_attempt()
        created = await self.client.create_environment(payload.create_payload(declared))
        self.snapshot.invalidate()
        return str(created["id"])

    async def update(self, env_id: str, changes: list[FieldDiff]) -> None:
        await self.client.patch_environment(env_id, payload.patch_payload(changes))

    async def retire(self, env_id: str, policy: DeletionPolicy) -> tuple[str, str]:
        """Apply a deletion policy; returns the Event's reason and message."""
        if policy == "Orphan":
            return "Orphaned", f"Left environment {env_id} in Renku (deletionPolicy Orphan)."
        if policy == "Delete":
            try:
                await self.client.delete_environment(env_id)
            except RenkuInUseError:
                await self.client.archive_environment(env_id)
                return "ArchivedInUse", (
                    f"Environment {env_id} is still used by session launchers, so it was "
                    "archived instead of deleted (existing launchers keep working)."
                )
            return "Deleted", f"Deleted environment {env_id} from Renku."
        try:
            await self.client.archive_environment(env_id)
        except RenkuNotFoundError:
            return "AlreadyGone", f"Environment {env_id} no longer exists in Renku."
        return "Archived", f"Archived environment {env_id} in Renku."


def _created_after(env: Mapping[str, Any], moment: datetime) -> bool:
    created = env.get("creation_date")
    if not isinstance(created, str):
        return False
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00")) >= moment
    except ValueError:
        return False
