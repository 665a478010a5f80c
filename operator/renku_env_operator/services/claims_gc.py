"""Garbage collection of the claims of GlobalEnvironments that are gone without their clean-up.

An object deleted with its finalizer removed by hand (force-deleted), or while the operator was
not installed, leaves its claims behind: `env-<id>` would keep its Renku environment for a
dead owner for ever, and `attempt-<uid>` a create no one settles. Every interval (one per
operator process; every action is guarded, so replicas running it at once act once):

1. list the claims; an owner this process holds (its watch shows it) is alive;
2. list each remaining owner namespace's GlobalEnvironments (one request per namespace): an
   owner in the list is alive (a list can lag: it never decides alone that one is gone);
3. GET the owner by namespace/name: only when the API server itself answers 404, or holds
   another object (another uid) under that name, is the owner gone;
4. another object under the same name takes the record over (the owner of a name's old
   environment is that name's new object: Event `ClaimTakenOver` on it); otherwise the record
   is marked (`spec.collecting`, guarded by its resourceVersion: from then on no one takes it
   over), the environment is retired in Renku per the deletionPolicy recorded in the claim
   (none recorded, on claims older than that field: released, left in Renku), and the record
   deleted, guarded by the marked resourceVersion. Event `ClaimCollected` on the claim. A mark
   younger than an interval is another replica's work in progress; an older one was abandoned
   (its process stopped, or Renku failed) and is collected again.
5. an `attempt-<uid>` of a gone owner, once its create cannot be in flight any more: an
   environment that create made is recorded for the gone owner (and collected next time),
   then the attempt is deleted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Protocol

from .. import metrics
from ..api import claim as api
from ..api.claim import ClaimOwner
from ..api.spec import DeletionPolicy
from ..clients.claims import ClaimConflictError, ClaimError
from ..clients.kube import KubeError
from ..clients.renku_errors import RenkuError, RenkuNotFoundError
from ..config import Settings
from ..domain import conditions as cond
from .ownership import (
    Attempt,
    IdClaim,
    OwnershipConflictError,
    attempt_of,
    id_claim_of,
    parse_time,
)
from .publishing import effective_policy, taken_over_message
from .renku_sync import AmbiguousRecoveryError, RenkuSync
from .work import ObjectRef

log = logging.getLogger(__name__)

Outcome = Literal[
    "archived", "deleted", "released", "taken_over", "attempt_cleared", "recovered", "failed"
]
EventType = Literal["Normal", "Warning"]
EventPoster = Callable[[Mapping[str, Any], EventType, str, str], Awaitable[object]]
"""Posts an Event about an object (body, type, reason, message): outside kopf's handlers."""


class _Told(NamedTuple):
    """An Event to post once the claim's outcome is counted."""

    body: Mapping[str, Any]
    type: EventType
    reason: str
    message: str


class ObjectsReader(Protocol):
    """The GlobalEnvironments as the API server holds them (clients/globalenvironments.py)."""

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def uids(self, namespace: str) -> set[str]: ...


class ClaimCollector:
    def __init__(
        self,
        settings: Settings,
        sync: RenkuSync,
        reader: ObjectsReader,
        post_event: EventPoster,
        wake: Callable[[str], None] = lambda uid: None,
    ) -> None:
        self.settings = settings
        self.sync = sync
        self.ownership = sync.ownership
        self.claims = sync.ownership.claims
        self._reader = reader
        self._post = post_event
        self._wake = wake
        self._told: list[_Told] = []

    def _tell(self, body: Mapping[str, Any], type_: EventType, reason: str, message: str) -> None:
        """An Event, posted once the outcome is counted."""
        self._told.append(_Told(body, type_, reason, message))

    async def _event(self, told: _Told) -> None:
        """An Event that cannot be posted is logged: what was done is done (and counted)."""
        log.info("%s %s: %s", told.type, told.reason, told.message)
        try:
            await self._post(*told)
        except KubeError as exc:
            log.warning("event %s not posted: %s", told.reason, exc)

    async def collect(self) -> Counter[str]:
        """One pass over every claim; returns what was done (also counted in the metric)."""
        done: Counter[str] = Counter()
        by_namespace: dict[str, list[tuple[dict[str, Any], ClaimOwner]]] = {}
        for raw in await self.claims.list(api.KIND_LABEL):
            owner = _owner_of(raw)
            if owner is None or owner.uid in self.ownership.objects:
                continue
            by_namespace.setdefault(owner.namespace, []).append((raw, owner))
        for namespace, found in sorted(by_namespace.items()):
            try:
                alive = await self._reader.uids(namespace)
            except KubeError as exc:  # e.g. a namespace this operator may no longer read
                log.warning("claims of namespace %s not collected: %s", namespace, exc)
                continue
            for raw, owner in found:
                if owner.uid in alive:
                    continue
                try:
                    outcome = await self._one(raw, owner)
                except (KubeError, ClaimError, OwnershipConflictError) as exc:  # next time
                    log.warning("claim %s not collected: %s", _name(raw), exc)
                    outcome = "failed"
                if outcome is not None:
                    done[outcome] += 1
                    metrics.CLAIMS_COLLECTED.labels(outcome).inc()
                told, self._told = self._told, []
                for event in told:
                    await self._event(event)
        return done

    async def _one(self, raw: dict[str, Any], owner: ClaimOwner) -> Outcome | None:
        live = await self._reader.get(owner.namespace, owner.name)
        live_uid = str(((live or {}).get("metadata") or {}).get("uid") or "") or None
        if live_uid == owner.uid:
            return None  # it exists: the list lagged
        held = id_claim_of(raw)
        if held is not None:
            if held.collecting is None and live is not None and live_uid is not None:
                return await self._hand_over(held, live, live_uid)
            if held.collecting is not None and not self._abandoned(held.collecting):
                return None  # another replica is collecting it now
            outcome = await self._retire(raw, held, owner)
            if outcome is None:
                return None
            if live_uid is not None and outcome != "failed":
                self._wake(live_uid)  # it may wait for this id (spec.renkuId)
            return outcome
        attempt = attempt_of(raw)
        if attempt is not None:
            return await self._settle(raw, attempt, owner)
        return None

    async def _hand_over(
        self, held: IdClaim, live: Mapping[str, Any], live_uid: str
    ) -> Outcome | None:
        meta = live.get("metadata") or {}
        ref = ObjectRef(
            namespace=str(meta.get("namespace")),
            name=str(meta.get("name")),
            uid=live_uid,
            generation=int(meta.get("generation") or 1),
        )
        taken = await self.ownership.take_over(ref, held, live_uid=live_uid)
        if taken is None or taken.taken_from is None:
            return None  # changed meanwhile: looked at again next time
        self._tell(live, "Normal", "ClaimTakenOver", taken_over_message(taken, taken.taken_from))
        self._wake(live_uid)
        return "taken_over"

    def _abandoned(self, marked: str) -> bool:
        """A mark older than an interval: whoever set it did not finish (it stopped, or Renku
        failed): collected again. A younger one is another replica's work in progress."""
        try:
            age = datetime.now(UTC) - parse_time(marked)
        except ValueError:
            return True
        return age.total_seconds() >= self.settings.claim_gc_interval_seconds

    async def _retire(
        self, raw: dict[str, Any], held: IdClaim, owner: ClaimOwner
    ) -> Outcome | None:
        name = api.id_claim_name(held.renku_id)
        if held.collecting is None:
            try:
                marked = await self.claims.update(
                    name, {"collecting": cond.now()}, held.resource_version
                )
            except ClaimConflictError:
                return None  # changed meanwhile (taken over, marked by another replica)
            held = id_claim_of(marked) or held
        recorded = held.policy
        policy: DeletionPolicy = (
            effective_policy(self.settings, owner.namespace, recorded) if recorded else "Orphan"
        )
        gone = _ref(owner)
        what = _described(owner)
        try:
            if policy == "Orphan":
                outcome: Outcome = "released"
                done = f"left environment {held.renku_id} in Renku" + (
                    " (deletionPolicy Orphan)."
                    if recorded
                    else " (no deletionPolicy recorded in this claim, written by an older "
                    "version: the safe choice is to keep it; archive it in the admin panel "
                    "if it is not used)."
                )
            else:
                try:
                    reason, done = await self.sync.retire(gone, held.renku_id, policy)
                except RenkuNotFoundError:
                    reason, done = "AlreadyGone", f"environment {held.renku_id} is gone already."
                outcome = "deleted" if reason == "Deleted" else "archived"
                if reason == "AlreadyGone":
                    outcome = "released"
        except (RenkuError, OwnershipConflictError) as exc:
            self._tell(
                _claim_body(raw),
                "Warning",
                "ClaimCollectionFailed",
                f"{what} is gone without its clean-up; retiring Renku environment "
                f"{held.renku_id} ({policy}) failed: {exc}. Will retry.",
            )
            return "failed"
        await self.claims.delete(name, held.resource_version)
        self._tell(
            _claim_body(raw),
            "Normal",
            "ClaimCollected",
            f"{what} is gone without its clean-up: {done[:1].lower()}{done[1:]} "
            "The record is deleted.",
        )
        return outcome

    async def _settle(
        self, raw: dict[str, Any], attempt: Attempt, owner: ClaimOwner
    ) -> Outcome | None:
        if datetime.now(UTC) < self.sync.window_end(attempt):
            return None  # may still be on its way to Renku
        what = _described(owner)
        try:
            found = await self.sync.candidates(attempt)
        except RenkuError as exc:
            log.warning("create attempt of %s not settled: %s", what, exc)
            return "failed"
        if len(found) > 1:
            ids = AmbiguousRecoveryError(found)
            self._tell(
                _claim_body(raw),
                "Warning",
                "ClaimCollectionFailed",
                f"{what} is gone; its lost create matches several environments ({ids}): "
                "archive the duplicates in Renku, then delete this claim.",
            )
            return "failed"
        outcome: Outcome = "attempt_cleared"
        done = "no environment was made by it"
        if found:
            # Recorded for the gone owner: the next pass hands it over or retires it.
            await self.ownership.claim(_ref(owner), found[0], policy=attempt.policy)
            outcome, done = "recovered", f"it made environment {found[0]}, recorded for it"
        await self.claims.delete(_name(raw), attempt.resource_version)
        self._tell(
            _claim_body(raw),
            "Normal",
            "ClaimCollected",
            f"{what} is gone; its create recorded at {attempt.started_at} is settled: {done}. "
            "The record is deleted.",
        )
        return outcome


def _described(owner: ClaimOwner) -> str:
    return f"GlobalEnvironment {owner.namespace}/{owner.name} (uid {owner.uid})"


def _name(raw: Mapping[str, Any]) -> str:
    return str((raw.get("metadata") or {}).get("name") or "")


def _owner_of(raw: dict[str, Any]) -> ClaimOwner | None:
    name = _name(raw)
    if name.startswith("env-"):
        held = id_claim_of(raw)
        return held.owner if held else None
    if name.startswith("attempt-"):
        attempt = attempt_of(raw)
        return attempt.owner if attempt else None
    return None


def _ref(owner: ClaimOwner) -> ObjectRef:
    return ObjectRef(namespace=owner.namespace, name=owner.name, uid=owner.uid, generation=1)


def _claim_body(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What an Event about the claim needs (a listed item may lack apiVersion and kind)."""
    return {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": raw.get("metadata")}
