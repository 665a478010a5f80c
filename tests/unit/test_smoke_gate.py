"""The smoke gate: what the SmokeTested condition says for each answer of the smoke runner."""

from __future__ import annotations

from typing import Any, Literal

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.api.status import GlobalEnvironmentStatus, SmokeTestStatus
from renku_env_operator.clients.kube import KubeForbiddenError
from renku_env_operator.domain import conditions as cond
from renku_env_operator.services.smoke_gate import SmokeGate
from renku_env_operator.services.work import ObjectRef, Work

REF = ObjectRef(namespace="renku", name="python", uid="uid-1", generation=1)
IMAGE = "ghcr.io/example/env:1.0.0"


class Runner:
    """A smoke runner that answers `result`, or raises `error`."""

    def __init__(self, result: SmokeTestStatus | None = None, error: Exception | None = None):
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
        return self.result


def work(**status: Any) -> Work:
    current = GlobalEnvironmentStatus(**status)
    return Work(REF, current, cond.initial(current.conditions, REF.generation))


def smoke_tested(done: Work) -> tuple[str, str, str]:
    found = cond.find(done.conditions, cond.SMOKE_TESTED)
    assert found is not None
    return found.status, found.reason, found.message


SPEC = GlobalEnvironmentSpec(image=IMAGE)


async def test_a_kubernetes_error_is_reported_and_retried_not_raised() -> None:
    gate = SmokeGate(Runner(error=KubeForbiddenError("pods is forbidden", status=403)))
    done = work()

    assert await gate.run(done, SPEC, IMAGE) is None

    status, reason, message = smoke_tested(done)
    assert (status, reason) == ("Unknown", "KubernetesError")
    assert "pods is forbidden" in message


async def test_a_verdict_for_the_same_image_and_generation_is_not_run_again() -> None:
    passed = SmokeTestStatus(result="Passed", reason="Passed", generation=1, image=IMAGE)
    runner = Runner(result=passed)
    done = work(smoke_test=passed)

    assert await SmokeGate(runner).run(done, SPEC, IMAGE) is True
    assert runner.calls == 0


async def test_a_new_digest_is_tested_again() -> None:
    passed = SmokeTestStatus(result="Passed", reason="Passed", generation=1, image=IMAGE)
    running = SmokeTestStatus(result="Running", reason="Created", message="pulling")
    runner = Runner(result=running)
    done = work(smoke_test=passed)

    assert await SmokeGate(runner).run(done, SPEC, f"{IMAGE}@sha256:{'b' * 64}") is None

    assert runner.calls == 1
    assert smoke_tested(done)[:2] == ("Unknown", "Running")


async def test_a_failure_is_reported_with_its_specific_reason() -> None:
    failed = SmokeTestStatus(
        result="Failed", reason="NeverReady", message="nothing accepted TCP on 0.0.0.0:8080"
    )
    done = work()

    assert await SmokeGate(Runner(result=failed)).run(done, SPEC, IMAGE) is False

    status, reason, message = smoke_tested(done)
    assert (status, reason) == ("False", "SmokeTestFailed")
    assert message.startswith("NeverReady: ")
    assert [(e.type, e.reason) for e in done.events] == [("Warning", "SmokeTestFailed")]
