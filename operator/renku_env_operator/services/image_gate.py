"""The image gate: registry facts and checks decide which image (digest-pinned) is tested."""

from __future__ import annotations

from typing import Any, Protocol

from ..api.spec import GlobalEnvironmentSpec
from ..api.status import ImageStatus
from ..config import Settings
from ..domain import conditions as cond
from .objects import ObjectState
from .work import Work


class ImageVerifier(Protocol):
    async def verify(
        self, spec: GlobalEnvironmentSpec, previous: ImageStatus | None, memo: ObjectState
    ) -> ImageStatus: ...


class ImageGate:
    """Asks the verifier (when checks are on) and turns its findings into ImageVerified."""

    def __init__(self, settings: Settings, images: ImageVerifier | None) -> None:
        self.settings = settings
        self.images = images

    async def verify(self, work: Work, spec: GlobalEnvironmentSpec) -> str | None:
        """The image to test and publish (digest-pinned when known), or None when blocked."""
        if self.images is None or not self.settings.image_checks:
            work.condition(
                cond.IMAGE_VERIFIED, "True", "ChecksDisabled", "Registry checks are disabled."
            )
            return spec.image
        previous = work.status.image
        image_status = _keep_update_test(
            previous, await self.images.verify(spec, previous, work.memo)
        )
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


def _keep_update_test(previous: ImageStatus | None, new: ImageStatus) -> ImageStatus:
    """A fresh registry answer keeps the update's smoke-test verdict while the candidate is the
    same: without it, every re-check (and every restart) would test the same update again."""
    if previous is None or previous.update_test is None or new.update_test is not None:
        return new
    if new.latest_version != previous.latest_version:
        return new  # another candidate: test it
    if new.latest_digest is None:  # not read this time: what was read and tested stands
        return new.model_copy(
            update={"latest_digest": previous.latest_digest, "update_test": previous.update_test}
        )
    if new.latest_digest != previous.latest_digest:
        return new  # its tag moved to another digest: test it again
    return new.model_copy(update={"update_test": previous.update_test})


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
            f"{new.reference} now points to {new.digest} (was {previous.digest}): "
            "smoke-testing it again.",
        )


def _join(findings: list[Any]) -> str:
    return " ".join(f"{f.check}: {f.message}" for f in findings)
