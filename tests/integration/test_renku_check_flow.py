"""Renku's own checks through the real operator: images pushed to a real OCI registry, the
Renku double's image check and resource pools, GlobalEnvironment -> ImageVerified -> Renku."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.kube import GENV, Kube
from tests.support.kube_meta import Obj
from tests.support.oci_images import push_image
from tests.support.operator_fixtures import ENVS, NAMESPACE, condition, genv, has_condition
from tests.support.renku_double import IMAGES_PATH, POOLS_PATH, RenkuDouble

if TYPE_CHECKING:  # fixtures come from the conftest's plugins
    from tests.support.registry import RegistryServer

pytestmark = pytest.mark.registry

WAIT = 15.0  # generous upper bounds: every wait returns as soon as its state is reached
CONFIG: dict[str, Any] = {
    "User": "1000:1000",
    "ExposedPorts": {"8080/tcp": {}},
    "WorkingDir": "/home/renku/work",
}


@dataclass
class World:
    kube: Kube
    renku: RenkuDouble
    registry: RegistryServer
    repo: str
    start_operator: Any

    def push(self, tag: str, platforms: tuple[str, ...] = ("linux/amd64",)) -> str:
        return push_image(self.registry.url, self.repo, tag, platforms=platforms, config=CONFIG)

    def image(self, tag: str) -> str:
        return f"{self.registry.host}/{self.repo}:{tag}"

    async def start(self, **settings: Any) -> None:
        """The operator with registry checks on; no NODE_ARCHITECTURES unless given."""
        defaults = {
            "image_checks": True,
            "registry_insecure_hosts": [self.registry.host],
            # The tests' registry lives on loopback: allowed as an internal mirror.
            "registry_internal_allowlist": ["127.0.0.1"],
        }
        await self.start_operator(**{**defaults, **settings})

    async def create(self, name: str, image: str, **policy: Any) -> None:
        spec: dict[str, Any] = {"image": image, "smokeTest": {"enabled": False}}
        if policy:
            spec["imagePolicy"] = policy
        await self.kube.create({**genv(name), "spec": spec})

    async def wait(self, name: str, type_: str, status: str, reason: str | None = None) -> Obj:
        predicate = has_condition(type_, status, reason)
        return await self.kube.wait_for(GENV, NAMESPACE, name, predicate, timeout=WAIT)

    def image_checks(self) -> list[Any]:
        return [r for r in self.renku.requests if r.path == IMAGES_PATH]

    def warnings(self, name: str) -> list[str]:
        events = self.kube.events_for(name, NAMESPACE)
        return [str(e.get("reason")) for e in events if e.get("type") == "Warning"]


@pytest.fixture
def world(
    request: pytest.FixtureRequest,
    kube: Kube,
    renku_double: RenkuDouble,
    registry: RegistryServer,
    start_operator: Any,
) -> World:
    repo = "renku-check/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return World(kube, renku_double, registry, repo, start_operator)


def verified(obj: Obj) -> dict[str, Any]:
    found = condition(obj, "ImageVerified")
    assert found is not None
    return found


async def test_an_image_renku_cannot_pull_is_published_with_a_warning(world: World) -> None:
    world.push("1.0.0")
    image = world.image("1.0.0")
    world.renku.set_inaccessible(image)
    await world.start()
    await world.create("env", image)

    ready = await world.wait("env", "Ready", "True")

    found = verified(ready)
    assert (found["status"], found["reason"]) == ("True", "VerifiedWithWarnings")
    assert f"Renku's data service cannot pull {image}" in found["message"]
    event = await world.kube.wait_event("env", "RenkuCannotPull", namespace=NAMESPACE)
    assert "sessions will fail to start" in event["message"]
    assert world.renku.count("POST", ENVS) == 1
    [asked] = world.image_checks()
    assert (asked.query, asked.authorized) == ({"image_url": image}, False)


async def test_an_image_renku_cannot_pull_is_blocked_with_error(world: World) -> None:
    digest = world.push("1.0.0")
    image = world.image("1.0.0")
    # pinDigest: Renku would receive image@digest, so that is exactly what it is asked about.
    world.renku.set_inaccessible(f"{image}@{digest}")
    await world.start(renku_image_check="Error")
    await world.create("env", image, pinDigest=True)

    blocked = await world.wait("env", "ImageVerified", "False", "RenkuCannotPull")

    assert has_condition("Ready", "False", "RenkuCannotPull")(blocked)
    assert f"{image}@{digest}" in verified(blocked)["message"]
    await world.wait("env", "Synced", "False", "NotPublished")
    await world.kube.wait_event("env", "RenkuCannotPull", namespace=NAMESPACE)
    assert world.renku.count("POST", ENVS) == 0
    assert {r.query["image_url"] for r in world.image_checks()} == {f"{image}@{digest}"}
    assert not any(r.authorized for r in world.image_checks())


async def test_an_amd64_only_image_names_the_arm64_pool(world: World) -> None:
    world.push("1.0.0", platforms=("linux/amd64",))
    world.renku.add_resource_pool("GPU arm64 pool", "linux/arm64")
    await world.start()
    await world.create("env", world.image("1.0.0"))

    ready = await world.wait("env", "Ready", "True")

    found = verified(ready)
    assert found["reason"] == "VerifiedWithWarnings"
    assert "'GPU arm64 pool' (linux/arm64)" in found["message"]
    assert "Default pool" not in found["message"]
    event = await world.kube.wait_event("env", "PoolPlatformMissing", namespace=NAMESPACE)
    assert "GPU arm64 pool" in event["message"]
    [pools] = [r for r in world.renku.requests if r.path == POOLS_PATH]
    assert pools.user == "admin1"  # as the operator: an admin sees private pools too


async def test_an_image_no_pool_can_run_is_not_published(world: World) -> None:
    world.push("1.0.0", platforms=("linux/arm64",))
    await world.start()  # the double's only pool is the default amd64 one
    await world.create("env", world.image("1.0.0"))

    blocked = await world.wait("env", "ImageVerified", "False", "NoMatchingPlatform")

    assert "no resource pool of Renku can run it" in verified(blocked)["message"]
    assert world.renku.count("POST", ENVS) == 0


async def test_node_architectures_override_the_pools(world: World) -> None:
    world.push("1.0.0", platforms=("linux/amd64",))
    world.renku.add_resource_pool("arm64 pool", "linux/arm64")
    await world.start(node_architectures=["amd64"])
    await world.create("env", world.image("1.0.0"))

    ready = await world.wait("env", "Ready", "True")

    assert verified(ready)["reason"] == "Verified", verified(ready)["message"]
    assert world.renku.count("GET", POOLS_PATH) == 0


async def test_a_renku_without_the_image_check_is_handled_once_quietly(world: World) -> None:
    world.renku.remove_image_check()
    for tag in ("1.0.0", "1.1.0", "1.2.0"):
        world.push(tag)
    drift = 0.3  # frequent reconciles: none of them may ask again
    await world.start(drift_interval_seconds=drift)
    for index, tag in enumerate(("1.0.0", "1.1.0", "1.2.0")):
        await world.create(f"env{index}", world.image(tag))

    readies = [await world.wait(f"env{index}", "Ready", "True") for index in range(3)]
    lists = world.renku.count("GET", ENVS)
    await world.renku.wait_until_async(lambda d: d.count("GET", ENVS) >= lists + 3, timeout=WAIT)

    assert len(world.image_checks()) == 1  # remembered for every object
    for index, ready in enumerate(readies):
        found = verified(ready)
        assert found["reason"] == "Verified"
        assert "not available in this Renku" in found["message"]
        assert world.warnings(f"env{index}") == []
    assert world.renku.count("POST", ENVS) == 3


async def test_shared_requests_stay_one_per_interval_whatever_the_number_of_objects(
    world: World,
) -> None:
    drift = 1.0
    tags = [f"1.{minor}.0" for minor in range(5)]
    for tag in tags:
        world.push(tag)
    started = time.monotonic()
    await world.start(drift_interval_seconds=drift)
    for index, tag in enumerate(tags):
        await world.create(f"env{index}", world.image(tag))
    for index in range(5):
        await world.wait(f"env{index}", "Ready", "True")
    # Keep all five reconciling for several intervals.
    await world.renku.wait_until_async(lambda d: d.count("GET", POOLS_PATH) >= 3, timeout=WAIT)
    elapsed = time.monotonic() - started

    pools = world.renku.count("GET", POOLS_PATH)
    assert pools <= elapsed / drift + 1, (pools, elapsed)
    # One image check per reference, kept for the registry re-check interval (an hour).
    assert sorted(r.query["image_url"] for r in world.image_checks()) == [
        world.image(tag) for tag in tags
    ]


async def test_with_registry_checks_off_renku_is_still_asked(world: World) -> None:
    image = "ghcr.io/example/env:1.0.0"  # never pulled by the operator: checks are off
    world.renku.set_inaccessible(image)
    await world.start(image_checks=False, renku_image_check="Error")
    await world.create("env", image)

    blocked = await world.wait("env", "ImageVerified", "False", "RenkuCannotPull")

    assert "registry checks are off (IMAGE_CHECKS)" in verified(blocked)["message"]
    assert world.renku.count("POST", ENVS) == 0
