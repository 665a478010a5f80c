"""RenkuImageCheck: Renku's verdict per reference, the shared pools, findings on ImageVerified."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.api.status import GlobalEnvironmentStatus, ImageStatus
from renku_env_operator.clients.renku_errors import (
    RenkuNotFoundError,
    RenkuUnavailableError,
    RenkuValidationError,
)
from renku_env_operator.config import Settings
from renku_env_operator.domain import conditions as cond
from renku_env_operator.domain.renku_checks import PullAnswer, ResourcePool
from renku_env_operator.services.renku_image_check import RenkuImageCheck
from renku_env_operator.services.work import ObjectRef, Work

IMAGE = "registry.example.org/team/env:1.0.0"
DIGEST = "sha256:" + "b" * 64
AMD = ResourcePool(id=1, name="Default pool", platform="linux/amd64")
ARM = ResourcePool(id=2, name="arm64 pool", platform="linux/arm64")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeRenku:
    """Answers like Renku's lookups, and counts them."""

    def __init__(self) -> None:
        self.inaccessible: set[str] = set()
        self.pools: list[ResourcePool] = [AMD]
        self.asked: list[str] = []
        self.pool_requests = 0
        self.image_error: Exception | None = None
        self.pools_error: Exception | None = None

    async def check_image(self, reference: str) -> PullAnswer:
        self.asked.append(reference)
        await asyncio.sleep(0)  # let concurrent callers overlap
        if self.image_error is not None:
            raise self.image_error
        return PullAnswer(accessible=reference not in self.inaccessible)

    async def list_resource_pools(self) -> list[ResourcePool]:
        self.pool_requests += 1
        await asyncio.sleep(0)
        if self.pools_error is not None:
            raise self.pools_error
        return list(self.pools)


def settings(**values: Any) -> Settings:
    base: dict[str, Any] = {
        "image_check_interval_seconds": 3600,
        "drift_interval_seconds": 300,
        "retry_backoff_seconds": 15,
    }
    return Settings(**(base | values))


def make(renku: FakeRenku, clock: Clock, **values: Any) -> RenkuImageCheck:
    return RenkuImageCheck(settings(**values), renku, clock=clock)


def spec(**fields: Any) -> GlobalEnvironmentSpec:
    return GlobalEnvironmentSpec.model_validate({"image": IMAGE, **fields})


def work(previous: Work | None = None, platforms: list[str] | None = None, uid: str = "u1") -> Work:
    """A reconcile after the registry check passed (from `previous`'s outcome, if given)."""
    image = ImageStatus(reference=IMAGE, digest=DIGEST, platforms=platforms or [])
    conditions = list(previous.conditions) if previous else []
    status = GlobalEnvironmentStatus(conditions=conditions, image=image)
    current = Work(ObjectRef("renku", "env", uid, 1), status, list(conditions))
    current.condition(cond.IMAGE_VERIFIED, "True", "Verified", f"{IMAGE} is public ({DIGEST}).")
    return current


def verified(current: Work) -> tuple[str, str, str]:
    found = cond.find(current.conditions, cond.IMAGE_VERIFIED)
    assert found is not None
    return found.status, found.reason, found.message


async def test_an_accessible_image_changes_nothing() -> None:
    renku, clock = FakeRenku(), Clock()
    current = work()

    image = await make(renku, clock).verify(current, spec(), f"{IMAGE}@{DIGEST}")

    assert image == f"{IMAGE}@{DIGEST}"
    assert verified(current) == ("True", "Verified", f"{IMAGE} is public ({DIGEST}).")
    assert current.events == []
    assert renku.asked == [IMAGE]  # the tag: that is what Renku receives without pinDigest


async def test_with_pin_digest_renku_is_asked_about_the_pinned_reference() -> None:
    renku, clock = FakeRenku(), Clock()

    await make(renku, clock).verify(
        work(), spec(imagePolicy={"pinDigest": True}), f"{IMAGE}@{DIGEST}"
    )

    assert renku.asked == [f"{IMAGE}@{DIGEST}"]


async def test_inaccessible_warns_once_and_publishes() -> None:
    renku, clock = FakeRenku(), Clock()
    renku.inaccessible.add(IMAGE)
    check = make(renku, clock)
    first = work()

    assert await check.verify(first, spec(), IMAGE) == IMAGE
    second = work(first)
    assert await check.verify(second, spec(), IMAGE) == IMAGE

    status, reason, message = verified(second)
    assert (status, reason) == ("True", "VerifiedWithWarnings")
    assert "Renku's data service cannot pull" in message
    assert [e.reason for e in first.events] == ["RenkuCannotPull"]
    assert second.events == []  # the same finding again: no second Event
    assert renku.asked == [IMAGE]


async def test_inaccessible_blocks_with_error_and_keeps_its_transition_time() -> None:
    renku, clock = FakeRenku(), Clock()
    renku.inaccessible.add(IMAGE)
    check = make(renku, clock, renku_image_check="Error")
    first = work()

    assert await check.verify(first, spec(), IMAGE) is None
    # As if the first reconcile was long ago: the second must keep that transition time.
    first.conditions = [
        c.model_copy(update={"last_transition_time": "2020-01-01T00:00:00Z"})
        for c in first.conditions
    ]
    before = cond.find(first.conditions, cond.IMAGE_VERIFIED)
    second = work(first)
    assert await check.verify(second, spec(), IMAGE) is None

    assert verified(second)[:2] == ("False", "RenkuCannotPull")
    after = cond.find(second.conditions, cond.IMAGE_VERIFIED)
    assert before is not None
    assert after is not None
    assert after.last_transition_time == before.last_transition_time
    assert [e.reason for e in first.events] == ["RenkuCannotPull"]
    assert second.events == []


async def test_answers_are_kept_per_reference_for_their_interval() -> None:
    renku, clock = FakeRenku(), Clock()
    renku.inaccessible.add("other/image:2.0.0")
    check = make(renku, clock)

    await check.verify(work(uid="a"), spec(), IMAGE)
    await check.verify(work(uid="b"), spec(), IMAGE)  # another object, same image
    await check.verify(work(uid="c"), spec(image="other/image:2.0.0"), "other/image:2.0.0")
    clock.now += 301  # past the drift interval: only the "no" is asked again
    await check.verify(work(uid="a"), spec(), IMAGE)
    await check.verify(work(uid="c"), spec(image="other/image:2.0.0"), "other/image:2.0.0")
    clock.now += 3600
    await check.verify(work(uid="a"), spec(), IMAGE)

    assert renku.asked == [IMAGE, "other/image:2.0.0", "other/image:2.0.0", IMAGE]


async def test_concurrent_objects_with_one_image_share_one_request() -> None:
    renku, clock = FakeRenku(), Clock()
    check = make(renku, clock)

    await asyncio.gather(*(check.verify(work(uid=str(i)), spec(), IMAGE) for i in range(5)))

    assert renku.asked == [IMAGE]


async def test_a_renku_without_the_image_check_is_said_in_the_message_and_asked_no_more() -> None:
    renku, clock = FakeRenku(), Clock()
    renku.image_error = RenkuNotFoundError("Not found in Renku", status=404)
    check = make(renku, clock, renku_image_check="Error")
    works = [work(uid=str(i)) for i in range(3)]

    images = [f"team/env{i}:1.0.0" for i in range(3)]
    # Three objects with three images, reconciling at the same moment.
    results = await asyncio.gather(
        *(check.verify(w, spec(image=i), i) for w, i in zip(works, images, strict=True))
    )

    assert results == images  # not an error, even with Error
    assert len(renku.asked) == 1  # remembered for every object
    status, reason, message = verified(works[2])
    assert (status, reason) == ("True", "Verified")
    assert "not available in this Renku" in message
    assert all(w.events == [] for w in works)
    clock.now += 3601
    await check.verify(work(), spec(), IMAGE)
    assert len(renku.asked) == 2


async def test_answers_kept_are_bounded_in_number_whatever_their_interval() -> None:
    renku, clock = FakeRenku(), Clock()
    check = RenkuImageCheck(settings(), renku, clock=clock, max_references=50)
    for index in range(200):  # one namespace user, 200 references within the hour
        clock.now += 1
        image = f"registry.example.org/team/env-{index}:1.0.0"
        await check.verify(work(), spec(image=image), image)
    assert len(check._answers) == 50
    assert len(check._locks) <= 50
    image = "registry.example.org/team/env-199:1.0.0"
    await check.verify(work(), spec(image=image), image)
    assert len(renku.asked) == 200  # the latest are still kept


async def test_no_answer_is_a_note_and_asked_again_after_the_backoff() -> None:
    renku, clock = FakeRenku(), Clock()
    renku.image_error = RenkuUnavailableError("Renku is unavailable", status=503)
    check = make(renku, clock, renku_image_check="Error")
    current = work()

    assert await check.verify(current, spec(), IMAGE) == IMAGE
    assert "did not answer" in verified(current)[2]
    assert current.events == []
    clock.now += 16
    await check.verify(work(), spec(), IMAGE)
    assert len(renku.asked) == 2


async def test_a_reference_renku_refuses_is_a_finding() -> None:
    renku, clock = FakeRenku(), Clock()
    renku.image_error = RenkuValidationError(
        "Renku refused the request: The image url is malformed."
    )
    current = work()

    await make(renku, clock).verify(current, spec(), IMAGE)

    assert verified(current)[1] == "VerifiedWithWarnings"
    assert "malformed" in verified(current)[2]


async def test_an_amd64_image_against_an_arm64_pool_names_the_pool() -> None:
    renku, clock = FakeRenku(), Clock()
    renku.pools = [AMD, ARM]
    current = work(platforms=["linux/amd64"])

    assert await make(renku, clock).verify(current, spec(), IMAGE) == IMAGE

    status, reason, message = verified(current)
    assert (status, reason) == ("True", "VerifiedWithWarnings")
    assert "'arm64 pool' (linux/arm64)" in message
    assert [e.reason for e in current.events] == ["PoolPlatformMissing"]


async def test_an_image_no_pool_can_run_is_blocked() -> None:
    renku, clock = FakeRenku(), Clock()
    current = work(platforms=["linux/arm64"])

    assert await make(renku, clock).verify(current, spec(), IMAGE) is None
    assert verified(current)[:2] == ("False", "NoMatchingPlatform")


async def test_node_architectures_win_over_the_pools() -> None:
    renku, clock = FakeRenku(), Clock()
    renku.pools = [AMD, ARM]
    check = make(renku, clock, node_architectures=["amd64"])
    current = work(platforms=["linux/amd64"])

    async def nodes() -> set[str]:
        return {"amd64"}

    assert await check.verify(current, spec(), IMAGE) == IMAGE
    assert await check.node_architectures(nodes)() == {"amd64"}
    assert verified(current)[1] == "Verified"
    assert renku.pool_requests == 0


async def test_known_pools_take_the_platform_check_from_the_nodes() -> None:
    renku, clock = FakeRenku(), Clock()
    check = make(renku, clock)

    async def nodes() -> set[str]:
        return {"s390x"}

    assert await check.node_architectures(nodes)() == set()
    renku.pools = [ResourcePool(id=9, name="old pool", platform=None)]
    clock.now += 301
    assert await check.node_architectures(nodes)() == {"s390x"}


async def test_the_pools_are_one_request_per_interval_for_every_object() -> None:
    renku, clock = FakeRenku(), Clock()
    renku.pools = [AMD, ARM]
    check = make(renku, clock)

    await asyncio.gather(
        *(
            check.verify(work(uid=str(i), platforms=["linux/amd64"]), spec(), IMAGE)
            for i in range(5)
        )
    )
    assert renku.pool_requests == 1
    clock.now += 301
    await check.verify(work(platforms=["linux/amd64"]), spec(), IMAGE)
    assert renku.pool_requests == 2


async def test_a_failed_pools_request_keeps_the_pools_last_seen() -> None:
    renku, clock = FakeRenku(), Clock()
    renku.pools = [AMD, ARM]
    check = make(renku, clock)
    assert await check.pools.get() == [AMD, ARM]

    renku.pools_error = RenkuUnavailableError("Renku is unavailable", status=503)
    clock.now += 301
    assert await check.pools.get() == [AMD, ARM]
    await check.pools.get()
    assert renku.pool_requests == 2  # retried after the backoff, not at every call
    clock.now += 16
    await check.pools.get()
    assert renku.pool_requests == 3


@pytest.mark.parametrize("image", [None, IMAGE])
async def test_off_asks_nothing(image: str | None) -> None:
    renku, clock = FakeRenku(), Clock()
    renku.inaccessible.add(IMAGE)

    assert await make(renku, clock, renku_image_check="Off").verify(work(), spec(), image) == image
    assert renku.asked == []
