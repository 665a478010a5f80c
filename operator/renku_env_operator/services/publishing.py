"""The publish step: make Renku hold the declared state, or report why it does not.

Turns RenkuSync's results and errors into the Synced condition, status fields and Events.
Runs on every reconcile, but talks to Renku only when something is due: a new spec, a retry
after a failure, or the periodic drift check (which reads the shared snapshot).

What this object owns in Renku comes from the operator's claims (services/ownership.py), not
from its status: status.renkuId and status.published are checked against them and restored.
Namespaces outside TRUSTED_NAMESPACES may neither adopt (spec.renkuId) nor use
deletionPolicy Delete.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from ..api.claim import ClaimOwner
from ..api.spec import DeletionPolicy, GlobalEnvironmentSpec
from ..api.status import (
    CreateAttemptStatus,
    GlobalEnvironmentStatus,
    PublishedStatus,
    RenkuEnvironmentState,
)
from ..clients.claims import ClaimError
from ..clients.renku_errors import (
    RenkuCredentialsError,
    RenkuError,
    RenkuUnavailableError,
    RenkuValidationError,
)
from ..config import Settings
from ..domain import conditions as cond
from ..domain import payload
from ..domain.payload import Declared
from .last_active import warn_if_last_active
from .ownership import Attempt, AttemptInFlightError, IdClaim, OwnershipConflictError
from .renku_sync import AdoptionError, AmbiguousRecoveryError, CreateNotSentError, RenkuSync
from .work import waiting

if TYPE_CHECKING:
    from .work import Work

ADMIN_SETTING = "RENKU_ENV_OPERATOR_TRUSTED_NAMESPACES (Helm: security.trustedNamespaces)"


class MigrationRefusedError(Exception):
    """A status.renkuId from before the records may not be migrated now (the message: why)."""


class Publisher:
    def __init__(self, settings: Settings, sync: RenkuSync) -> None:
        self.settings = settings
        self.sync = sync
        self.ownership = sync.ownership
        # Per-object clocks (retry_at, checked_at) live in the object's record: work.memo.

    async def publish(self, work: Work, spec: GlobalEnvironmentSpec, image: str) -> None:
        if spec.suspend:
            # Recorded, so that a force-deleted suspended object also leaves Renku alone.
            await self._guarded(work, self._keep_orphaned(work))
            msg = "spec.suspend is true: no writes to Renku until it is false."
            work.condition(cond.SYNCED, "False", "Suspended", msg)
            return
        if self._deletion_refused(work, spec):
            return
        declared = payload.declared_state(spec, work.ref.name, image)
        if time.monotonic() < work.memo.retry_at:
            return
        await self._guarded(work, self._publish(work, spec, declared))

    async def hold(self, work: Work, spec: GlobalEnvironmentSpec) -> None:
        """A new spec failed its checks: keep the last known good version in Renku, drift
        included, and say which version is live. That version comes from the operator's own
        record, never from status.published."""
        now = time.monotonic()
        last = work.memo.checked_at
        quiet = now < work.memo.retry_at or now - last < self.settings.drift_interval_seconds
        if spec.suspend or quiet:
            report_kept(work)
            return
        if self._deletion_refused(work, spec):
            return
        await self._guarded(work, self._hold(work, spec))

    async def _hold(self, work: Work, spec: GlobalEnvironmentSpec) -> None:
        current = await self._resolve(work, spec, None)
        if current is False:
            return
        current = await self._keep_policy(work, self._policy(work, spec), current)
        published = current.last_known_good if current else None
        if current is None or published is None or published.environment is None:
            report_kept(work)
            return
        work.memo.checked_at = time.monotonic()
        declared = published.environment.model_dump(by_alias=False)
        await self._converge(work, spec, declared, current)
        found = cond.find(work.conditions, cond.SYNCED)
        if found is None or found.reason != "Drifted":
            report_kept(work)

    async def _guarded(self, work: Work, step: Awaitable[None]) -> None:
        """Run one publishing step; every failure it can meet becomes the Synced condition."""
        try:
            await step
        except RenkuError as exc:
            self._failed(work, exc)
        except AdoptionError as exc:
            self._back_off(work)
            work.condition(cond.SYNCED, "False", "AdoptionFailed", str(exc))
        except OwnershipConflictError as exc:
            self._back_off(work)
            work.condition(cond.SYNCED, "False", "OwnershipConflict", f"{exc}.")
        except AttemptInFlightError as exc:
            self._back_off(work)
            work.condition(cond.SYNCED, "Unknown", "CreateInFlight", f"{exc}.")
        except MigrationRefusedError as exc:
            self._back_off(work)
            work.condition(cond.SYNCED, "False", cond.MIGRATION_REFUSED, str(exc))
        except AmbiguousRecoveryError as exc:
            self._back_off(work)
            work.condition(cond.SYNCED, "False", "RecoveryAmbiguous", ambiguous_message(exc))
        except ClaimError as exc:
            self._back_off(work)
            msg = (
                f"{exc}. Renku is not written to without these records (a create already "
                "sent is recovered from its recorded attempt). Will retry."
            )
            work.condition(cond.SYNCED, "False", "ClaimFailed", msg)
        else:
            work.memo.retry_at = 0.0

    def _policy(self, work: Work, spec: GlobalEnvironmentSpec) -> DeletionPolicy:
        """What a clean-up without this object does (recorded in its claims)."""
        if spec.suspend:
            return "Orphan"
        return effective_policy(self.settings, work.ref.namespace, spec.deletion_policy)

    async def _keep_policy(
        self, work: Work, policy: DeletionPolicy, current: IdClaim | None = None
    ) -> IdClaim | None:
        """Every claim of the object records `policy` (a write only when it changed); returns
        `current` as rewritten."""
        for held in await self.ownership.owned(work.ref):
            saved = await self.ownership.record_policy(work.ref, held, policy)
            if current is not None and saved.renku_id == current.renku_id:
                current = saved
        return current

    async def _keep_orphaned(self, work: Work) -> None:
        await self._keep_policy(work, "Orphan")

    def _taken_over(self, work: Work, claimed: IdClaim) -> None:
        if claimed.taken_from is not None:
            message = taken_over_message(claimed, claimed.taken_from)
            work.event("Normal", "ClaimTakenOver", f"{message[:-1]}, and publishes to it.")

    def _back_off(self, work: Work) -> None:
        work.memo.retry_at = time.monotonic() + self.settings.retry_backoff_seconds

    def _deletion_refused(self, work: Work, spec: GlobalEnvironmentSpec) -> bool:
        if spec.deletion_policy != "Delete" or self.settings.is_trusted(work.ref.namespace):
            return False
        msg = (
            "deletionPolicy Delete removes the environment from Renku for everyone; only "
            f"GlobalEnvironments in trusted namespaces may ask for it, and {work.ref.namespace} "
            f"is not one. Use Archive (the default) or Orphan, or an admin adds the namespace "
            f"to {ADMIN_SETTING}. Nothing was changed in Renku; deleting this object archives "
            "what it published."
        )
        work.condition(cond.SYNCED, "False", "DeletionNotAllowed", msg)
        return True

    async def _resolve(
        self, work: Work, spec: GlobalEnvironmentSpec, declared: Declared | None
    ) -> IdClaim | Literal[False] | None:
        """The record this object publishes to, with status checked against the records.

        False when the status was not believed: reported, status restored, nothing sent."""
        ref, status = work.ref, work.status
        may_migrate = False
        listed = await self.ownership.may_migrate(ref, status.renku_id) if status.renku_id else "no"
        if listed != "no":
            owned = await self.ownership.owned(ref)
            if not any(c.renku_id == status.renku_id for c in owned):
                refused = (
                    _shared_message(status.renku_id)
                    if listed == "shared"
                    else await self._migration_refused(status, declared)
                )
                if refused is not None:
                    # status.renkuId stays as it is (cleared, the next pass would create a
                    # second environment); asked again after the backoff, not every pass.
                    raise MigrationRefusedError(refused)
                may_migrate = True
        resolution = await self.ownership.resolve(ref, status.renku_id, may_migrate)
        if resolution.taken_over is not None:
            self._taken_over(work, resolution.taken_over)
        current = resolution.current(spec.renku_id, status.renku_id)
        if resolution.migrated and current is not None:
            work.event(
                "Normal",
                "OwnershipMigrated",
                f"Recorded that this GlobalEnvironment owns Renku environment "
                f"{resolution.migrated} (named in status.renkuId by an operator version that "
                "kept no ownership records, and unchanged in Renku since); from now on only the "
                "records count.",
            )
        recorded = current.last_known_good if current else None
        forged = resolution.forged
        # An absent one is only not written yet (or lost): restored silently, it gains nothing.
        if (
            forged is None
            and not resolution.migrated
            and status.published is not None
            and status.published != recorded
        ):
            forged = "status.published differs from the operator's record of what is live"
        work.status = status.model_copy(
            update={"renku_id": current.renku_id if current else None, "published": recorded}
        )
        if forged is not None:
            msg = (
                f"{forged}: not believed, nothing was changed in Renku, and the status is "
                "restored from the operator's records (only the operator writes this status: "
                "was it edited, or a status write lost?)."
            )
            work.condition(cond.SYNCED, "False", "ForgedStatus", msg)
            return False
        return current

    async def _migration_refused(
        self, status: GlobalEnvironmentStatus, declared: Declared | None
    ) -> str | None:
        """Why a listed object may not migrate its status.renkuId now (None: it may).

        Renku's environment must be what this operator would send (the spec) or what the
        version before it recorded it sent (status.published): then the migration itself
        changes nothing in Renku, and whatever is sent later passed the checks first."""
        renku_id = status.renku_id
        assert renku_id is not None
        found = await self.sync.fetch(renku_id)
        if found is None:
            return None  # gone from Renku: claiming it only recreates what this spec declares
        observed = payload.observed_state(found)
        sent = status.published.environment if status.published else None
        for expected in (declared, sent.model_dump(by_alias=False) if sent else None):
            if expected is not None and not payload.diff(expected, observed):
                return None
        return (
            f"status.renkuId names {renku_id}, which this GlobalEnvironment may migrate (it "
            "named it when the ownership records began), but Renku's environment is neither "
            "what this spec declares nor what status.published says was sent: it was changed "
            "since, or the status was edited. Nothing was changed in Renku. Make the spec "
            "match Renku's environment (renku-env-operator export prints it), or adopt it "
            "with spec.renkuId from a trusted namespace."
        )

    def _due(self, work: Work, declared: Declared) -> bool:
        now = time.monotonic()
        published = work.status.published
        unchanged = published is not None and published.fingerprint == payload.fingerprint(declared)
        smoke = _passed_smoke(work)
        if unchanged and smoke and published is not None:
            # A new passed test of the same version (retest, budgets): record it, so that a
            # restarted operator believes it (no Renku write: the payload is the same).
            unchanged = published.smoke_session == smoke["smoke_session"]
        in_sync = cond.find(work.conditions, cond.SYNCED)
        settled = in_sync is not None and in_sync.status == "True"
        recent = now - work.memo.checked_at < self.settings.drift_interval_seconds
        return not (unchanged and settled and recent and work.status.renku_id)

    async def _publish(self, work: Work, spec: GlobalEnvironmentSpec, declared: Declared) -> None:
        ref = work.ref
        current = await self._resolve(work, spec, declared)
        if current is False:
            return
        policy = self._policy(work, spec)
        current = await self._keep_policy(work, policy, current)
        adopting = spec.renku_id is not None and (
            current is None or current.renku_id != spec.renku_id
        )
        if adopting and not self.settings.is_trusted(ref.namespace):
            msg = (
                f"spec.renkuId adopts an existing Renku environment ({spec.renku_id}); only "
                f"GlobalEnvironments in trusted namespaces may, and {ref.namespace} is not one. "
                "Remove spec.renkuId to create a new environment, or an admin adds the "
                f"namespace to {ADMIN_SETTING}. Nothing was changed in Renku."
            )
            work.condition(cond.SYNCED, "False", "AdoptionNotAllowed", msg)
            return
        # An id owned besides the current one (handed over from a force-deleted object of the
        # same name) is retired at once, not at the next drift check.
        extra = len(await self.ownership.owned(ref)) > 1
        if not adopting and not extra and not self._due(work, declared):
            return
        work.memo.checked_at = time.monotonic()
        if adopting:
            assert spec.renku_id is not None
            current = await self._adopt(work, spec.renku_id, policy)
        if current is None:
            await self._create(work, spec, declared)
            return
        for old in await self.ownership.owned(ref):
            if old.renku_id != current.renku_id:
                await self._replace(work, spec, old, current.renku_id)
        await self._converge(work, spec, declared, current)

    async def _adopt(self, work: Work, renku_id: str, policy: DeletionPolicy) -> IdClaim:
        await self.sync.adopt(renku_id)
        try:
            claimed = await self.ownership.claim(work.ref, renku_id, policy=policy)
        except OwnershipConflictError as exc:
            raise AdoptionError(
                f"environment {renku_id} is already managed by another GlobalEnvironment "
                f"({_owner_name(exc)}): one Renku environment can have only one owner"
            ) from None
        pending = await self.ownership.attempt(work.ref)
        if pending is not None:  # spec.renkuId decides: an unconfirmed create is not ours any more
            await self.ownership.clear_attempt(work.ref, pending)
        if claimed.taken_from is not None:
            self._taken_over(work, claimed)
            claimed = await self.ownership.record_policy(work.ref, claimed, policy)
        else:
            work.event("Normal", "Adopted", f"Adopted Renku environment {renku_id}.")
        work.status = work.status.model_copy(
            update={"renku_id": renku_id, "published": None, "create_attempt": None}
        )
        return claimed

    async def _replace(
        self, work: Work, spec: GlobalEnvironmentSpec, old: IdClaim, new_id: str
    ) -> None:
        """spec.renkuId now names another environment: retire the one owned before."""
        policy = effective_policy(self.settings, work.ref.namespace, spec.deletion_policy)
        _, done = await self.sync.retire(work.ref, old.renku_id, policy)
        await self.ownership.release(work.ref, old)
        work.event(
            "Normal",
            "Replaced",
            f"spec.renkuId now names {new_id}; the environment owned before: {done}",
        )

    async def _create(self, work: Work, spec: GlobalEnvironmentSpec, declared: Declared) -> None:
        ref = work.ref
        policy = self._policy(work, spec)
        owned = await self.ownership.owned(ref, fresh=True)
        if owned:  # another replica created it meanwhile
            work.status = work.status.model_copy(update={"renku_id": owned[0].renku_id})
            await self._converge(work, spec, declared, owned[0])
            return
        # Deleted without its clean-up (force-deleted) and created again under the same name:
        # the environment of the earlier object is this one's, not a second one.
        inherited = await self.ownership.inherit(ref)
        if inherited:
            for claimed in inherited:
                self._taken_over(work, claimed)
            current = await self.ownership.record_policy(ref, inherited[0], policy)
            work.status = work.status.model_copy(update={"renku_id": current.renku_id})
            await self._converge(work, spec, declared, current)
            return
        attempt = await self.ownership.attempt(ref)
        if attempt is not None:
            found = await self.sync.settle(ref.uid, attempt)
            if found is not None:
                current = await self.ownership.claim(ref, found, policy=policy)
                await self.ownership.clear_attempt(ref, attempt)
                work.event(
                    "Normal",
                    "Recovered",
                    f"Found environment {found} from an earlier create whose answer was lost "
                    f"(recorded at {attempt.started_at}).",
                )
                work.status = work.status.model_copy(
                    update={"renku_id": found, "create_attempt": None}
                )
                await self._converge(work, spec, declared, current, recovered=True)
                return
        fingerprint = payload.fingerprint(declared)
        # Queued for Renku before the record is stamped: the POST follows the write at once.
        async with waiting("renku"):
            renku_id, recorded = await self._send(work, declared, fingerprint, attempt, policy)
        published = self._published(work, declared, None)
        current = await self.ownership.claim(ref, renku_id, published, policy=policy)
        await self.ownership.clear_attempt(ref, recorded)
        work.event(
            "Normal", "Created", f"Created Renku environment {renku_id} ({declared['name']})."
        )
        await self._record(
            work, declared, current, "Created", f"Created environment {renku_id} in Renku."
        )

    async def _send(
        self,
        work: Work,
        declared: Declared,
        fingerprint: str,
        attempt: Attempt | None,
        policy: DeletionPolicy,
    ) -> tuple[str, Attempt]:
        """Record the create, then POST it: the new environment's id, and the record."""
        ref = work.ref
        recorded = await self.ownership.record_attempt(
            ref, fingerprint, declared, attempt, policy=policy
        )
        work.status = work.status.model_copy(
            update={
                "create_attempt": CreateAttemptStatus(
                    started_at=recorded.started_at, fingerprint=fingerprint
                )
            }
        )
        try:
            return await self.sync.create(declared, recorded), recorded
        except CreateNotSentError as exc:
            self.sync.answered(ref.uid, recorded)  # certainly not sent: not in flight
            await self.ownership.clear_attempt(ref, recorded)
            work.status = work.status.model_copy(update={"create_attempt": None})
            raise ClaimError(str(exc)) from None
        except RenkuError as exc:
            if not_applied(exc):
                await self.ownership.clear_attempt(ref, recorded)
                work.status = work.status.model_copy(update={"create_attempt": None})
            elif exc.status is not None:
                self.sync.answered(ref.uid, recorded)  # answered: not in flight any more
            raise

    async def _converge(
        self,
        work: Work,
        spec: GlobalEnvironmentSpec,
        declared: Declared,
        current: IdClaim,
        *,
        recovered: bool = False,
    ) -> None:
        renku_id = current.renku_id
        published = current.last_known_good
        new_spec = published is None or published.fingerprint != payload.fingerprint(declared)
        if new_spec and not recovered:  # a recovery has just listed Renku: no second read
            found = await self.sync.fetch(renku_id)
        else:
            found = (await self.sync.snapshot.get()).get(renku_id)
            if found is None:  # confirm by id before recreating: cheap, and only then
                found = await self.sync.fetch(renku_id)
        if found is None:
            await self._missing(work, spec, declared, current)
            return
        changes = payload.diff(declared, payload.observed_state(found))
        if not changes:
            synced = cond.find(work.conditions, cond.SYNCED)
            if recovered:
                reason, msg = "Recovered", "Recovered the environment an earlier create made."
            elif synced is not None and synced.status == "True":
                # Still true for the reason it became true (Created, Updated...): a drift check
                # that finds nothing changes nothing, so steady state writes nothing.
                reason, msg = synced.reason, synced.message
            else:
                reason, msg = "InSync", "Renku matches the declared state."
            await self._record(work, declared, current, reason, msg)
            return
        drift = payload.describe_drift(changes)
        if not new_spec and (spec.drift_policy or "Overwrite") == "Report":
            msg = f"Changed in Renku outside this resource: {drift}. driftPolicy is Report: not restored."
            work.condition(cond.SYNCED, "False", "Drifted", msg)
            return
        last = await self._archiving_last(work, declared, found, renku_id)
        await self.sync.update(work.ref, renku_id, changes)
        fields = ", ".join(c.field for c in changes)
        if recovered:
            work.event("Normal", "Updated", f"Updated Renku environment {renku_id}: {drift}.")
            msg = f"Recovered the environment an earlier create made, then updated {fields}."
            await self._record(work, declared, current, "Recovered", msg)
        elif new_spec:
            work.event("Normal", "Updated", f"Updated Renku environment {renku_id}: {drift}.")
            msg = f"Updated {fields}." + (f" {last}" if last else "")
            reason = "Updated" if last is None else cond.LAST_ACTIVE_ENVIRONMENT
            await self._record(work, declared, current, reason, msg)
        else:
            work.event(
                "Warning", "DriftCorrected", f"Restored Renku environment {renku_id}: {drift}."
            )
            await self._record(
                work, declared, current, "DriftCorrected", f"Restored after drift: {drift}."
            )

    async def _archiving_last(
        self, work: Work, declared: Declared, found: Mapping[str, Any], renku_id: str
    ) -> str | None:
        """The warning when this update archives Renku's last active global environment."""
        if declared.get("is_archived") is not True or found.get("is_archived"):
            return None
        return await warn_if_last_active(work, self.sync, renku_id, "Archiving")

    async def _missing(
        self, work: Work, spec: GlobalEnvironmentSpec, declared: Declared, current: IdClaim
    ) -> None:
        renku_id = current.renku_id
        if (spec.drift_policy or "Overwrite") == "Report":
            msg = f"Environment {renku_id} was deleted in Renku. driftPolicy is Report: not recreated."
            work.condition(cond.SYNCED, "False", "Drifted", msg)
            return
        work.event(
            "Warning",
            "Recreating",
            f"Environment {renku_id} was deleted in Renku; creating it again.",
        )
        # A fresh create: the old record goes, and an old attempt must not "recover" anything.
        await self.ownership.release(work.ref, current)
        work.status = work.status.model_copy(
            update={"renku_id": None, "published": None, "create_attempt": None}
        )
        await self._create(work, spec, declared)

    def _published(
        self, work: Work, declared: Declared, old: PublishedStatus | None
    ) -> PublishedStatus:
        smoke = _passed_smoke(work)
        published = PublishedStatus(
            generation=work.ref.generation,
            image=declared["container_image"],
            time=cond.now(),
            fingerprint=payload.fingerprint(declared),
            environment=RenkuEnvironmentState.model_validate(declared),
            **smoke,
        )
        if old is not None and old.fingerprint == published.fingerprint and old.environment:
            # The same version: its publish time stays; a newer passed test is recorded.
            return old.model_copy(update=smoke) if smoke else old
        return published

    async def _record(
        self, work: Work, declared: Declared, current: IdClaim, reason: str, msg: str
    ) -> None:
        """Renku holds `declared`: the record (where users cannot write) first, then status."""
        published = self._published(work, declared, current.last_known_good)
        if current.last_known_good != published:
            await self.ownership.save_last_known_good(work.ref, current, published)
        work.status = work.status.model_copy(
            update={
                "renku_id": current.renku_id,
                "published": published,
                "last_sync_time": cond.now(),
                "create_attempt": None,
            }
        )
        work.condition(cond.SYNCED, "True", reason, msg)

    def _failed(self, work: Work, exc: RenkuError) -> None:
        self._back_off(work)
        if isinstance(exc, RenkuValidationError):
            reason, hint = "RejectedByRenku", "Fix the spec so that Renku accepts it."
        elif isinstance(exc, RenkuCredentialsError):
            reason, hint = (
                "CredentialsRejected",
                "Check the credentials Secret (see README: Renku credentials).",
            )
        elif isinstance(exc, RenkuUnavailableError):
            reason, hint = "RenkuUnavailable", "Will retry."
        else:
            reason, hint = "RenkuError", "Will retry."
        work.condition(cond.SYNCED, "False", reason, f"{exc} {hint}")


def effective_policy(
    settings: Settings, namespace: str, policy: DeletionPolicy | None
) -> DeletionPolicy:
    """deletionPolicy as applied: Delete outside trusted namespaces is an Archive."""
    chosen: DeletionPolicy = policy or "Archive"
    if chosen == "Delete" and not settings.is_trusted(namespace):
        return "Archive"
    return chosen


def taken_over_message(claimed: IdClaim, old: ClaimOwner) -> str:
    """The ClaimTakenOver Event: whose environment this object got, and why."""
    return (
        f"Renku environment {claimed.renku_id} was owned by an earlier GlobalEnvironment "
        f"{old.namespace}/{old.name} (uid {old.uid}), deleted without its clean-up: this "
        "object owns it now."
    )


def not_applied(exc: RenkuError) -> bool:
    """Whether a failed POST certainly created nothing."""
    if isinstance(exc, RenkuValidationError | RenkuCredentialsError):
        return True
    return isinstance(exc, RenkuUnavailableError) and not exc.maybe_applied


def ambiguous_message(exc: AmbiguousRecoveryError) -> str:
    return (
        f"An earlier create whose answer was lost matches {len(exc.ids)} environments in "
        f"Renku: {', '.join(exc.ids)}. The operator does not guess which one it made, and "
        "creates none. Delete or archive the duplicates in Renku's admin panel (the one left "
        "is recovered), or set spec.renkuId to the one to keep."
    )


def _owner_name(exc: OwnershipConflictError) -> str:
    owner = exc.owner
    return f"{owner.namespace}/{owner.name}" if owner else "unknown"


def _shared_message(renku_id: str | None) -> str:
    return (
        f"status.renkuId names {renku_id}, which several GlobalEnvironments named when the "
        "ownership records began: it is given to none of them from status. Nothing was "
        "changed in Renku. Adopt it with spec.renkuId from a trusted namespace (an admin "
        f"decides which object owns it), and remove it from the others' status."
    )


def _passed_smoke(work: Work) -> dict[str, Any]:
    """The passed smoke test this version is published with (the operator's own verdict:
    work.status.smoke_test comes from the object's record), as PublishedStatus fields."""
    smoke = work.status.smoke_test
    if smoke is None or smoke.result != "Passed" or not smoke.session:
        return {}
    return {"smoke_session": smoke.session, "smoke_tested_at": smoke.finished_at}


def report_kept(work: Work) -> None:
    """A new spec failed its checks: say what is still live in Renku."""
    published = work.status.published
    if published is None:
        msg = "Nothing published yet: the spec has to pass its checks first."
        work.condition(cond.SYNCED, "False", "NotPublished", msg)
        return
    msg = (
        f"Renku keeps the last version that passed: generation {published.generation} "
        f"({published.image}), published {published.time}."
    )
    work.condition(cond.SYNCED, "False", "LastKnownGood", msg)
