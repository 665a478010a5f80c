"""Registry checks before any pod: exists, public, digest, platforms, config, tag policy, updates.

Asks the registry at most once per interval per image (or after a failed look-up, once per
backoff); in between, the last ImageStatus stands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol, TypeVar

from ..api.spec import GlobalEnvironmentSpec
from ..api.status import ImageFinding, ImageStatus
from ..clients.registry_errors import (
    ImageNotFoundError,
    ImageNotPublicError,
    RegistryError,
    RegistryNotAllowedError,
    RegistryResponseTooLargeError,
    RegistryUnavailableError,
)
from ..config import Settings
from ..domain import conditions as cond
from ..domain import images
from ..domain.images import Finding, ImageFacts, ImageReference
from ..domain.payload import RENKU_DEFAULTS
from .objects import ObjectState

NodeArchitectures = Callable[[], Awaitable[Collection[str]]]
T = TypeVar("T")
MAX_UPDATES_LISTED = 10
UPDATES_CHECK = "Updates"
"""The check name of findings about the tag listing behind update reports."""
REGISTRY_CHECK = "Registry"
"""The check name of findings that mean the registry look-up itself failed."""


class RegistryApi(Protocol):
    """What the verifier needs from a registry (clients/registry.py's RegistryClient)."""

    async def inspect(
        self, ref: ImageReference, node_architectures: Collection[str] | None = None
    ) -> ImageFacts: ...

    async def list_tags(self, ref: ImageReference) -> list[str]: ...


class ImageVerifier:
    """Registry facts and checks of each object's image, cached between look-ups."""

    def __init__(
        self,
        settings: Settings,
        registry: RegistryApi,
        node_architectures: NodeArchitectures,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.node_architectures = node_architectures
        self._clock = clock

    def _due(
        self, spec: GlobalEnvironmentSpec, previous: ImageStatus | None, memo: ObjectState
    ) -> bool:
        checked = memo.image_checked_at
        if previous is None or previous.reference != spec.image or checked is None:
            return True
        if memo.image_reference != spec.image:
            return True
        # Any failed look-up is retried soon, not after the full interval: the registry may be
        # back, or the image pushed (CI finishing after the merge) or made public meanwhile.
        failed = any(f.check == REGISTRY_CHECK for f in previous.findings)
        interval = (
            self.settings.retry_backoff_seconds
            if failed
            else self.settings.image_check_interval_seconds
        )
        return self._clock() - checked >= interval

    async def verify(
        self, spec: GlobalEnvironmentSpec, previous: ImageStatus | None, memo: ObjectState
    ) -> ImageStatus:
        """The image's status, from the registry when due; `memo` is the object's record,
        which keeps when the registry was last asked (nothing else keeps it)."""
        if previous is not None and not self._due(spec, previous, memo):
            return previous
        memo.image_checked_at, memo.image_reference = self._clock(), spec.image
        status = await self._inspect(spec, previous)
        memo.set_has_update(bool(status.latest_version))
        return status

    async def _inspect(
        self, spec: GlobalEnvironmentSpec, previous: ImageStatus | None
    ) -> ImageStatus:
        now = cond.now()
        try:
            ref = images.parse_image_reference(spec.image)
        except images.InvalidImageReference as exc:
            return _failed(spec.image, now, "InvalidImageReference", str(exc))
        architectures = await self.node_architectures() or None
        # One deadline for the whole check, the tag listing included: per-request timeouts
        # alone let a server that drips a byte at a time hold a check for as long as it likes.
        deadline = asyncio.get_running_loop().time() + self.settings.registry_check_deadline_seconds
        try:
            async with asyncio.timeout_at(deadline):
                facts = await self.registry.inspect(ref, architectures)
        except TimeoutError:
            message = _deadline_message(ref, self.settings.registry_check_deadline_seconds)
            if previous is not None and previous.reference == spec.image and previous.digest:
                return _kept(previous, f"{message}; keeping what it said at {previous.checked_at}")
            return _failed(spec.image, now, "RegistryDeadlineExceeded", f"{message}; will retry")
        except RegistryNotAllowedError as exc:
            return _failed(spec.image, now, "RegistryNotAllowed", str(exc))
        except RegistryResponseTooLargeError as exc:
            return _failed(spec.image, now, "RegistryResponseTooLarge", str(exc))
        except ImageNotFoundError as exc:
            return _failed(spec.image, now, "ImageNotFound", str(exc))
        except ImageNotPublicError as exc:
            return _failed(spec.image, now, "ImageNotPublic", str(exc))
        except RegistryUnavailableError as exc:
            if previous is not None and previous.reference == spec.image and previous.digest:
                return _kept(previous, f"{exc}; keeping what it said at {previous.checked_at}")
            return _failed(spec.image, now, "RegistryUnavailable", f"{exc}; will retry")
        except RegistryError as exc:
            return _failed(spec.image, now, "ImageCheckFailed", str(exc))
        findings = await self._findings(spec, ref, facts)
        updates, refused = await self._updates(spec, ref, deadline)
        if refused is not None:
            findings.append(refused)
        latest_digest, refused = await self._candidate_digest(spec, ref, updates, deadline)
        if refused is not None:
            findings.append(refused)
        return ImageStatus(
            reference=spec.image,
            digest=facts.digest,
            platforms=[str(p) for p in facts.platforms],
            working_dir=facts.config.working_dir or None,
            checked_at=now,
            findings=[_as_status(f) for f in findings],
            latest_version=updates[0] if updates else None,
            available_updates=updates[:MAX_UPDATES_LISTED],
            latest_digest=latest_digest,
        )

    async def _findings(
        self, spec: GlobalEnvironmentSpec, ref: ImageReference, facts: ImageFacts
    ) -> list[Finding]:
        found: list[Finding] = []
        platform = images.check_platforms(facts, await self.node_architectures())
        if platform is not None:
            found.append(platform)
        tag = images.check_tag_policy(ref, self.settings.tag_policy)
        if tag is not None:
            found.append(tag)
        found += images.check_config(
            facts,
            uid=spec.uid or RENKU_DEFAULTS["uid"],
            gid=spec.gid or RENKU_DEFAULTS["gid"],
            port=spec.port or RENKU_DEFAULTS["port"],
            working_directory=spec.working_directory,
            command=list(spec.command) if spec.command else None,
            args=list(spec.args) if spec.args else None,
        )
        return sorted(found, key=lambda f: f.severity != "Error")

    async def _updates(
        self, spec: GlobalEnvironmentSpec, ref: ImageReference, deadline: float
    ) -> tuple[list[str], Finding | None]:
        """Newer versions; update reports are advisory, so a failing listing never blocks
        publishing, but a refused one is said (a Warning), as it names a rule to know."""
        if ref.tag is None or not images.is_semver_tag(ref.tag):
            return [], None
        tag, allowed = ref.tag, spec.image_policy.update_range if spec.image_policy else None

        async def newer() -> list[str]:
            return images.newer_versions(tag, await self.registry.list_tags(ref), allowed)

        found, refused = await self._advisory(ref, newer(), deadline, _NO_UPDATES)
        return found or [], refused

    async def _candidate_digest(
        self, spec: GlobalEnvironmentSpec, ref: ImageReference, updates: list[str], deadline: float
    ) -> tuple[str | None, Finding | None]:
        """The digest of the newest version, when its update is to be smoke-tested: the test
        runs that digest, so what `bump` later writes is exactly what was tested."""
        if not updates or spec.image_policy is None or not spec.image_policy.test_updates:
            return None, None
        candidate = ref.with_tag(updates[0])

        async def digest() -> str:
            return (await self.registry.inspect(candidate)).digest

        return await self._advisory(candidate, digest(), deadline, _NOT_TESTED)

    async def _advisory(
        self, ref: ImageReference, asked: Awaitable[T], deadline: float, consequence: str
    ) -> tuple[T | None, Finding | None]:
        """An advisory look-up within the check's deadline: None when it failed, with a
        Warning when the failure names a rule or a bound to know (`consequence` says what is
        missing then); other failures are retried at the next check, silently."""
        try:
            async with asyncio.timeout_at(deadline):
                return await asked, None
        except TimeoutError:
            message = _deadline_message(ref, self.settings.registry_check_deadline_seconds)
            return None, _update_warning("RegistryDeadlineExceeded", f"{message}; {consequence}")
        except RegistryNotAllowedError as exc:
            return None, _update_warning("RegistryNotAllowed", f"{exc}; {consequence}")
        except RegistryResponseTooLargeError as exc:
            return None, _update_warning("RegistryResponseTooLarge", f"{exc}; {consequence}")
        except (RegistryError, images.InvalidVersionRange):
            return None, None


_NO_UPDATES = "newer versions are not reported"
_NOT_TESTED = "the newest version is not smoke-tested until its digest can be read"


def _update_warning(reason: str, message: str) -> Finding:
    return Finding(check=UPDATES_CHECK, severity="Warning", reason=reason, message=message)


def _deadline_message(ref: ImageReference, seconds: float) -> str:
    return (
        f"the registry check of {ref.familiar} did not finish within {seconds:g}s "
        "(RENKU_ENV_OPERATOR_REGISTRY_CHECK_DEADLINE_SECONDS, Helm: "
        "registry.checkDeadlineSeconds): the registry answers too slowly"
    )


def _kept(previous: ImageStatus, message: str) -> ImageStatus:
    """A registry outage does not unpublish: the last facts stand, with a warning."""
    warning = ImageFinding(
        check=REGISTRY_CHECK, severity="Warning", reason="RegistryUnavailable", message=message
    )
    findings = [f for f in previous.findings if f.check != REGISTRY_CHECK]
    return previous.model_copy(update={"findings": [*findings, warning]})


def _failed(reference: str, now: str, reason: str, message: str) -> ImageStatus:
    finding = ImageFinding(check=REGISTRY_CHECK, severity="Error", reason=reason, message=message)
    return ImageStatus(reference=reference, checked_at=now, findings=[finding])


def _as_status(finding: Finding) -> ImageFinding:
    return ImageFinding(
        check=finding.check,
        severity=finding.severity,
        reason=finding.reason,
        message=finding.message,
    )
