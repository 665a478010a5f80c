"""What Renku's own checks say about an image, judged against the operator's facts.

Renku's data service answers whether it can pull an image (asked anonymously: whether an
anonymous user's session could), and its resource pools say on which platform their sessions
run. These pure functions turn those answers and the operator's registry facts into findings,
and amend the ImageVerified verdict of the operator's own checks with them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..api.status import ConditionStatus
from .image_checks import Finding

RenkuImageCheckMode = Literal["Warn", "Error", "Off"]
"""RENKU_IMAGE_CHECK: what a finding of Renku's own checks is (Off: Renku is not asked)."""

PULL_CHECK = "RenkuPull"
POOLS_CHECK = "RenkuPools"
RENKU_CANNOT_PULL = "RenkuCannotPull"
POOL_PLATFORM_MISSING = "PoolPlatformMissing"
NO_MATCHING_PLATFORM = "NoMatchingPlatform"
REASONS = frozenset({RENKU_CANNOT_PULL, POOL_PLATFORM_MISSING, NO_MATCHING_PLATFORM})
"""Every reason these checks give (NoMatchingPlatform is shared with the nodes' check)."""


class ResourcePool(BaseModel):
    """One of Renku's resource pools: its sessions run on nodes of ``platform``."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    platform: str | None = None
    """e.g. ``linux/amd64``; None when this Renku does not say."""


class PullAnswer(BaseModel):
    """Renku's answer to ``GET /sessions/images`` for one reference, or why there is none."""

    model_config = ConfigDict(frozen=True)

    accessible: bool | None
    """None: no answer (the endpoint is missing, or Renku did not answer)."""
    platforms: tuple[str, ...] = ()
    """Platforms Renku saw, as ``os/architecture[/variant]``, when it could see them."""
    refused: str | None = None
    """Renku refused the reference itself (422): its message."""
    note: str | None = None
    """Why there is no answer, for the condition message (not a finding)."""


def published_reference(spec_image: str, tested_image: str, pin_digest: bool) -> str:
    """The reference Renku receives: the tested (digest-pinned) one with pinDigest, else the
    spec's own."""
    return tested_image if pin_digest else spec_image


def check_pull(
    reference: str, answer: PullAnswer, mode: RenkuImageCheckMode, *, registry_checked: bool = True
) -> Finding | None:
    """A finding when Renku says it cannot pull the reference that will be published
    (`registry_checked`: whether the operator's own registry check found it)."""
    if mode == "Off" or answer.accessible is not False:
        return None
    severity = "Error" if mode == "Error" else "Warning"
    if answer.refused:
        said = f"Renku's own image check refused {reference} ({answer.refused})"
        what = "use a reference Renku accepts"
    else:
        said = (
            f"Renku's data service cannot pull {reference} (its own image check, asked "
            "anonymously as a session pulls, says accessible: false)"
            + (
                " although the operator's registry check found it"
                if registry_checked
                else "; the operator's own registry checks are off (IMAGE_CHECKS)"
            )
        )
        what = (
            "make sure Renku's network reaches the registry over HTTPS (proxy, mirror, "
            "firewall, DNS) and that the image is public there"
        )
    return Finding(
        check=PULL_CHECK,
        severity=severity,
        reason=RENKU_CANNOT_PULL,
        message=f"{said}, so sessions will fail to start: {what}.",
    )


def _supports(image_platforms: Collection[str], pool_platform: str) -> bool:
    wanted = pool_platform.split("/")[:2]
    # A pool names os/architecture only: any variant of that architecture counts.
    return any(platform.split("/")[:2] == wanted for platform in image_platforms)


def check_pool_platforms(
    image_platforms: Collection[str],
    pools: Sequence[ResourcePool],
    mode: RenkuImageCheckMode,
) -> Finding | None:
    """A finding naming the resource pools whose platform the image is not built for.

    No pool can run it: an error (NoMatchingPlatform, as for the nodes). Some pools cannot:
    a warning, an error with RENKU_IMAGE_CHECK=Error. Unknown platforms (of the image or of
    every pool) give None: absence of evidence is not a failure.
    """
    known = [pool for pool in pools if pool.platform]
    if mode == "Off" or not image_platforms or not known:
        return None
    missing = sorted(
        (pool for pool in known if not _supports(image_platforms, str(pool.platform))),
        key=lambda pool: (pool.name, pool.id),
    )
    if not missing:
        return None
    offered = ", ".join(sorted(image_platforms))
    named = ", ".join(f"{pool.name!r} ({pool.platform})" for pool in missing)
    needed = sorted({str(pool.platform) for pool in missing})
    build = ",".join(sorted({*needed, *(p for p in image_platforms if p.startswith("linux/"))}))
    fix = f"build and push the image for {', '.join(needed)} too (e.g. docker buildx build --platform {build})"
    if len(missing) == len(known):
        return Finding(
            check=POOLS_CHECK,
            severity="Error",
            reason=NO_MATCHING_PLATFORM,
            message=(
                f"the image is built for {offered}, but no resource pool of Renku can run it: "
                f"pools {named}; {fix}"
            ),
        )
    return Finding(
        check=POOLS_CHECK,
        severity="Error" if mode == "Error" else "Warning",
        reason=POOL_PLATFORM_MISSING,
        message=(
            f"the image is built for {offered}, so sessions fail on the resource pools "
            f"{named}; {fix}, or set NODE_ARCHITECTURES to the architectures sessions "
            "really use"
        ),
    )


def amend_verdict(
    status: ConditionStatus,
    reason: str,
    message: str,
    findings: Sequence[Finding],
    notes: Sequence[str] = (),
) -> tuple[ConditionStatus, str, str]:
    """ImageVerified with Renku's findings added to the operator's own (passed) verdict."""
    errors = [f for f in findings if f.severity == "Error"]
    warnings = [f for f in findings if f.severity == "Warning"]
    said = [f"{f.check}: {f.message}" for f in (*errors, *warnings)]
    if errors:
        status, reason, message = "False", errors[0].reason, " ".join(said)
    elif warnings:
        reason = "VerifiedWithWarnings" if reason == "Verified" else reason
        message = " ".join([message, *said])
    return status, reason, " ".join([message, *notes])
