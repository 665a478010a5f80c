"""The reconcile pipeline of one GlobalEnvironment: validate -> image -> smoke test -> publish.

Level-based: every pass looks at the spec and the status and does the next piece of work, so a
new object, an edit, a restart and a periodic look all run the same code. It returns the new
status and the Events to post; the object's owner (services/owner.py) writes them. Any error,
whatever its type, ends as a condition and an Event, and the pass is retried after the backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Mapping
from contextlib import nullcontext
from typing import Any, TypeVar

from ..api.spec import GlobalEnvironmentSpec
from ..api.status import GlobalEnvironmentStatus, ImageStatus, SmokeTestStatus
from ..clients.claims import ClaimError
from ..config import Settings
from ..domain import conditions as cond
from ..domain.image_reference import InvalidImageReference, parse_image_reference
from ..domain.validation import validate_spec
from .image_gate import ImageGate, ImageVerifier
from .objects import ObjectState
from .publishing import Publisher, report_kept
from .renku_image_check import RenkuImageCheck
from .retiring import Retirer
from .smoke_gate import SmokeGate, SmokeRunner
from .work import ObjectRef, Outcome, Work, waiting

__all__ = ["ObjectRef", "Outcome", "Reconciler"]

NOT_CONFIGURED = (
    "Validated and tested, not published: RENKU_ENV_OPERATOR_RENKU_URL is not set "
    "(Helm: renku.url)."
)
_RUNNING = {"Pending", "Running"}
T = TypeVar("T")
log = logging.getLogger(__name__)


class Reconciler:
    """One per operator. Stateless between passes: what an object needs remembered lives in its
    record (`ObjectState`), and its owner serialises the passes."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher | None,
        images: ImageVerifier | None,
        smoke: SmokeRunner | None,
        renku_check: RenkuImageCheck | None = None,
    ) -> None:
        self.settings = settings
        self.renku_check = renku_check
        self.publisher = publisher
        self.retirer = Retirer(settings, publisher.sync) if publisher else None
        self.image_gate = ImageGate(settings, images)
        self.smoke_gate = SmokeGate(smoke)

    async def reconcile(
        self,
        ref: ObjectRef,
        raw_spec: Mapping[str, Any],
        status: GlobalEnvironmentStatus,
        memo: ObjectState,
    ) -> Outcome:
        """One pass over the pipeline, from `status` (what the API server holds)."""
        status = await self._trusted(ref, status, memo)
        work = Work(ref, status, cond.initial(status.conditions, ref.generation), memo=memo)
        try:
            spec = await _step(cond.VALIDATED, self._validate(work, raw_spec))
            done = spec is None or await self._pipeline(work, spec)
        except _StepFailed as failed:  # whatever it was: bounded, reported, retried
            done = False
            memo.retry_at = time.monotonic() + self.settings.retry_backoff_seconds
            msg = (
                f"The operator failed here ({failed}); retrying in "
                f"{self.settings.retry_backoff_seconds:g}s. Please report it if it persists."
            )
            work.condition(failed.condition, "Unknown", "OperatorError", msg)
            work.event("Warning", "OperatorError", msg)
        outcome = self._finish(work, done)
        # What this pass found is the record the next one decides from.
        memo.image, memo.smoke_test = outcome.status.image, outcome.status.smoke_test
        memo.conditions = list(outcome.status.conditions)
        update_test = outcome.status.image.update_test if outcome.status.image else None
        outcome.in_flight = not done or (update_test is not None and update_test.result in _RUNNING)
        return outcome

    async def _trusted(
        self, ref: ObjectRef, status: GlobalEnvironmentStatus, memo: ObjectState
    ) -> GlobalEnvironmentStatus:
        """`status` with its image facts and smoke verdict replaced by the operator's own.

        status.image and status.smokeTest are for display: anyone who may write the status
        could put a passed verdict or another digest there. After a start, a passed verdict is
        believed only when the operator's claim records that this session passed (what it
        published); image facts are asked from the registry again."""
        if not memo.facts_known:
            memo.smoke_test = await self._confirmed(ref, status.smoke_test)
            memo.image = _confirmed_image(status.image, memo.smoke_test)
            memo.conditions = None  # the first pass starts from what status shows
            memo.facts_known = True
        update: dict[str, Any] = {"image": memo.image, "smoke_test": memo.smoke_test}
        if memo.conditions is not None:
            update["conditions"] = memo.conditions
        return status.model_copy(update=update)

    async def _confirmed(
        self, ref: ObjectRef, shown: SmokeTestStatus | None
    ) -> SmokeTestStatus | None:
        if shown is None or shown.result != "Passed" or not shown.session:
            return None
        if self.publisher is None:
            return None
        try:
            records = await self.publisher.ownership.owned(ref)
        except ClaimError as exc:  # unconfirmed: tested again, the safe way round
            log.info(
                "%s/%s: claims unreadable (%s): smoke-testing again", ref.namespace, ref.name, exc
            )
            return None
        for record in records:
            good = record.last_known_good
            if good is not None and good.smoke_session == shown.session:
                # The verdict and its time are the record's; the rest (checks, pod) is display.
                return shown.model_copy(update={"finished_at": good.smoke_tested_at})
        return None

    async def retire(
        self,
        ref: ObjectRef,
        raw_spec: Mapping[str, Any],
        status: GlobalEnvironmentStatus,
        memo: ObjectState,
        attempt: int,
    ) -> Outcome:
        """Apply the deletion policy; bounded retries, then say how to release the object."""
        work = Work(ref, status, list(status.conditions), memo=memo)
        retry_after = await self.retirer.retire(work, raw_spec, attempt) if self.retirer else None
        outcome = self._finish(work, done=False)
        outcome.retry_after = retry_after
        synced = cond.find(work.conditions, cond.SYNCED)
        outcome.message = synced.message if synced else ""
        return outcome

    async def _pipeline(self, work: Work, spec: GlobalEnvironmentSpec) -> bool:
        """Image (ours, then Renku's own) -> smoke test -> publish, one step after the other. False while a smoke test
        is still running (or failed to run)."""
        # The registry check waits on the network: without a reconcile slot, in its
        # registry's own queue (a slow registry delays only the objects that use it).
        checks = self.image_gate.images is not None and self.settings.image_checks
        async with waiting(f"registry {_registry(spec.image)}") if checks else nullcontext():
            image = await _step(cond.IMAGE_VERIFIED, self.image_gate.verify(work, spec))
        if self.renku_check is not None:  # Renku's own checks of exactly what it will receive
            image = await _step(cond.IMAGE_VERIFIED, self.renku_check.verify(work, spec, image))
        tested = (
            await _step(cond.SMOKE_TESTED, self.smoke_gate.run(work, spec, image))
            if image
            else False
        )
        if tested:
            await _step(cond.SYNCED, self._publish(work, spec, image))
        elif tested is False:
            await _step(cond.SYNCED, self._hold(work, spec))
        if image and tested is not None:
            await _step(cond.SMOKE_TESTED, self.smoke_gate.test_update(work, spec))
        return tested is not None

    async def _publish(
        self,
        work: Work,
        spec: GlobalEnvironmentSpec,
        image: str | None,
    ) -> None:
        if self.publisher is None:
            work.condition(cond.SYNCED, "False", "RenkuNotConfigured", NOT_CONFIGURED)
            return
        pin = spec.image_policy is not None and spec.image_policy.pin_digest
        await self.publisher.publish(work, spec, image if pin and image else spec.image)

    async def _hold(self, work: Work, spec: GlobalEnvironmentSpec) -> None:
        if self.publisher is None:
            report_kept(work)
            return
        await self.publisher.hold(work, spec)

    def _finish(self, work: Work, done: bool) -> Outcome:
        conditions = cond.with_ready(work.conditions, work.ref.generation)
        updates: dict[str, Any] = {"conditions": conditions}
        if done:
            updates["observed_generation"] = work.ref.generation
        status = work.status.model_copy(update=updates)
        return Outcome(status, work.events)

    async def _validate(
        self, work: Work, raw_spec: Mapping[str, Any]
    ) -> GlobalEnvironmentSpec | None:
        spec, problems = validate_spec(raw_spec)
        errors = [p for p in problems if p.severity == "error"]
        if spec is None or errors:
            text = "; ".join(f"{p.field}: {p.message}" for p in errors)
            work.condition(
                cond.VALIDATED, "False", "Invalid", f"{text}. Fix the spec and apply it again."
            )
            return None
        if problems:
            text = "; ".join(f"{p.field}: {p.message}" for p in problems)
            old = cond.find(work.conditions, cond.VALIDATED)
            if old is None or old.message != text:
                work.event("Warning", "SpecWarning", text)
            work.condition(cond.VALIDATED, "True", "ValidWithWarnings", text)
        else:
            work.condition(cond.VALIDATED, "True", "Valid", "The spec is valid.")
        return spec


def _confirmed_image(
    shown: ImageStatus | None, smoke: SmokeTestStatus | None
) -> ImageStatus | None:
    """After a start, the image's digest and WORKDIR as status shows them, when the confirmed
    smoke verdict ran exactly that digest (its session fingerprint covers both): kept only so
    that a registry outage right after a restart keeps what passed. The registry is asked
    again at once; everything else in status.image (findings, platforms, updates) is dropped."""
    if smoke is None or shown is None or not shown.digest or not shown.reference:
        return None
    if smoke.image not in (f"{shown.reference}@{shown.digest}", shown.reference):
        return None
    return ImageStatus(
        reference=shown.reference,
        digest=shown.digest,
        working_dir=shown.working_dir,
        checked_at=shown.checked_at,
    )


class _StepFailed(Exception):
    """A pipeline step raised: `condition` is the one it reports on."""

    def __init__(self, condition: str, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.condition = condition


async def _step(condition: str, step: Awaitable[T]) -> T:
    """Run one pipeline step; an error of any type is tagged with the step's condition."""
    try:
        return await step
    except Exception as exc:  # bounded by the caller, whatever it is
        raise _StepFailed(condition, exc) from exc


def _registry(image: str) -> str:
    try:
        return parse_image_reference(image).api_host
    except InvalidImageReference:
        return "?"  # validation refused it already; never reached
