"""The smoke-test gate: a verdict for exactly this spec and image before anything is published."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from ..api.spec import GlobalEnvironmentSpec, SmokeTestSpec
from ..api.status import SmokeTestStatus
from ..clients.kube import KubeError
from ..domain import conditions as cond
from ..domain import images
from ..domain import smokepod as sp
from .work import ObjectRef, Work


class SmokeRunner(Protocol):
    async def step(
        self,
        ref: ObjectRef,
        spec: GlobalEnvironmentSpec,
        image: str,
        previous: SmokeTestStatus | None,
        *,
        image_workdir: str | None = None,
        purpose: Literal["current", "update"] = "current",
    ) -> SmokeTestStatus: ...


class SmokeGate:
    """Runs the smoke test of the current image (and, when asked, of the newest update)."""

    def __init__(self, smoke: SmokeRunner | None) -> None:
        self.smoke = smoke

    async def run(self, work: Work, spec: GlobalEnvironmentSpec, image: str) -> bool | None:
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
        workdir = work.status.image.working_dir if work.status.image else None
        session = session_fingerprint(spec, image, workdir, work.ref.retest)
        if _settled(previous, session, work.ref, image, settings):
            return previous is not None and previous.result == "Passed"
        # A final verdict that is not settled is stale: start a new test rather than reuse it.
        running = (
            previous
            if previous is not None
            and previous.result in {"Pending", "Running"}
            and _same_session(previous, session, work.ref, image)
            else None
        )
        # A test keeps the generation it started at: an edit that leaves the session as it is
        # (name, description, archived) must not restart it.
        started = running.generation if running is not None else None
        target = dataclasses.replace(work.ref, generation=started or work.ref.generation)
        try:
            result = await self.smoke.step(target, spec, image, running, image_workdir=workdir)
        except KubeError as exc:
            # RBAC, quota or an API server hiccup: say so where the admin looks, retry next tick.
            msg = f"Cannot run the smoke pod: {exc}. Check the operator's rights on pods in its smoke namespace."
            work.condition(cond.SMOKE_TESTED, "Unknown", "KubernetesError", msg)
            return None
        result = result.model_copy(update={"trigger": work.ref.retest, "session": session})
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
        message = f"{result.reason}: {result.message}"
        # The SmokeTestFailed Event above already says it, once per verdict.
        work.condition(cond.SMOKE_TESTED, "False", "SmokeTestFailed", message, announce=False)
        return False

    async def test_update(self, work: Work, spec: GlobalEnvironmentSpec) -> None:
        """Smoke-test the newest available version too, when asked: advisory, never blocks."""
        image_status = work.status.image
        wanted = spec.image_policy is not None and spec.image_policy.test_updates
        if (
            self.smoke is None
            or not wanted
            or image_status is None
            or not image_status.latest_version
            or not image_status.latest_digest  # unread this time: a finding says so
        ):
            return
        tagged = images.parse_image_reference(spec.image).with_tag(image_status.latest_version)
        # Exactly the digest the registry gave: a tag that moves after the test is tested again
        # (bump writes only tested digests).
        candidate = str(tagged.with_digest(image_status.latest_digest))
        previous = image_status.update_test
        if (
            previous is not None
            and previous.image == candidate
            and previous.result in {"Passed", "Failed"}
        ):
            return
        running = previous if previous is not None and previous.image == candidate else None
        result = await self.smoke.step(
            work.ref,
            spec,
            candidate,
            running,
            image_workdir=image_status.working_dir,
            purpose="update",
        )
        if result.result in {"Passed", "Failed"}:
            kind: Literal["Normal", "Warning"] = (
                "Normal" if result.result == "Passed" else "Warning"
            )
            verdict = "passed" if result.result == "Passed" else f"failed ({result.reason})"
            work.event(
                kind, f"UpdateTest{result.result}", f"Update {candidate} {verdict} its smoke test."
            )
        updated = image_status.model_copy(update={"update_test": result})
        work.status = work.status.model_copy(update={"image": updated})


def session_fingerprint(
    spec: GlobalEnvironmentSpec, image: str, image_workdir: str | None, retest: str | None
) -> str:
    """What a smoke test's verdict depends on: the pod's shape (image or digest, uid, gid, port,
    directories, command, args, default URL, strip path prefix), the smoke settings and the
    retest request. Name, description and archived are not part of it."""
    smoke = spec.smoke_test
    budgets = (smoke.timeout_seconds, smoke.stable_seconds) if smoke is not None else None
    text = json.dumps([sp.smoke_hash(spec, image, image_workdir), budgets, retest])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _same_session(previous: SmokeTestStatus, session: str, ref: ObjectRef, image: str) -> bool:
    if previous.session is not None:
        return previous.session == session
    # Written by an operator that keyed tests by generation: keep its verdict for that one.
    return (previous.generation, previous.image, previous.trigger) == (
        ref.generation,
        image,
        ref.retest,
    )


def _settled(
    previous: SmokeTestStatus | None,
    session: str,
    ref: ObjectRef,
    image: str,
    spec: SmokeTestSpec | None,
) -> bool:
    """A verdict exists for exactly this session and retest request, and is recent enough."""
    if previous is None or previous.result not in {"Passed", "Failed"}:
        return False
    same = _same_session(previous, session, ref, image)
    interval = spec.interval_minutes if spec is not None else None
    if not same or interval is None or previous.finished_at is None:
        return same
    try:
        finished = datetime.fromisoformat(previous.finished_at.replace("Z", "+00:00"))
    except ValueError:
        return False  # an unreadable time: test again rather than trust it
    return datetime.now(UTC) - finished < timedelta(minutes=interval)
