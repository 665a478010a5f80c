"""What the handlers share: built once at start-up, closed at shutdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..config import Settings
from ..services.claims_gc import ClaimCollector
from ..services.owner import Owners
from ..services.smoketest import SmokeTester

Closer = Callable[[], Awaitable[object]]


@dataclass
class OperatorContext:
    settings: Settings
    owners: Owners
    smoke: SmokeTester
    closers: list[Closer] = field(default_factory=list)
    claims: ClaimCollector | None = None
    """Collects the claims of objects gone without their clean-up (None: nothing published)."""
    closing: bool = False
    """Set at shutdown: owners still starting then must not use the closed clients."""

    async def aclose(self) -> None:
        self.closing = True
        for closer in reversed(self.closers):
            await closer()
