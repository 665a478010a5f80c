"""Retiring: what happens in Renku when a GlobalEnvironment is deleted (spec.deletionPolicy).

Bounded: after `delete_attempts` failed attempts the Synced condition says how to release the
object without touching Renku, and the finalizer is retried slowly from then on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.spec import DeletionPolicy
from ..config import Settings
from ..domain import conditions as cond
from .renku_sync import RenkuSync
from .work import Work


class Retirer:
    def __init__(self, settings: Settings, sync: RenkuSync) -> None:
        self.settings = settings
        self.sync = sync

    async def retire(self, work: Work, raw_spec: Mapping[str, Any], attempt: int) -> float | None:
        """Apply spec.deletionPolicy in Renku. Returns a retry delay, or None when done."""
        renku_id = work.status.renku_id
        raw_policy = raw_spec.get("deletionPolicy")
        # Archive is the safe choice for a value the API server should not have taken.
        policy: DeletionPolicy = raw_policy if raw_policy in ("Delete", "Orphan") else "Archive"
        if renku_id is None:
            return None
        if raw_spec.get("suspend"):
            work.event(
                "Warning",
                "Orphaned",
                f"spec.suspend is true: left environment {renku_id} in Renku untouched.",
            )
            return None
        try:
            reason, done = await self.sync.retire(renku_id, policy)
        except Exception as exc:  # any failure takes the bounded path
            return self._retire_failed(work, exc, attempt, renku_id)
        work.event("Normal", reason, done)
        return None

    def _retire_failed(self, work: Work, exc: Exception, attempt: int, renku_id: str) -> float:
        limit = self.settings.delete_attempts
        if attempt < limit:
            msg = f"Could not clean up environment {renku_id} in Renku (attempt {attempt} of {limit}): {exc}"
            work.condition(cond.SYNCED, "False", "Deleting", msg)
            return self.settings.retry_backoff_seconds
        msg = (
            f"Deletion is blocked: {attempt} attempts to clean up environment {renku_id} in Renku "
            f"failed ({exc}). Fix Renku's reachability or credentials, or release the object "
            f"without touching Renku: kubectl patch globalenvironment {work.ref.name} -n "
            f'{work.ref.namespace} --type merge -p \'{{"spec":{{"deletionPolicy":"Orphan"}}}}\''
        )
        work.condition(cond.SYNCED, "False", "DeletionBlocked", msg)
        return self.settings.retry_backoff_seconds * 4
