"""Renku's own checks before publishing: can Renku pull the reference, can its pools run it.

After the operator's registry checks passed, Renku's data service is asked anonymously whether
it can pull exactly the reference it will receive (digest-pinned when that is published), and
the image's platforms are compared with the platforms of Renku's resource pools. The findings
amend ImageVerified; with RENKU_IMAGE_CHECK=Error they block publishing.

Requests stay few: Renku's answer is kept per reference (so objects sharing an image share
it), the pools list is one request per interval for every object, and a Renku without the
image check (404) is remembered for an interval for every object.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from .. import metrics
from ..api.spec import GlobalEnvironmentSpec
from ..clients.renku_errors import RenkuError, RenkuNotFoundError, RenkuValidationError
from ..config import Settings
from ..domain import conditions as cond
from ..domain import renku_checks as checks
from ..domain.images import Finding
from ..domain.renku_checks import PullAnswer, ResourcePool
from .work import Work, waiting

log = logging.getLogger(__name__)

NodeArchitectures = Callable[[], Awaitable[Collection[str]]]


class RenkuLookupsApi(Protocol):
    """What the check needs from Renku (clients/renku_lookups.py's RenkuLookups)."""

    async def check_image(self, reference: str) -> PullAnswer: ...

    async def list_resource_pools(self) -> list[ResourcePool]: ...


class PoolsSnapshot:
    """Renku's resource pools, fetched at most once per interval for every object.

    A failed request keeps the pools last seen (None before any) and is retried after the
    backoff, still once for every object.
    """

    def __init__(
        self,
        lookups: RenkuLookupsApi,
        max_age: float,
        retry_after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookups = lookups
        self._max_age = max_age
        self._retry_after = retry_after
        self._clock = clock
        self._lock = asyncio.Lock()
        self._expires = float("-inf")
        self._pools: list[ResourcePool] | None = None

    async def get(self) -> list[ResourcePool] | None:
        """The pools with a platform; None while unknown."""
        async with self._lock:
            if self._clock() >= self._expires:
                started = self._clock()
                try:
                    listed = await self._lookups.list_resource_pools()
                except RenkuError as exc:
                    log.warning("cannot list Renku's resource pools (%s): will retry", exc)
                    self._expires = started + self._retry_after
                else:
                    self._pools = [pool for pool in listed if pool.platform] or None
                    self._expires = started + self._max_age
            return self._pools


@dataclass(frozen=True)
class _Cached:
    answer: PullAnswer
    expires: float


class RenkuImageCheck:
    """One per operator: Renku's verdict per reference, the shared pools, the findings."""

    def __init__(
        self,
        settings: Settings,
        lookups: RenkuLookupsApi,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_references: int = 4096,
    ) -> None:
        self.settings = settings
        self._max_references = max_references
        self.mode: checks.RenkuImageCheckMode = settings.renku_image_check
        self._lookups = lookups
        self._clock = clock
        self.pools = PoolsSnapshot(
            lookups, settings.drift_interval_seconds, settings.retry_backoff_seconds, clock
        )
        self._answers: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._missing_until = float("-inf")
        self._probe = asyncio.Lock()
        self._seen = False  # whether this Renku has answered the image check at all
        self._failures: dict[str, int] = {}  # references Renku did not answer, in a row

    @property
    def uses_pools(self) -> bool:
        """NODE_ARCHITECTURES, when set, wins over the pools: they are not asked then."""
        return self.mode != "Off" and not self.settings.node_architectures

    def node_architectures(self, fallback: NodeArchitectures) -> NodeArchitectures:
        """The architectures the registry check judges platforms by.

        NODE_ARCHITECTURES when set; none (the check is left to the pools, below) when Renku's
        pools tell their platforms; else ``fallback``, the operator's own nodes.
        """

        async def read() -> Collection[str]:
            if self.uses_pools and await self.pools.get():
                return set()
            return await fallback()

        return read

    async def verify(
        self, work: Work, spec: GlobalEnvironmentSpec, image: str | None
    ) -> str | None:
        """Amend ImageVerified with Renku's findings; the image to test and publish (the
        registry check's `image`), or None when a finding blocks it."""
        if image is None or self.mode == "Off":
            return image
        pin = spec.image_policy is not None and bool(spec.image_policy.pin_digest)
        reference = checks.published_reference(spec.image, image, pin)
        answer = await self._answer(reference)
        facts = work.status.image
        platforms = list(facts.platforms) if facts and facts.platforms else list(answer.platforms)
        pools = await self.pools.get() if platforms and self.uses_pools else None
        findings = [
            finding
            for finding in (
                checks.check_pull(reference, answer, self.mode, registry_checked=facts is not None),
                checks.check_pool_platforms(platforms, pools or [], self.mode),
            )
            if finding is not None
        ]
        self._report(work, findings, [answer.note] if answer.note else [])
        return None if any(f.severity == "Error" for f in findings) else image

    def _report(self, work: Work, findings: list[Finding], notes: list[str]) -> None:
        current = cond.find(work.conditions, cond.IMAGE_VERIFIED)
        if current is None or (not findings and not notes):
            return
        status, reason, message = checks.amend_verdict(
            current.status, current.reason, current.message, findings, notes
        )
        # The registry check set ImageVerified afresh: its transition time counts from the
        # condition this reconcile started with, not from the registry check's rewrite.
        before = cond.find(work.status.conditions, cond.IMAGE_VERIFIED)
        at = before.last_transition_time if before and before.status == status else None
        work.conditions = cond.set_condition(
            work.conditions,
            cond.IMAGE_VERIFIED,
            status,
            reason,
            message,
            work.ref.generation,
            at=at,
        )
        for finding in findings:
            # Once per finding: reconciles that find it again already show it in the message.
            if before is None or finding.message not in before.message:
                work.event("Warning", finding.reason, f"{finding.check}: {finding.message}")
                metrics.RENKU_FINDINGS.labels(reason=finding.reason).inc()

    async def _answer(self, reference: str) -> PullAnswer:
        known = self._known(reference)
        if known is not None:
            return known
        # Until Renku has answered once, one request at a time: a Renku without the image
        # check (404) is then asked once, not once per object reconciling at that moment.
        # After that, one lock per reference: objects sharing an image share one request.
        # The wait holds no reconcile slot; the request has its own short deadline.
        gate = self._locks.setdefault(reference, asyncio.Lock()) if self._seen else self._probe
        async with waiting("renku"), gate:
            known = self._known(reference)
            if known is not None:
                return known
            answer, keep = await self._ask(reference)
            self._answers[reference] = _Cached(answer, self._clock() + keep)
            self._prune()
            return answer

    def _known(self, reference: str) -> PullAnswer | None:
        if self._clock() < self._missing_until:
            return PullAnswer(accessible=None, note=self._missing_note())
        cached = self._answers.get(reference)
        return cached.answer if cached is not None and self._clock() < cached.expires else None

    async def _ask(self, reference: str) -> tuple[PullAnswer, float]:
        """Renku's answer and how long it holds: a yes for the registry re-check interval, a
        no for the drift interval (a fix is seen sooner), no answer until the backoff."""
        settings = self.settings
        deadline = settings.renku_image_check_timeout_seconds
        try:
            async with asyncio.timeout(deadline):
                answer = await self._lookups.check_image(reference)
        except TimeoutError:
            log.warning("Renku's image check did not answer for %s within %gs", reference, deadline)
            note = (
                f"Renku's own image check did not answer within {deadline:g}s "
                "(RENKU_IMAGE_CHECK_TIMEOUT_SECONDS): asked again later."
            )
            return PullAnswer(accessible=None, note=note), self._backoff(reference)
        except RenkuNotFoundError:
            self._seen = False
            self._missing_until = self._clock() + settings.image_check_interval_seconds
            log.warning(
                "Renku has no image check (GET /sessions/images answered 404): not asked for "
                "%ss, for any GlobalEnvironment",
                f"{settings.image_check_interval_seconds:g}",
            )
            return PullAnswer(accessible=None, note=self._missing_note()), 0.0
        except RenkuValidationError as exc:
            self._seen = True
            refused = exc.message + (f": {exc.detail}" if exc.detail else "")
            return PullAnswer(accessible=False, refused=refused), settings.drift_interval_seconds
        except RenkuError as exc:
            log.warning("Renku's image check did not answer for %s: %s", reference, exc)
            note = f"Renku's own image check did not answer ({exc}): asked again later."
            return PullAnswer(accessible=None, note=note), self._backoff(reference)
        self._seen = True
        self._failures.pop(reference, None)
        if answer.accessible:
            return answer, settings.image_check_interval_seconds
        return answer, settings.drift_interval_seconds

    def _backoff(self, reference: str) -> float:
        """How long no answer is kept: the retry backoff, doubling while Renku keeps failing
        for this reference, up to the drift interval (one request per reference and interval
        however many objects use it)."""
        failures = self._failures[reference] = self._failures.get(reference, 0) + 1
        backoff: float = self.settings.retry_backoff_seconds * 2.0 ** min(failures - 1, 16)
        return min(backoff, self.settings.drift_interval_seconds)

    def _missing_note(self) -> str:
        return (
            "Renku's own image check is not available in this Renku (GET /sessions/images "
            "answered 404): not asked."
        )

    def _prune(self) -> None:
        now = self._clock()
        self._answers = {ref: c for ref, c in self._answers.items() if c.expires > now}
        if len(self._answers) > self._max_references:  # a bound whatever the intervals: the
            # references are the namespace users' to choose; the nearest expiries go first
            latest = sorted(self._answers.items(), key=lambda item: item[1].expires)
            self._answers = dict(latest[-self._max_references :])
        self._locks = {
            ref: lock for ref, lock in self._locks.items() if ref in self._answers or lock.locked()
        }
        # A reference's failures count while it is asked (its lock is held) or kept.
        self._failures = {
            ref: n
            for ref, n in self._failures.items()
            if ref in self._answers or ref in self._locks
        }
