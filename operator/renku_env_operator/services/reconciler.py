"""The reconcile pipeline of one GlobalEnvironment: validate -> image -> smoke test -> publish.

Level-based: every call looks at the spec and the last status and does the next piece of work,
so create, update, resume and the periodic timer all run the same code. Returns the new status
and the Events to post; the kopf handler only applies them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ..api.spec import GlobalEnvironmentSpec
from ..api.status import GlobalEnvironmentStatus
from ..config import Settings
from ..domain import conditions as cond
from ..domain.validation import validate_spec
from .image_gate import ImageGate, ImageVerifier
from .publishing import Publisher, report_kept
from .renku_image_check import RenkuImageCheck
from .retiring import Retirer
from .smoke_gate import SmokeGate, SmokeRunner
from .work import ObjectRef, Outcome, StatusMemory, Work

__all__ = ["ObjectRef", "Outcome", "Reconciler"]

NOT_CONFIGURED = (
    "Validated and tested, not published: RENKU_ENV_OPERATOR_RENKU_URL is not set "
    "(Helm: renku.url)."
)


class Reconciler:
    """One per operator; serialises work per object (handlers and timers may overlap)."""

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
        self._locks: dict[str, asyncio.Lock] = {}
        self._statuses = StatusMemory()

    async def reconcile(
        self,
        ref: ObjectRef,
        raw_spec: Mapping[str, Any],
        raw_status: Mapping[str, Any],
    ) -> Outcome:
        lock = self._locks.setdefault(ref.uid, asyncio.Lock())
        async with lock:
            return await self._reconcile(ref, raw_spec, raw_status)

    async def retire(
        self,
        ref: ObjectRef,
        raw_spec: Mapping[str, Any],
        raw_status: Mapping[str, Any],
        attempt: int,
    ) -> Outcome:
        """Apply the deletion policy; bounded retries, then say how to release the object."""
        lock = self._locks.setdefault(ref.uid, asyncio.Lock())
        async with lock:
            status = self._statuses.current(ref.uid, raw_status)
            work = Work(ref, status, list(status.conditions))
            retry_after = (
                await self.retirer.retire(work, raw_spec, attempt) if self.retirer else None
            )
            outcome = self._finish(work, done=False, start=status)
            self._statuses.remember(ref.uid, raw_status, outcome)
            outcome.retry_after = retry_after
            synced = cond.find(work.conditions, cond.SYNCED)
            outcome.message = synced.message if synced else ""
            return outcome

    def forget(self, uid: str) -> None:
        self._statuses.forget(uid)
        self._locks.pop(uid, None)
        if self.publisher is not None:
            self.publisher.forget(uid)
        if self.image_gate.images is not None:
            self.image_gate.images.forget(uid)

    async def _reconcile(
        self,
        ref: ObjectRef,
        raw_spec: Mapping[str, Any],
        raw_status: Mapping[str, Any],
    ) -> Outcome:
        status = self._statuses.current(ref.uid, raw_status)
        work = Work(ref, status, cond.initial(status.conditions, ref.generation))
        spec = self._validate(work, raw_spec)
        done = spec is None or await self._pipeline(work, spec)
        outcome = self._finish(work, done, start=status)
        self._statuses.remember(ref.uid, raw_status, outcome)
        return outcome

    async def _pipeline(self, work: Work, spec: GlobalEnvironmentSpec) -> bool:
        """Image -> smoke test -> publish. False while a smoke test is still running."""
        image = await self.image_gate.verify(work, spec)
        if self.renku_check is not None:  # Renku's own checks of what it will receive
            image = await self.renku_check.verify(work, spec, image)
        tested = await self.smoke_gate.run(work, spec, image) if image else False
        if tested and self.publisher is None:
            work.condition(cond.SYNCED, "False", "RenkuNotConfigured", NOT_CONFIGURED)
        elif tested and self.publisher is not None:
            pin = spec.image_policy is not None and spec.image_policy.pin_digest
            await self.publisher.publish(work, spec, image if pin and image else spec.image)
        elif tested is False and self.publisher is not None:
            await self.publisher.hold(work, spec)
        elif tested is False:
            report_kept(work)
        if image and tested is not None:
            await self.smoke_gate.test_update(work, spec)
        return tested is not None

    def _finish(self, work: Work, done: bool, start: GlobalEnvironmentStatus) -> Outcome:
        conditions = cond.with_ready(work.conditions, work.ref.generation)
        updates: dict[str, Any] = {"conditions": conditions}
        if done:
            updates["observed_generation"] = work.ref.generation
        base = start.model_dump(by_alias=True, exclude_none=True, mode="json")
        status = work.status.model_copy(update=updates)
        return Outcome(status, work.events, base=base, written=dict(work.written))

    def _validate(self, work: Work, raw_spec: Mapping[str, Any]) -> GlobalEnvironmentSpec | None:
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
