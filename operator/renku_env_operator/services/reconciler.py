"""The reconcile pipeline of one GlobalEnvironment: validate -> image -> smoke test -> publish.

Level-based: every call looks at the spec and the last status and does the next piece of work,
so create, update, resume and the periodic timer all run the same code. Returns the new status
and the Events to post; the kopf handler only applies them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from ..api.spec import GlobalEnvironmentSpec, SmokeTestSpec
from ..api.status import ConditionStatus, GlobalEnvironmentStatus, ImageStatus, SmokeTestStatus
from ..config import Settings
from ..domain import conditions as cond
from ..domain.validation import validate_spec
from .publishing import Publisher


@dataclass(frozen=True)
class ObjectRef:
    """The GlobalEnvironment being reconciled."""

    namespace: str
    name: str
    uid: str
    generation: int
    retest: str | None = None
    """Value of the renku.io/retest annotation: a new value asks for a new smoke test."""


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class Outcome:
    status: GlobalEnvironmentStatus
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None
    message: str = ""


class ImageVerifier(Protocol):
    async def verify(
        self, spec: GlobalEnvironmentSpec, previous: ImageStatus | None, key: str = ""
    ) -> ImageStatus: ...


class SmokeRunner(Protocol):
    async def step(
        self,
        ref: ObjectRef,
        spec: GlobalEnvironmentSpec,
        image: str,
        previous: SmokeTestStatus | None,
        *,
        image_workdir: str | None = None,
    ) -> SmokeTestStatus: ...


@dataclass
class Work:
    """Mutable scratch state of one reconcile."""

    ref: ObjectRef
    status: GlobalEnvironmentStatus
    conditions: list[Any]
    events: list[Event] = field(default_factory=list)

    def condition(self, type_: str, status: ConditionStatus, reason: str, msg: str) -> None:
        old = cond.find(self.conditions, type_)
        self.conditions = cond.set_condition(
            self.conditions, type_, status, reason, msg, self.ref.generation
        )
        changed = old is None or (old.status, old.reason, old.message) != (status, reason, msg)
        if changed and status == "False" and reason not in {"Pending"}:
            self.events.append(Event("Warning", reason, f"{type_}: {msg}"))

    def event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))


class Reconciler:
    """One per operator; serialises work per object (handlers and timers may overlap)."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        images: ImageVerifier | None,
        smoke: SmokeRunner | None,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.images = images
        self.smoke = smoke
        self._locks: dict[str, asyncio.Lock] = {}

    async def reconcile(
        self,
        ref: ObjectRef,
        raw_spec: Mapping[str, Any],
        raw_status: Mapping[str, Any],
        claimed: Collection[str],
    ) -> Outcome:
        lock = self._locks.setdefault(ref.uid, asyncio.Lock())
        async with lock:
            return await self._reconcile(ref, raw_spec, raw_status, claimed)

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
            status = parse_status(raw_status)
            work = Work(ref, status, list(status.conditions))
            retry_after = await self.publisher.retire(work, raw_spec, attempt)
            outcome = self._finish(work, done=False)
            outcome.retry_after = retry_after
            synced = cond.find(work.conditions, cond.SYNCED)
            outcome.message = synced.message if synced else ""
            return outcome

    def forget(self, uid: str) -> None:
        self._locks.pop(uid, None)
        self.publisher.forget(uid)

    async def _reconcile(
        self,
        ref: ObjectRef,
        raw_spec: Mapping[str, Any],
        raw_status: Mapping[str, Any],
        claimed: Collection[str],
    ) -> Outcome:
        status = parse_status(raw_status)
        work = Work(ref, status, cond.initial(status.conditions, ref.generation))
        spec = self._validate(work, raw_spec)
        done = spec is not None
        if spec is not None:
            image = await self._verify_image(work, spec)
            tested = image is not None and await self._smoke_test(work, spec, image)
            done = tested is not None
            if tested:
                pin = spec.image_policy is not None and spec.image_policy.pin_digest
                await self.publisher.publish(
                    work, spec, (image if pin else None) or spec.image, claimed
                )
            elif image is not None and tested is False:
                self.publisher.report_kept(work)
        return self._finish(work, done)

    def _finish(self, work: Work, done: bool) -> Outcome:
        conditions = cond.with_ready(work.conditions, work.ref.generation)
        updates: dict[str, Any] = {"conditions": conditions}
        if done:
            updates["observed_generation"] = work.ref.generation
        return Outcome(work.status.model_copy(update=updates), work.events)

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

    async def _verify_image(self, work: Work, spec: GlobalEnvironmentSpec) -> str | None:
        """The image to test and publish (digest-pinned when known), or None when blocked."""
        if self.images is None or not self.settings.image_checks:
            work.condition(
                cond.IMAGE_VERIFIED, "True", "ChecksDisabled", "Registry checks are disabled."
            )
            return spec.image
        previous = work.status.image
        image_status = await self.images.verify(spec, previous, key=work.ref.uid)
        _report_update(work, previous, image_status)
        work.status = work.status.model_copy(update={"image": image_status})
        errors = [f for f in image_status.findings if f.severity == "Error"]
        warnings = [f for f in image_status.findings if f.severity == "Warning"]
        if errors:
            first = errors[0]
            work.condition(cond.IMAGE_VERIFIED, "False", first.reason, _join(errors))
            return None
        if warnings:
            work.condition(cond.IMAGE_VERIFIED, "True", "VerifiedWithWarnings", _join(warnings))
        else:
            digest = image_status.digest or "unknown digest"
            work.condition(
                cond.IMAGE_VERIFIED, "True", "Verified", f"{spec.image} is public ({digest})."
            )
        if image_status.digest and "@" not in spec.image:
            return f"{spec.image}@{image_status.digest}"
        return spec.image

    async def _smoke_test(self, work: Work, spec: GlobalEnvironmentSpec, image: str) -> bool | None:
        """True: passed (or disabled); False: failed; None: still running."""
        settings = spec.smoke_test
        if self.smoke is None or (settings is not None and not settings.enabled):
            work.condition(
                cond.SMOKE_TESTED,
                "True",
                "Disabled",
                "Smoke test disabled (spec.smokeTest.enabled: false): published without testing.",
            )
            return True
        previous = work.status.smoke_test
        if _settled(previous, work.ref, image, settings):
            return previous is not None and previous.result == "Passed"
        workdir = work.status.image.working_dir if work.status.image else None
        # A final verdict that is not settled is stale: start a new test rather than reuse it.
        running = (
            previous if previous is not None and previous.result in {"Pending", "Running"} else None
        )
        result = await self.smoke.step(work.ref, spec, image, running, image_workdir=workdir)
        result = result.model_copy(update={"trigger": work.ref.retest})
        work.status = work.status.model_copy(update={"smoke_test": result})
        if result.result in {"Pending", "Running"}:
            work.condition(cond.SMOKE_TESTED, "Unknown", result.result, result.message)
            return None
        if previous is None or previous.result != result.result or previous.image != result.image:
            kind: Literal["Normal", "Warning"] = (
                "Normal" if result.result == "Passed" else "Warning"
            )
            work.event(kind, f"SmokeTest{result.result}", f"{result.reason}: {result.message}")
        if result.result == "Passed":
            work.condition(cond.SMOKE_TESTED, "True", "Passed", result.message)
            return True
        work.condition(
            cond.SMOKE_TESTED, "False", "SmokeTestFailed", f"{result.reason}: {result.message}"
        )
        return False


def _report_update(work: Work, previous: ImageStatus | None, new: ImageStatus) -> None:
    """An Event when a newer version appears, and when the tag moved to another digest."""
    if new.latest_version and (previous is None or previous.latest_version != new.latest_version):
        work.event(
            "Normal",
            "UpdateAvailable",
            f"A newer image version is available: {new.latest_version}.",
        )
    moved = previous is not None and previous.reference == new.reference
    if moved and previous and previous.digest and new.digest and previous.digest != new.digest:
        work.event(
            "Warning",
            "ImageTagMoved",
            f"{new.reference} now points to {new.digest} (was {previous.digest}): smoke-testing it again.",
        )


def _settled(
    previous: SmokeTestStatus | None, ref: ObjectRef, image: str, spec: SmokeTestSpec | None
) -> bool:
    """A verdict exists for exactly this spec, image and retest request, and is recent enough."""
    if previous is None or previous.result not in {"Passed", "Failed"}:
        return False
    same = (previous.generation, previous.image, previous.trigger) == (
        ref.generation,
        image,
        ref.retest,
    )
    interval = spec.interval_minutes if spec is not None else None
    if not same or interval is None or previous.finished_at is None:
        return same
    finished = datetime.fromisoformat(previous.finished_at.replace("Z", "+00:00"))
    return datetime.now(UTC) - finished < timedelta(minutes=interval)


def parse_status(raw: Mapping[str, Any]) -> GlobalEnvironmentStatus:
    """The stored status; fields of older operator versions are ignored, not fatal."""
    known = {k: v for k, v in dict(raw).items() if k in _STATUS_ALIASES}
    return GlobalEnvironmentStatus.model_validate(known)


_STATUS_ALIASES = {f.alias or name for name, f in GlobalEnvironmentStatus.model_fields.items()}


def _join(findings: list[Any]) -> str:
    return " ".join(f"{f.check}: {f.message}" for f in findings)
