"""Retiring: what happens in Renku when a GlobalEnvironment is deleted (spec.deletionPolicy).

What is retired comes from the operator's claims, not from status.renkuId: every environment
the object owns, and the one a create whose answer was lost made (recovered first). Outside
TRUSTED_NAMESPACES, Delete is applied as Archive. Bounded: after `delete_attempts` failed
attempts the Synced condition says how to release the object without touching Renku, and the
finalizer is retried slowly from then on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.spec import DeletionPolicy
from ..config import Settings
from ..domain import conditions as cond
from .last_active import warn_if_last_active
from .publishing import ADMIN_SETTING, ambiguous_message, effective_policy
from .renku_sync import AmbiguousRecoveryError, RenkuSync
from .work import Work


class Retirer:
    def __init__(self, settings: Settings, sync: RenkuSync) -> None:
        self.settings = settings
        self.sync = sync
        self.ownership = sync.ownership

    async def retire(self, work: Work, raw_spec: Mapping[str, Any], attempt: int) -> float | None:
        """Apply spec.deletionPolicy in Renku. Returns a retry delay, or None when done."""
        raw_policy = raw_spec.get("deletionPolicy")
        # Archive is the safe choice for a value the API server should not have taken.
        asked: DeletionPolicy = raw_policy if raw_policy in ("Delete", "Orphan") else "Archive"
        policy = effective_policy(self.settings, work.ref.namespace, asked)
        try:
            await self._retire(work, policy, asked, suspended=bool(raw_spec.get("suspend")))
        except Exception as exc:  # any failure takes the bounded path
            return self._retire_failed(work, exc, attempt)
        return None

    async def _retire(
        self, work: Work, policy: DeletionPolicy, asked: DeletionPolicy, *, suspended: bool
    ) -> None:
        ref, status_id = work.ref, work.status.renku_id
        # Retiring never migrates: an id no record gives to this object is never archived
        # or deleted, whatever its status names (a migration happens on a pass, with checks).
        resolution = await self.ownership.resolve(ref, status_id, False)
        if (
            resolution.forged
            and status_id
            and await self.ownership.may_migrate(ref, status_id) != "no"
        ):
            work.event(
                "Warning",
                "Orphaned",
                f"status.renkuId names {status_id}, published by an operator version that kept "
                "no records and never migrated into one: left in Renku untouched. Archive it "
                "in Renku's admin panel if it should go.",
            )
        elif resolution.forged:
            work.event("Warning", "ForgedStatus", f"{resolution.forged}: not retired.")
        taken = resolution.taken_over
        if taken is not None and taken.taken_from is not None:
            old = taken.taken_from
            work.event(
                "Normal",
                "ClaimTakenOver",
                f"Renku environment {taken.renku_id} was owned by an earlier GlobalEnvironment "
                f"{old.namespace}/{old.name} (uid {old.uid}), deleted without its clean-up: "
                "retired with this object.",
            )
        owned = list(resolution.owned)
        pending = await self.ownership.attempt(ref)
        if pending is not None and policy != "Orphan" and not suspended:
            found = await self.sync.settle(ref.uid, pending)
            if found is not None:
                owned.append(await self.ownership.claim(ref, found))
                work.event(
                    "Normal",
                    "Recovered",
                    f"Found environment {found} from an earlier create whose answer was lost.",
                )
        for record in owned:
            renku_id = record.renku_id
            if suspended:
                work.event(
                    "Warning",
                    "Orphaned",
                    f"spec.suspend is true: left environment {renku_id} in Renku untouched.",
                )
            else:
                action = "Deleting" if policy == "Delete" else "Archiving"
                last = (
                    await warn_if_last_active(work, self.sync, renku_id, action)
                    if policy != "Orphan"
                    else None
                )
                reason, done = await self.sync.retire(ref, renku_id, policy)
                if last is not None:
                    work.condition(cond.SYNCED, "True", cond.LAST_ACTIVE_ENVIRONMENT, last)
                if asked != policy:
                    done += (
                        f" deletionPolicy Delete is not allowed in namespace {ref.namespace}: "
                        f"archived instead (an admin may trust it in {ADMIN_SETTING})."
                    )
                work.event("Normal", reason, done)
            await self.ownership.release(ref, record)
        if pending is not None:
            await self.ownership.clear_attempt(ref, pending)

    def _retire_failed(self, work: Work, exc: Exception, attempt: int) -> float:
        limit = self.settings.delete_attempts
        what = ambiguous_message(exc) if isinstance(exc, AmbiguousRecoveryError) else str(exc)
        if attempt < limit:
            msg = f"Could not clean up in Renku (attempt {attempt} of {limit}): {what}"
            work.condition(cond.SYNCED, "False", "Deleting", msg)
            return self.settings.retry_backoff_seconds
        msg = (
            f"Deletion is blocked: {attempt} attempts to clean up in Renku failed ({what}). "
            "Fix Renku's reachability or credentials, or release the object without touching "
            f"Renku: kubectl patch globalenvironment {work.ref.name} -n "
            f'{work.ref.namespace} --type merge -p \'{{"spec":{{"deletionPolicy":"Orphan"}}}}\''
        )
        work.condition(cond.SYNCED, "False", "DeletionBlocked", msg)
        return self.settings.retry_backoff_seconds * 4
