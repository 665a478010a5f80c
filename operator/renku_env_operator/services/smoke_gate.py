"""The smoke-test gate: a verdict for exactly this spec and image before anything is published."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from ..api.spec import GlobalEnvironmentSpec, SmokeTestSpec
from ..api.status import SmokeTestStatus
from ..clients.kube import KubeError
from ..domain import conditions as cond
from ..domain import images
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
        if _settled(previous, work.ref, image, settings):
            return previous is not None and previous.result == "Passed"
        workdir = work.status.image.working_dir if work.status.image else None
        # A final verdict that is not settled is stale: start a new test rather than reuse it.
        running = (
            previous if previous is not None and previous.result in {"Pending", "Running"} else None
        )
        try:
            result = await self.smoke.step(work.ref, spec, image, running, image_workdir=workdir)
        except KubeError as exc:
            # RBAC, quota or an API server hiccup: say so where the admin looks, retry next tick.
            msg = f"Cannot run the smoke pod: {exc}. Check the operator's rights on pods in its smoke namespace."
            work.condition(cond.SMOKE_TESTED, "Unknown", "KubernetesError", msg)
            return None
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
        ):
            return
        candidate = str(
            images.parse_image_reference(spec.image).with_tag(image_status.latest_version)
        )
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
