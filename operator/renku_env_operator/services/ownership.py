"""Who owns which Renku environment, from the operator's own claims (never from a status).

A GlobalEnvironment's status can be written by anyone with rights on `globalenvironments/status`,
in its namespace: it says what the operator did, it does not decide what the operator may do.
That is decided by the GlobalEnvironmentClaims in the operator's own namespace (api/claim.py):

- one claim per Renku id, created atomically (a POST: 409 means another owner), which holds the
  owner and the last known good version;
- one claim per GlobalEnvironment for a create that is not confirmed yet, written before the
  POST to Renku.

`Ownership.verify` is asked before every PATCH, archive and delete (RenkuSync does it), so an id
owned by another GlobalEnvironment is never written to, whatever any status says.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from ..api import claim as api
from ..api.claim import (
    ClaimedCreateAttempt,
    ClaimOwner,
    GlobalEnvironmentClaimSpec,
    MigrationCandidate,
)
from ..api.spec import DeletionPolicy
from ..api.status import PublishedStatus, RenkuEnvironmentState
from ..clients.claims import ClaimConflictError, ClaimError, ClaimsClient
from ..domain.payload import Declared
from .objects import Objects
from .work import ObjectRef

Migration = Literal["yes", "no", "shared"]
ListObjects = Callable[[], Awaitable[list[dict[str, Any]]]]
"""Lists the GlobalEnvironments the operator serves (bodies as the API server has them)."""


class OwnershipConflictError(Exception):
    """The Renku id is owned by another GlobalEnvironment: nothing may be written to it."""

    def __init__(self, renku_id: str, owner: ClaimOwner | None) -> None:
        who = f"{owner.namespace}/{owner.name}" if owner else "another GlobalEnvironment"
        super().__init__(
            f"Renku environment {renku_id} is owned by GlobalEnvironment {who} "
            "(one Renku environment has one owner): nothing was written to it"
        )
        self.renku_id = renku_id
        self.owner = owner


class AttemptInFlightError(Exception):
    """Another create of this object may still be on its way to Renku."""


LiveUid = Callable[[str, str], Awaitable[str | None]]
"""The uid of the GlobalEnvironment at (namespace, name) as the API server holds it now."""


@dataclass(frozen=True)
class IdClaim:
    """An ownership record: this object owns `renku_id`."""

    renku_id: str
    owner: ClaimOwner | None
    last_known_good: PublishedStatus | None
    resource_version: str
    policy: DeletionPolicy | None = None
    """The deletionPolicy recorded for a clean-up without the owner (None: not recorded)."""
    collecting: str | None = None
    """Set when the garbage collection is retiring it (its owner is gone)."""
    taken_from: ClaimOwner | None = None
    """Only on the answer of a takeover: the earlier object of the same name it came from."""


@dataclass(frozen=True)
class Attempt:
    """A recorded create: what was sent, and when (just before the POST)."""

    started_at: str
    fingerprint: str
    environment: Declared
    resource_version: str
    stamped: float | None = None
    """This process's monotonic clock when it stamped started_at (None: read from a record);
    the POST may start only shortly after it (renku_sync.SEND_WITHIN)."""
    owner: ClaimOwner | None = None
    policy: DeletionPolicy | None = None
    """The deletionPolicy recorded with it (for an environment it made, found after the owner
    is gone)."""

    @property
    def started(self) -> datetime:
        return parse_time(self.started_at)


@dataclass
class Resolution:
    """What a GlobalEnvironment owns, and how its status compared with the records."""

    owned: list[IdClaim] = field(default_factory=list)
    forged: str | None = None
    """Why status.renkuId / status.published was not believed (None: it matched)."""
    migrated: str | None = None
    """A Renku id claimed now from a status written before ownership was recorded."""
    taken_over: IdClaim | None = None
    """The record of status.renkuId, taken over now from an earlier object of the same name
    (deleted without its clean-up; the object restored from a backup, say)."""

    def current(self, wanted: str | None, status_id: str | None) -> IdClaim | None:
        """The claim the object publishes to: spec.renkuId's, else status', else the oldest."""
        for renku_id in (wanted, status_id):
            found = next((c for c in self.owned if c.renku_id == renku_id), None)
            if found is not None:
                return found
        return None if wanted else (self.owned[0] if self.owned else None)


def _created_before(metadata: Mapping[str, Any], moment: datetime) -> bool:
    try:
        return parse_time(str(metadata.get("creationTimestamp"))) < moment
    except ValueError:
        return False


def parse_time(value: str) -> datetime:
    """An RFC 3339 time; ValueError if it is not one."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Ownership:
    """The claims of one operator (one namespace), with a per-object cache of what it owns.

    The cache only saves reads: every write to Renku is verified against the API server.
    """

    def __init__(
        self, claims: ClaimsClient, objects: Objects | None = None, live: LiveUid | None = None
    ) -> None:
        self.claims = claims
        # Without it no claim is taken over from an earlier object of the same name.
        self.live = live
        # The per-object cache lives in each object's record (ended by Objects.forget).
        self.objects = objects if objects is not None else Objects()
        self._candidates: dict[str, str] | None = None
        """The era marker's list: uid -> the one id that object may migrate (None: unread)."""

    def forget(self, uid: str) -> None:
        """Read `uid`'s records again next time."""
        state = self.objects.peek(uid)
        if state is not None:
            state.claims = None

    # ------------------------------------------------------------ reading

    async def owned(self, ref: ObjectRef, *, fresh: bool = False) -> list[IdClaim]:
        """The ids `ref` owns (usually one; two while spec.renkuId replaces a created one)."""
        state = self.objects.get(ref.uid)
        if fresh or state.claims is None:
            items = await self.claims.list(_selector(ref.uid, "env"))
            claims = sorted(
                (c for c in map(_id_claim, items) if c is not None),
                key=lambda c: c.renku_id,
            )
            state.claims = [c for c in claims if c.owner and c.owner.uid == ref.uid]
        return list(state.claims)

    async def holder(self, renku_id: str) -> IdClaim | None:
        """The record of `renku_id`, whoever owns it."""
        return _id_claim(await self.claims.get(api.id_claim_name(renku_id)))

    async def resolve(self, ref: ObjectRef, status_id: str | None, may_migrate: bool) -> Resolution:
        """What `ref` owns; status.renkuId is checked against the records, never believed."""
        owned = await self.owned(ref)
        if status_id is None or any(c.renku_id == status_id for c in owned):
            return Resolution(owned)
        owned = await self.owned(ref, fresh=True)  # another replica may have claimed it since
        if any(c.renku_id == status_id for c in owned):
            return Resolution(owned)
        holder = await self.holder(status_id)
        taken = await self.take_over(ref, holder) if holder is not None else None
        if taken is not None:
            return Resolution([*owned, taken], taken_over=taken)
        if holder is not None:
            who = f"{holder.owner.namespace}/{holder.owner.name}" if holder.owner else "another"
            return Resolution(
                owned,
                forged=f"status.renkuId names {status_id}, which GlobalEnvironment {who} owns",
            )
        if may_migrate and not owned:
            claimed = await self.claim(ref, status_id)
            return Resolution([claimed], migrated=status_id)
        return Resolution(
            owned,
            forged=(
                f"status.renkuId names {status_id}, which the operator's records do not give "
                "to this GlobalEnvironment"
            ),
        )

    async def may_migrate(self, ref: ObjectRef, status_id: str) -> Migration:
        """Whether `ref` may claim `status_id` from its status without a record: only if the
        era marker lists exactly this object with exactly this id, and no other object with
        it (an id two statuses name is never given to either: "shared")."""
        if self._candidates is None:
            await self.start(None)
        candidates = self._candidates or {}
        if candidates.get(ref.uid) != status_id:
            return "no"
        named = sum(1 for renku_id in candidates.values() if renku_id == status_id)
        return "yes" if named == 1 else "shared"

    async def start(self, existing: ListObjects | None) -> None:
        """Read the era marker, or make it: at the first start with records, the objects that
        name a Renku id in their status with no record of it are listed in it, once; they are
        the only ones that may ever migrate (without `existing`: none are listed).

        A marker without a list (made by the version that first kept records, which migrated
        on each object's pass) gets one now, of the objects older than the marker: those a
        version without records may have published."""
        marker = await self.claims.get(api.ERA_NAME)
        if marker is None:
            candidates = await self._candidates_now(existing) if existing is not None else []
            spec = GlobalEnvironmentClaimSpec(migration=candidates)
            try:
                marker = await self.claims.create(
                    api.ERA_NAME, _dump(spec), {api.KIND_LABEL: "era"}
                )
            except ClaimConflictError:  # another replica made it first: its list counts
                marker = await self.claims.get(api.ERA_NAME)
        elif (marker.get("spec") or {}).get("migration") is None and existing is not None:
            marker = await self._list_in(marker, existing)
        if marker is None:
            raise ClaimError(f"the {api.ERA_NAME} claim vanished while it was read")
        try:
            listed = GlobalEnvironmentClaimSpec.model_validate(marker.get("spec") or {}).migration
        except ValueError as exc:
            raise ClaimError(f"the {api.ERA_NAME} claim cannot be read: {exc}") from None
        self._candidates = {c.uid: c.renku_id for c in listed or []}

    async def _list_in(
        self, marker: dict[str, Any], existing: ListObjects
    ) -> dict[str, Any] | None:
        metadata = marker.get("metadata") or {}
        try:
            began = parse_time(str(metadata.get("creationTimestamp")))
        except ValueError:
            raise ClaimError(f"the {api.ERA_NAME} claim has no creationTimestamp") from None
        candidates = await self._candidates_now(existing, created_before=began)
        spec = GlobalEnvironmentClaimSpec(migration=candidates)
        try:
            return await self.claims.update(
                api.ERA_NAME, _dump(spec), str(metadata.get("resourceVersion"))
            )
        except ClaimConflictError:  # another replica listed them first: its list counts
            return await self.claims.get(api.ERA_NAME)

    async def _candidates_now(
        self, existing: ListObjects, created_before: datetime | None = None
    ) -> list[MigrationCandidate]:
        claimed = {
            c.renku_id
            for c in map(_id_claim, await self.claims.list(f"{api.KIND_LABEL}=env"))
            if c is not None
        }
        found: list[MigrationCandidate] = []
        for obj in await existing():
            metadata = obj.get("metadata") or {}
            uid = metadata.get("uid")
            status = obj.get("status")
            renku_id = status.get("renkuId") if isinstance(status, Mapping) else None
            if not isinstance(uid, str) or not isinstance(renku_id, str) or renku_id in claimed:
                continue
            if created_before is not None and not _created_before(metadata, created_before):
                continue
            try:
                found.append(MigrationCandidate(uid=uid, renku_id=renku_id))
            except ValueError:
                continue  # not an id Renku gives: nothing to migrate
        return found

    # ------------------------------------------------------------ ownership of ids

    async def claim(
        self,
        ref: ObjectRef,
        renku_id: str,
        last_known_good: PublishedStatus | None = None,
        *,
        policy: DeletionPolicy | None = None,
    ) -> IdClaim:
        """Take `renku_id` for `ref` (idempotent); OwnershipConflictError if someone has it.

        A record of an earlier object with the same namespace and name, which is gone (deleted
        without its clean-up), is taken over: the answer's `taken_from` says so."""
        spec = GlobalEnvironmentClaimSpec(
            owner=_owner(ref),
            renku_id=renku_id,
            last_known_good=last_known_good,
            deletion_policy=policy,
        )
        name = api.id_claim_name(renku_id)
        try:
            created = _id_claim(await self.claims.create(name, _dump(spec), _labels(ref, "env")))
        except ClaimConflictError:
            created = await self.holder(renku_id)
            if created is not None and created.owner is not None and created.owner.uid != ref.uid:
                taken = await self.take_over(ref, created)
                if taken is not None:
                    return taken
            if created is None or created.owner is None or created.owner.uid != ref.uid:
                raise OwnershipConflictError(renku_id, created.owner if created else None) from None
        if created is None:
            raise ClaimError(f"the claim of {renku_id} came back unreadable")
        self._remember(ref.uid, created)
        return created

    async def verify(self, ref: ObjectRef, renku_id: str) -> IdClaim:
        """Right before a write: `ref` owns `renku_id`, as the API server holds it now.

        A record an admin deleted is taken again, if no one else took the id meanwhile.
        """
        holder = await self.holder(renku_id)
        if holder is None:
            return await self.claim(ref, renku_id)
        if holder.owner is None or holder.owner.uid != ref.uid:
            self._drop(ref.uid, renku_id)
            raise OwnershipConflictError(renku_id, holder.owner)
        return holder

    async def save_last_known_good(
        self, ref: ObjectRef, current: IdClaim, published: PublishedStatus
    ) -> IdClaim:
        # The whole spec is written: the recorded deletion policy is kept.
        return await self._rewrite(ref, current, published, current.policy)

    async def record_policy(
        self, ref: ObjectRef, current: IdClaim, policy: DeletionPolicy
    ) -> IdClaim:
        """Record what a clean-up without the owner does (only when it changed)."""
        if current.policy == policy:
            return current
        return await self._rewrite(ref, current, current.last_known_good, policy)

    async def _rewrite(
        self,
        ref: ObjectRef,
        current: IdClaim,
        last_known_good: PublishedStatus | None,
        policy: DeletionPolicy | None,
    ) -> IdClaim:
        """The whole claim of `current` rewritten for `ref` (if still at its version)."""
        spec = GlobalEnvironmentClaimSpec(
            owner=_owner(ref),
            renku_id=current.renku_id,
            last_known_good=last_known_good,
            deletion_policy=policy,
        )
        name = api.id_claim_name(current.renku_id)
        try:
            raw = await self.claims.update(name, _dump(spec, nulls=True), current.resource_version)
        except ClaimConflictError:
            self.forget(ref.uid)  # read again next time
            raise
        saved = _id_claim(raw)
        if saved is None:
            raise ClaimError(f"the claim of {current.renku_id} came back unreadable")
        self._remember(ref.uid, saved)
        return saved

    # ------------------------------------------------------------ an earlier object's claims

    async def inherit(self, ref: ObjectRef) -> list[IdClaim]:
        """Take over the records of an earlier object with `ref`'s namespace and name that is
        gone without its clean-up (force-deleted): it gets its environments back instead of
        creating a second one. One list request (by label), one GET if there is any."""
        selector = (
            f"{api.OWNER_REF_LABEL}={api.owner_ref_label(ref.namespace, ref.name)},"
            f"{api.KIND_LABEL}=env"
        )
        found = sorted(
            (c for c in map(_id_claim, await self.claims.list(selector)) if c is not None),
            key=lambda c: c.renku_id,
        )
        taken: list[IdClaim] = []
        for held in found:
            # Handed over meanwhile (the garbage collection does that too): ours already.
            mine = held.owner is not None and held.owner.uid == ref.uid
            claimed = held if mine else await self.take_over(ref, held)
            if claimed is not None:
                taken.append(claimed)
        return taken

    async def take_over(
        self, ref: ObjectRef, held: IdClaim, *, live_uid: str | None = None
    ) -> IdClaim | None:
        """`held` becomes `ref`'s if it belongs to an earlier object of the same namespace and
        name, and that object is certainly gone: the API server holds `ref` under that name now
        (a name has one object at a time, and an object never changes its name). Guarded by
        the record's resourceVersion; None when it may not be taken (or changed meanwhile)."""
        old = held.owner
        if old is None or old.uid == ref.uid or held.collecting is not None:
            return None
        if (old.namespace, old.name) != (ref.namespace, ref.name):
            return None
        if live_uid is None:
            if self.live is None:
                return None
            live_uid = await self.live(ref.namespace, ref.name)
        if live_uid != ref.uid:
            return None
        # A merge patch of owner and labels only: everything else the record holds stays.
        spec = {"owner": _owner(ref).model_dump(by_alias=True, mode="json")}
        name = api.id_claim_name(held.renku_id)
        try:
            raw = await self.claims.update(name, spec, held.resource_version, _labels(ref, "env"))
        except ClaimConflictError:
            # Changed meanwhile: maybe handed to `ref` by another actor (then it is `ref`'s).
            again = await self.holder(held.renku_id)
            mine = again is not None and again.owner is not None and again.owner.uid == ref.uid
            return again if mine else None
        taken = _id_claim(raw)
        if taken is None or taken.owner is None or taken.owner.uid != ref.uid:
            return None
        self.forget(ref.uid)  # its list of owned ids is read again
        return replace(taken, taken_from=old)

    async def release(self, ref: ObjectRef, current: IdClaim) -> None:
        """The object no longer owns the id (retired): others may adopt it."""
        await self.claims.delete(api.id_claim_name(current.renku_id), current.resource_version)
        self._drop(ref.uid, current.renku_id)

    # ------------------------------------------------------------ create attempts

    async def attempt(self, ref: ObjectRef) -> Attempt | None:
        return _attempt(await self.claims.get(api.attempt_claim_name(ref.uid)))

    async def record_attempt(
        self,
        ref: ObjectRef,
        fingerprint: str,
        environment: Declared,
        replacing: Attempt | None,
        *,
        policy: DeletionPolicy | None = None,
    ) -> Attempt:
        """Record a create before it is sent; AttemptInFlightError if another one got there
        first (the record changed or appeared since it was read)."""
        stamped = time.monotonic()
        spec = GlobalEnvironmentClaimSpec(
            owner=_owner(ref),
            create_attempt=ClaimedCreateAttempt(
                started_at=_now(),
                fingerprint=fingerprint,
                environment=RenkuEnvironmentState.model_validate(environment),
            ),
            deletion_policy=policy,
        )
        name = api.attempt_claim_name(ref.uid)
        try:
            if replacing is None:
                raw = await self.claims.create(name, _dump(spec), _labels(ref, "attempt"))
            else:
                raw = await self.claims.update(
                    name, _dump(spec, nulls=True), replacing.resource_version
                )
        except ClaimConflictError:
            raise AttemptInFlightError(
                "another create of this GlobalEnvironment was recorded at the same time"
            ) from None
        recorded = _attempt(raw)
        if recorded is None:
            raise ClaimError(
                f"the create attempt of {ref.namespace}/{ref.name} came back unreadable"
            )
        return replace(recorded, stamped=stamped)

    async def clear_attempt(self, ref: ObjectRef, attempt: Attempt) -> None:
        """The create is settled (confirmed, recovered, or certainly not carried out)."""
        try:
            await self.claims.delete(api.attempt_claim_name(ref.uid), attempt.resource_version)
        except ClaimConflictError:
            return  # replaced by a newer attempt meanwhile: that one is not ours to clear

    # ------------------------------------------------------------ cache

    # peek, not get: a gone object's claims (garbage collection) make no record of it.
    def _remember(self, uid: str, claim: IdClaim) -> None:
        state = self.objects.peek(uid)
        if state is not None and state.claims is not None:
            others = [c for c in state.claims if c.renku_id != claim.renku_id]
            state.claims = sorted([*others, claim], key=lambda c: c.renku_id)

    def _drop(self, uid: str, renku_id: str) -> None:
        state = self.objects.peek(uid)
        if state is not None and state.claims is not None:
            state.claims = [c for c in state.claims if c.renku_id != renku_id]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _owner(ref: ObjectRef) -> ClaimOwner:
    return ClaimOwner(namespace=ref.namespace, name=ref.name, uid=ref.uid)


def _labels(ref: ObjectRef, kind: str) -> dict[str, str]:
    return {
        api.OWNER_UID_LABEL: ref.uid,
        api.KIND_LABEL: kind,
        api.OWNER_REF_LABEL: api.owner_ref_label(ref.namespace, ref.name),
    }


def _selector(uid: str, kind: str) -> str:
    return f"{api.OWNER_UID_LABEL}={uid},{api.KIND_LABEL}={kind}"


def _dump(spec: GlobalEnvironmentClaimSpec, *, nulls: bool = False) -> dict[str, Any]:
    """The spec as stored; for an update (a merge patch) with nulls, which remove keys."""
    return spec.model_dump(by_alias=True, exclude_none=not nulls, mode="json")


def _spec(raw: dict[str, Any] | None) -> tuple[GlobalEnvironmentClaimSpec, str] | None:
    """A stored claim's spec; one that does not parse (edited by hand) counts as none."""
    if not raw:
        return None
    try:
        spec = GlobalEnvironmentClaimSpec.model_validate(raw.get("spec") or {})
    except ValueError:
        return None
    return spec, str((raw.get("metadata") or {}).get("resourceVersion") or "")


def _id_claim(raw: dict[str, Any] | None) -> IdClaim | None:
    parsed = _spec(raw)
    if parsed is None or parsed[0].renku_id is None:
        return None
    spec, version = parsed
    assert spec.renku_id is not None
    return IdClaim(
        spec.renku_id,
        spec.owner,
        spec.last_known_good,
        version,
        policy=spec.deletion_policy,
        collecting=spec.collecting,
    )


def _attempt(raw: dict[str, Any] | None) -> Attempt | None:
    parsed = _spec(raw)
    if parsed is None or parsed[0].create_attempt is None:
        return None
    spec, version = parsed
    attempt = spec.create_attempt
    assert attempt is not None
    try:
        parse_time(attempt.started_at)
    except ValueError:
        return None
    return Attempt(
        attempt.started_at,
        attempt.fingerprint,
        attempt.environment.model_dump(by_alias=False),
        version,
        owner=spec.owner,
        policy=spec.deletion_policy,
    )


# What the garbage collection reads from a listed claim.
id_claim_of = _id_claim
attempt_of = _attempt
