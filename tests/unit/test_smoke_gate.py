"""The smoke gate: what the SmokeTested condition says for each answer of the smoke runner."""

from __future__ import annotations

from typing import Any

from renku_env_operator.api.spec import GlobalEnvironmentSpec, SmokeTestSpec
from renku_env_operator.api.status import GlobalEnvironmentStatus, ImageStatus, SmokeTestStatus
from renku_env_operator.clients.kube import KubeForbiddenError
from renku_env_operator.domain import conditions as cond
from renku_env_operator.services.smoke_gate import SmokeGate, session_fingerprint
from renku_env_operator.services.work import ObjectRef, Work
from tests.support.smoke_runner import Runner

REF = ObjectRef(namespace="renku", name="python", uid="uid-1", generation=1)
IMAGE = "ghcr.io/example/env:1.0.0"
DIGEST = "sha256:" + "a" * 64


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


def verdict_for(spec: GlobalEnvironmentSpec, generation: int = 1) -> SmokeTestStatus:
    """A passed verdict recorded for `spec` (its session fingerprint) at `generation`."""
    session = session_fingerprint(spec, IMAGE, None, None)
    return SmokeTestStatus(
        result="Passed", reason="Passed", generation=generation, image=IMAGE, session=session
    )


async def test_name_description_and_archived_keep_the_verdict() -> None:
    runner = Runner(result=SmokeTestStatus(result="Running", reason="Created"))
    edited = SPEC.model_copy(update={"name": "New", "description": "new", "archived": True})
    later = ObjectRef(namespace="renku", name="python", uid="uid-1", generation=5)
    done = Work(later, GlobalEnvironmentStatus(smoke_test=verdict_for(SPEC)), [])

    assert await SmokeGate(runner).run(done, edited, IMAGE) is True
    assert runner.calls == 0


async def test_every_field_that_shapes_the_session_asks_for_a_new_test() -> None:
    changes: list[dict[str, Any]] = [
        {"uid": 1001},
        {"gid": 1001},
        {"port": 8888},
        {"working_directory": "/home/work"},
        {"mount_directory": "/home/work"},
        {"command": ["sh"]},
        {"args": ["-c", "serve"]},
        {"default_url": "/lab"},
        {"strip_path_prefix": True},
        {"smoke_test": SmokeTestSpec(timeout_seconds=60)},
    ]
    for change in changes:
        runner = Runner(result=SmokeTestStatus(result="Running", reason="Created"))
        done = work(smoke_test=verdict_for(SPEC))
        assert await SmokeGate(runner).run(done, SPEC.model_copy(update=change), IMAGE) is None
        assert runner.calls == 1, change


async def test_a_retest_request_asks_for_a_new_test() -> None:
    runner = Runner(result=SmokeTestStatus(result="Running", reason="Created"))
    asked = ObjectRef(namespace="renku", name="python", uid="uid-1", generation=1, retest="1")
    done = Work(asked, GlobalEnvironmentStatus(smoke_test=verdict_for(SPEC)), [])

    assert await SmokeGate(runner).run(done, SPEC, IMAGE) is None
    assert runner.calls == 1


async def test_a_running_test_keeps_the_generation_it_started_at() -> None:
    seen: list[int] = []

    class Recording(Runner):
        async def step(self, ref: ObjectRef, *args: Any, **kwargs: Any) -> SmokeTestStatus:
            seen.append(ref.generation)
            return await super().step(ref, *args, **kwargs)

    session = session_fingerprint(SPEC, IMAGE, None, None)
    running = SmokeTestStatus(result="Running", generation=1, image=IMAGE, session=session)
    later = ObjectRef(namespace="renku", name="python", uid="uid-1", generation=2)
    done = Work(later, GlobalEnvironmentStatus(smoke_test=running), [])

    await SmokeGate(Recording(result=running)).run(done, SPEC, IMAGE)

    assert seen == [1]  # the pod of generation 1 is the one to follow, not a new one


async def test_an_update_whose_digest_was_not_read_is_not_tested_by_its_tag() -> None:
    """bump writes only what was tested: a tag without its digest is never tested."""
    runner = Runner(verdict_for(SPEC))
    policy = GlobalEnvironmentSpec.model_validate(
        {"image": IMAGE, "imagePolicy": {"testUpdates": True}}
    )
    unread = ImageStatus(reference=IMAGE, digest=DIGEST, latest_version="1.1.0")
    done = work(image=unread)

    await SmokeGate(runner).test_update(done, policy)

    assert runner.calls == 0
    assert done.status.image is not None
    assert done.status.image.update_test is None

    candidate = "sha256:" + "c" * 64
    read = unread.model_copy(update={"latest_digest": candidate})
    done = work(image=read)
    await SmokeGate(runner).test_update(done, policy)
    assert runner.calls == 1
    assert done.status.image is not None
    assert done.status.image.update_test is not None
