"""What the handlers share: built once at start-up, closed at shutdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..config import Settings
from ..metrics import ReadyGauge
from ..services.reconciler import Reconciler
from ..services.smoketest import SmokeTester

Closer = Callable[[], Awaitable[object]]


@dataclass
class OperatorContext:
    settings: Settings
    reconciler: Reconciler
    smoke: SmokeTester
    closers: list[Closer] = field(default_factory=list)
    ready: ReadyGauge = field(default_factory=ReadyGauge)
    closing: bool = False
    """Set at shutdown: timers still firing then must not use the closed clients."""

    async def aclose(self) -> None:
        self.closing = True
        for closer in reversed(self.closers):
            await closer()
