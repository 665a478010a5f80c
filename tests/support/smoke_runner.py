"""A smoke runner the test scripts (services/smoke_gate.py's SmokeRunner): a fixed answer, an
answer made from what it was asked to test, or an error; it counts its calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.api.status import SmokeTestStatus
from renku_env_operator.services.work import ObjectRef

Answer = SmokeTestStatus | Callable[[ObjectRef, str], SmokeTestStatus]


class Runner:
    """Answers `result` (or `result(ref, image)`), or raises `error`."""

    def __init__(self, result: Answer | None = None, error: Exception | None = None):
        self.result, self.error, self.calls = result, error, 0

    async def step(
        self,
        ref: ObjectRef,
        spec: GlobalEnvironmentSpec,
        image: str,
        previous: SmokeTestStatus | None,
        *,
        image_workdir: str | None = None,
        purpose: Literal["current", "update"] = "current",
    ) -> SmokeTestStatus:
        self.calls += 1
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result if isinstance(self.result, SmokeTestStatus) else self.result(ref, image)
