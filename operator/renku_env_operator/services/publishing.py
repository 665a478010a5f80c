"""The publish step: make Renku hold the declared state, or report why it does not.

Turns RenkuSync's results and errors into the Synced condition, status fields and Events.
Runs on every reconcile, but talks to Renku only when something is due: a new spec, a retry
after a failure, or the periodic drift check (which reads the shared snapshot).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Container
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..api.spec import GlobalEnvironmentSpec
from ..api.status import CreateAttemptStatus, PublishedStatus, RenkuEnvironmentState
from ..clients.globalenvironments import StatusWriteError
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
from .renku_sync import AdoptionError, RenkuSync

if TYPE_CHECKING:
    from .work import ObjectRef, Work

StatusWriter = Callable[["ObjectRef", dict[str, Any]], Awaitable[None]]


class Publisher:
    def __init__(self, settings: Settings, sync: RenkuSync, write_status: StatusWriter) -> None:
        self.settings = settings
        self.sync = sync
        self.write_status = write_status
        # Per-object clocks (retry_at, checked_at) live in the object's record: work.memo.

    async def publish(
        self, work: Work, spec: GlobalEnvironmentSpec, image: str, claimed: Container[str]
    ) -> None:
        if spec.suspend:
            msg = "spec.suspend is true: no writes to Renku until it is false."
            work.condition(cond.SYNCED, "False", "Suspended", msg)
            return
        declared = payload.declared_state(spec, work.ref.name, image)
        if not self._due(work, declared):
            return
        try:
            await self._publish(work, spec, declared, claimed)
        except RenkuError as exc:
            self._failed(work, exc)
        except AdoptionError as exc:
            work.memo.retry_at = time.monotonic() + self.settings.retry_backoff_seconds
            work.condition(cond.SYNCED, "False", "AdoptionFailed", str(exc))
        except StatusWriteError as exc:
            # Without the recorded attempt a lost answer could not be recovered: do not POST.
            work.memo.retry_at = time.monotonic() + self.settings.retry_backoff_seconds
            msg = f"{exc}; nothing was sent to Renku. Check the operator's rights on globalenvironments/status."
            work.condition(cond.SYNCED, "False", "StatusWriteFailed", msg)
        else:
            work.memo.retry_at = 0.0
            work.memo.checked_at = time.monotonic()

    async def hold(self, work: Work, spec: GlobalEnvironmentSpec, claimed: Container[str]) -> None:
        """A new spec failed its checks: keep the last known good version in Renku, drift
        included, and say which version is live."""
        published, renku_id = work.status.published, work.status.renku_id
        now = time.monotonic()
        last = work.memo.checked_at
        quiet = now < work.memo.retry_at or now - last < self.settings.drift_interval_seconds
        if (
            spec.suspend
            or published is None
            or published.environment is None
            or not renku_id
            or quiet
        ):
            report_kept(work)
            return
        declared = published.environment.model_dump(by_alias=False)
        work.memo.checked_at = now
        try:
            await self._converge(work, spec, declared, renku_id, claimed)
        except RenkuError as exc:
            self._failed(work, exc)
            return
        found = cond.find(work.conditions, cond.SYNCED)
        if found is None or found.reason != "Drifted":
            report_kept(work)

    def _due(self, work: Work, declared: Declared) -> bool:
        now = time.monotonic()
        if now < work.memo.retry_at:
            return False
        published = work.status.published
        unchanged = published is not None and published.fingerprint == payload.fingerprint(declared)
        in_sync = cond.find(work.conditions, cond.SYNCED)
        settled = in_sync is not None and in_sync.status == "True"
        recent = now - work.memo.checked_at < self.settings.drift_interval_seconds
        return not (unchanged and settled and recent and work.status.renku_id)

    async def _publish(
        self, work: Work, spec: GlobalEnvironmentSpec, declared: Declared, claimed: Container[str]
    ) -> None:
        status = work.status
        renku_id = status.renku_id
        if spec.renku_id and spec.renku_id != renku_id:
            await self.sync.adopt(spec.renku_id, claimed)
            renku_id = spec.renku_id
            work.event("Normal", "Adopted", f"Adopted Renku environment {renku_id}.")
        if renku_id is None:
            await self._create(work, declared, claimed)
            return
        await self._converge(work, spec, declared, renku_id, claimed)

    async def _create(self, work: Work, declared: Declared, claimed: Container[str]) -> None:
        attempt = work.status.create_attempt
        if attempt is not None:
            started = datetime.fromisoformat(attempt.started_at.replace("Z", "+00:00"))
            found = await self.sync.recover(declared, started, claimed)
            if found is not None:
                work.event(
                    "Normal",
                    "Recovered",
                    f"Found environment {found} from an earlier create whose answer was lost.",
                )
                self._record(
                    work,
                    declared,
                    found,
                    "Recovered",
                    "Recovered the environment an earlier create made.",
                )
                return
        new_attempt = CreateAttemptStatus(
            started_at=cond.now(), fingerprint=payload.fingerprint(declared)
        )

        async def record() -> None:
            written = {"createAttempt": new_attempt.model_dump(by_alias=True)}
            await self.write_status(work.ref, written)
            work.note_written(written)

        work.status = work.status.model_copy(update={"create_attempt": new_attempt})
        renku_id = await self.sync.create(declared, record)
        work.event(
            "Normal", "Created", f"Created Renku environment {renku_id} ({declared['name']})."
        )
        self._record(
            work, declared, renku_id, "Created", f"Created environment {renku_id} in Renku."
        )

    async def _converge(
        self,
        work: Work,
        spec: GlobalEnvironmentSpec,
        declared: Declared,
        renku_id: str,
        claimed: Container[str],
    ) -> None:
        published = work.status.published
        new_spec = published is None or published.fingerprint != payload.fingerprint(declared)
        if new_spec:
            current = await self.sync.fetch(renku_id)
        else:
            current = (await self.sync.snapshot.get()).get(renku_id)
            if current is None:  # confirm by id before recreating: cheap, and only then
                current = await self.sync.fetch(renku_id)
        if current is None:
            await self._missing(work, spec, declared, renku_id, claimed)
            return
        changes = payload.diff(declared, payload.observed_state(current))
        if not changes:
            self._record(work, declared, renku_id, "InSync", "Renku matches the declared state.")
            return
        drift = payload.describe_drift(changes)
        if not new_spec and (spec.drift_policy or "Overwrite") == "Report":
            msg = f"Changed in Renku outside this resource: {drift}. driftPolicy is Report: not restored."
            work.condition(cond.SYNCED, "False", "Drifted", msg)
            return
        await self.sync.update(renku_id, changes)
        self.sync.snapshot.invalidate()
        if new_spec:
            work.event("Normal", "Updated", f"Updated Renku environment {renku_id}: {drift}.")
            self._record(
                work,
                declared,
                renku_id,
                "Updated",
                f"Updated {', '.join(c.field for c in changes)}.",
            )
        else:
            work.event(
                "Warning", "DriftCorrected", f"Restored Renku environment {renku_id}: {drift}."
            )
            self._record(
                work, declared, renku_id, "DriftCorrected", f"Restored after drift: {drift}."
            )

    async def _missing(
        self,
        work: Work,
        spec: GlobalEnvironmentSpec,
        declared: Declared,
        renku_id: str,
        claimed: Container[str],
    ) -> None:
        if (spec.drift_policy or "Overwrite") == "Report":
            msg = f"Environment {renku_id} was deleted in Renku. driftPolicy is Report: not recreated."
            work.condition(cond.SYNCED, "False", "Drifted", msg)
            return
        work.event(
            "Warning",
            "Recreating",
            f"Environment {renku_id} was deleted in Renku; creating it again.",
        )
        # A fresh create: an old attempt must not "recover" someone else's environment.
        work.status = work.status.model_copy(update={"renku_id": None, "create_attempt": None})
        await self._create(work, declared, claimed)

    def _record(self, work: Work, declared: Declared, renku_id: str, reason: str, msg: str) -> None:
        now = cond.now()
        published = PublishedStatus(
            generation=work.ref.generation,
            image=declared["container_image"],
            time=now,
            fingerprint=payload.fingerprint(declared),
            environment=RenkuEnvironmentState.model_validate(declared),
        )
        old = work.status.published
        if old is not None and old.fingerprint == published.fingerprint and old.environment:
            published = old
        work.status = work.status.model_copy(
            update={
                "renku_id": renku_id,
                "published": published,
                "last_sync_time": now,
                "create_attempt": None,
            }
        )
        work.condition(cond.SYNCED, "True", reason, msg)

    def _failed(self, work: Work, exc: RenkuError) -> None:
        work.memo.retry_at = time.monotonic() + self.settings.retry_backoff_seconds
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
