"""ImageVerifier against a fake registry and a fake clock: when it asks, what it reports."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest
from prometheus_client import REGISTRY

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.api.status import ImageStatus
from renku_env_operator.clients.registry_errors import (
    ImageNotFoundError,
    ImageNotPublicError,
    InvalidImageError,
    RegistryError,
    RegistryNotAllowedError,
    RegistryResponseTooLargeError,
    RegistryUnavailableError,
)
from renku_env_operator.config import Settings
from renku_env_operator.domain.images import ImageConfig, ImageFacts, ImageReference, Platform
from renku_env_operator.services.image_verify import ImageVerifier
from renku_env_operator.services.objects import Objects, ObjectState

IMAGE = "ghcr.io/acme/lab:1.2.3"
DIGEST = "sha256:" + "a" * 64
INTERVAL, BACKOFF = 60.0, 5.0
RENKU_CONFIG = ImageConfig(
    User="1000:1000", ExposedPorts={"8080/tcp": {}}, WorkingDir="/home/renku/work"
)


def spec(image: str = IMAGE, **policy: Any) -> GlobalEnvironmentSpec:
    raw: dict[str, Any] = {"image": image}
    if policy:
        raw["imagePolicy"] = policy
    return GlobalEnvironmentSpec.model_validate(raw)


def facts(*platforms: str, config: ImageConfig = RENKU_CONFIG) -> ImageFacts:
    parsed = [Platform(os=p.split("/")[0], architecture=p.split("/")[1]) for p in platforms]
    return ImageFacts(digest=DIGEST, platforms=parsed, config=config)


class FakeRegistry:
    """Answers (or raises) what the test set; records every question."""

    def __init__(self) -> None:
        self.facts: ImageFacts | RegistryError = facts("linux/amd64")
        self.tags: list[str] | RegistryError = ["1.2.3"]
        self.inspected: list[tuple[str, Collection[str] | None]] = []
        self.listed: list[str] = []

    async def inspect(
        self, ref: ImageReference, node_architectures: Collection[str] | None = None
    ) -> ImageFacts:
        self.inspected.append((str(ref), node_architectures))
        if isinstance(self.facts, RegistryError):
            raise self.facts
        return self.facts

    async def list_tags(self, ref: ImageReference) -> list[str]:
        self.listed.append(str(ref))
        if isinstance(self.tags, RegistryError):
            raise self.tags
        return self.tags


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verifier(
    registry: FakeRegistry,
    clock: Clock,
    archs: Collection[str] = frozenset({"amd64"}),
    **settings: Any,
) -> ImageVerifier:
    values = {
        "image_check_interval_seconds": INTERVAL,
        "retry_backoff_seconds": BACKOFF,
        **settings,
    }

    async def node_architectures() -> Collection[str]:
        return archs

    return ImageVerifier(Settings(**values), registry, node_architectures, clock=clock)


def reasons(status: ImageStatus) -> list[str]:
    return [f.reason for f in status.findings]


def updates_metric() -> float | None:
    return REGISTRY.get_sample_value("renku_env_operator_available_image_updates")


async def test_the_registry_is_asked_once_per_interval(
    registry: FakeRegistry, clock: Clock
) -> None:
    memo = ObjectState("uid")
    images = verifier(registry, clock)
    first = await images.verify(spec(), None, memo)
    clock.now += INTERVAL - 1
    assert await images.verify(spec(), first, memo) is first
    assert len(registry.inspected) == 1

    clock.now += 1
    again = await images.verify(spec(), first, memo)

    assert len(registry.inspected) == 2
    assert again is not first


async def test_a_new_image_or_an_unknown_object_is_asked_at_once(
    registry: FakeRegistry, clock: Clock
) -> None:
    memo = ObjectState("uid")
    images = verifier(registry, clock)
    first = await images.verify(spec(), None, memo)

    await images.verify(spec("ghcr.io/acme/lab:1.2.4"), first, memo)
    await images.verify(spec(), first, ObjectState("restarted-elsewhere"))  # no memory of this key

    assert [ref for ref, _ in registry.inspected] == [IMAGE, "ghcr.io/acme/lab:1.2.4", IMAGE]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RegistryUnavailableError("ghcr.io keeps answering 503"), "RegistryUnavailable"),
        (ImageNotFoundError("ghcr.io/acme/lab:1.2.3 not found"), "ImageNotFound"),
        (ImageNotPublicError("must be public"), "ImageNotPublic"),
        (InvalidImageError("manifest is malformed"), "ImageCheckFailed"),
        (RegistryNotAllowedError("169.254.169.254 is a link-local address"), "RegistryNotAllowed"),
        (RegistryResponseTooLargeError("more than 4194304 bytes"), "RegistryResponseTooLarge"),
    ],
)
async def test_a_failed_look_up_is_retried_after_the_backoff(
    registry: FakeRegistry, clock: Clock, error: RegistryError, reason: str
) -> None:
    memo = ObjectState("uid")
    registry.facts = error
    images = verifier(registry, clock)
    failed = await images.verify(spec(), None, memo)
    assert (reasons(failed), failed.digest) == ([reason], None)
    assert str(error) in failed.findings[0].message
    clock.now += BACKOFF - 0.5
    assert await images.verify(spec(), failed, memo) is failed

    registry.facts = facts("linux/amd64")
    clock.now += 0.5
    recovered = await images.verify(spec(), failed, memo)

    assert (recovered.digest, recovered.findings) == (DIGEST, [])
    assert len(registry.inspected) == 2


async def test_an_unavailable_registry_says_it_will_retry(
    registry: FakeRegistry, clock: Clock
) -> None:
    registry.facts = RegistryUnavailableError("cannot reach ghcr.io")
    failed = await verifier(registry, clock).verify(spec(), None, ObjectState("uid"))
    assert failed.findings[0].message == "cannot reach ghcr.io; will retry"
    assert failed.findings[0].severity == "Error"


async def test_an_unparsable_reference_is_reported_without_asking(
    registry: FakeRegistry, clock: Clock
) -> None:
    bad = spec().model_copy(update={"image": "ghcr.io/Acme/Lab:1"})
    status = await verifier(registry, clock).verify(bad, None, ObjectState("uid"))
    assert reasons(status) == ["InvalidImageReference"]
    assert registry.inspected == []


async def test_facts_are_reported_with_errors_first(registry: FakeRegistry, clock: Clock) -> None:
    registry.facts = facts("linux/arm64", "linux/s390x", config=ImageConfig(User="root"))
    status = await verifier(registry, clock).verify(
        spec("ghcr.io/acme/lab:latest"), None, ObjectState("uid")
    )

    assert (status.reference, status.digest) == ("ghcr.io/acme/lab:latest", DIGEST)
    assert status.platforms == ["linux/arm64", "linux/s390x"]
    assert status.working_dir is None
    assert reasons(status)[0] == "NoMatchingPlatform"
    assert set(reasons(status)) == {
        "NoMatchingPlatform",
        "LatestTag",
        "RunsAsRoot",
        "NoWorkingDirectory",
    }
    assert registry.inspected == [("ghcr.io/acme/lab:latest", {"amd64"})]
    assert registry.listed == []  # no semver tag, no updates to look for


async def test_unknown_node_architectures_skip_the_platform_check(
    registry: FakeRegistry, clock: Clock
) -> None:
    registry.facts = facts("linux/arm64")
    status = await verifier(registry, clock, archs=()).verify(spec(), None, ObjectState("uid"))
    assert "NoMatchingPlatform" not in reasons(status)
    assert registry.inspected == [(IMAGE, None)]


async def test_the_error_tag_policy_makes_latest_an_error(
    registry: FakeRegistry, clock: Clock
) -> None:
    status = await verifier(registry, clock, tag_policy="Error").verify(
        spec("ghcr.io/acme/lab:latest"), None, ObjectState("uid")
    )
    assert [(f.reason, f.severity) for f in status.findings] == [("LatestTag", "Error")]


async def test_updates_are_listed_highest_first_at_most_ten(
    registry: FakeRegistry, clock: Clock
) -> None:
    registry.tags = ["1.2.3", "2.0.0", "latest", *(f"1.{minor}.0" for minor in range(3, 15))]
    status = await verifier(registry, clock).verify(spec(), None, ObjectState("uid"))
    assert status.latest_version == "1.14.0"
    assert status.available_updates == [f"1.{minor}.0" for minor in range(14, 4, -1)]


async def test_the_update_range_widens_the_updates(registry: FakeRegistry, clock: Clock) -> None:
    registry.tags = ["1.2.3", "1.3.0", "2.0.0", "3.0.0"]
    status = await verifier(registry, clock).verify(
        spec(updateRange=">=1.2.3 <3"), None, ObjectState("uid")
    )
    assert status.available_updates == ["2.0.0", "1.3.0"]


@pytest.mark.parametrize(
    ("policy", "tags"),
    [
        ({"updateRange": ">=1, <2"}, ["1.3.0"]),  # a comma is not npm's AND
        ({}, RegistryUnavailableError("tags/list answered 503")),
    ],
    ids=["bad-range", "tag-listing-fails"],
)
async def test_update_reports_never_block_the_image(
    registry: FakeRegistry, clock: Clock, policy: dict[str, str], tags: Any
) -> None:
    registry.tags = tags
    status = await verifier(registry, clock).verify(spec(**policy), None, ObjectState("uid"))
    assert (status.digest, status.findings) == (DIGEST, [])
    assert (status.latest_version, status.available_updates) == (None, [])


async def test_the_metric_counts_objects_with_updates(registry: FakeRegistry, clock: Clock) -> None:
    registry.tags = ["1.2.3", "1.3.0"]
    images, objects = verifier(registry, clock), Objects()
    await images.verify(spec(), None, objects.get("a"))
    await images.verify(spec(), None, objects.get("b"))
    await images.verify(spec("ghcr.io/acme/lab:1.3.0"), None, objects.get("c"))  # the newest
    assert updates_metric() == 2

    objects.forget("a")
    assert updates_metric() == 1
    objects.forget("unknown")  # forgetting twice or an unknown object is harmless
    assert updates_metric() == 1


async def test_an_outage_after_a_good_check_keeps_the_facts_with_a_warning(
    registry: FakeRegistry, clock: Clock
) -> None:
    memo = ObjectState("uid")
    images = verifier(registry, clock)
    good = await images.verify(spec(), None, memo)
    registry.facts = RegistryUnavailableError("ghcr.io answers 503")
    clock.now += INTERVAL

    kept = await images.verify(spec(), good, memo)

    assert kept.digest == good.digest
    assert kept.platforms == good.platforms
    assert [(f.severity, f.reason) for f in kept.findings if f.check == "Registry"] == [
        ("Warning", "RegistryUnavailable")
    ]
    assert "keeping what it said" in kept.findings[-1].message
    clock.now += BACKOFF  # retried after the short backoff, not the full interval
    registry.facts = facts("linux/amd64")
    again = await images.verify(spec(), kept, memo)
    assert [f for f in again.findings if f.check == "Registry"] == []


async def test_a_refused_tag_listing_is_a_warning_naming_the_rule(
    registry: FakeRegistry, clock: Clock
) -> None:
    registry.tags = RegistryNotAllowedError("the next page (Link header) points to evil.example")
    checked = await verifier(registry, clock).verify(spec(), None, ObjectState("uid"))
    (finding,) = [f for f in checked.findings if f.check == "Updates"]
    assert (finding.severity, finding.reason) == ("Warning", "RegistryNotAllowed")
    assert "evil.example" in finding.message
    assert checked.digest == DIGEST  # the image itself was verified


async def test_the_digest_of_an_update_to_test_is_read_once_per_check(
    registry: FakeRegistry, clock: Clock
) -> None:
    candidate = "sha256:" + "c" * 64

    class TwoDigests(FakeRegistry):
        async def inspect(
            self, ref: ImageReference, node_architectures: Collection[str] | None = None
        ) -> ImageFacts:
            found = await super().inspect(ref, node_architectures)
            return found.model_copy(update={"digest": candidate}) if ref.tag == "1.3.0" else found

    registry = TwoDigests()
    registry.tags = ["1.2.3", "1.3.0"]
    status = await verifier(registry, clock).verify(
        spec(testUpdates=True), None, ObjectState("uid")
    )
    assert status.latest_version == "1.3.0"
    assert (status.digest, status.latest_digest) == (DIGEST, candidate)  # the update's own
    assert [ref for ref, _ in registry.inspected] == [IMAGE, "ghcr.io/acme/lab:1.3.0"]


async def test_without_update_tests_no_update_digest_is_read(
    registry: FakeRegistry, clock: Clock
) -> None:
    registry.tags = ["1.2.3", "1.3.0"]
    status = await verifier(registry, clock).verify(spec(), None, ObjectState("uid"))
    assert (status.latest_version, status.latest_digest) == ("1.3.0", None)
    assert [ref for ref, _ in registry.inspected] == [IMAGE]
