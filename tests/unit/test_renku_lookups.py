"""RenkuLookups: Renku's image check (anonymous) and resource pools (as the operator)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from renku_env_operator.clients.renku_auth import StaticToken, StaticTokenAuth
from renku_env_operator.clients.renku_errors import (
    RenkuError,
    RenkuNotFoundError,
    RenkuUnavailableError,
    RenkuValidationError,
)
from renku_env_operator.clients.renku_lookups import RenkuLookups
from renku_env_operator.domain.renku_checks import PullAnswer, ResourcePool
from tests.support.renku_double import IMAGES_PATH, POOLS_PATH, RenkuDouble

IMAGE = "registry.example.org/team/env:1.0.0"


@pytest.fixture
async def lookups(renku_double: RenkuDouble) -> AsyncIterator[RenkuLookups]:
    auth = StaticTokenAuth(StaticToken(token=SecretStr(renku_double.admin_token)))
    client = RenkuLookups(renku_double.url, auth, timeout=2.0)
    yield client
    await client.aclose()


def counted(endpoint: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "renku_env_operator_renku_lookups_total", {"endpoint": endpoint, "status": status}
    )
    return value or 0.0


async def test_the_image_check_is_anonymous_and_carries_the_reference(
    lookups: RenkuLookups, renku_double: RenkuDouble
) -> None:
    renku_double.set_inaccessible(IMAGE)
    before = counted("sessions_images", "200")

    answer = await lookups.check_image(IMAGE)

    assert answer == PullAnswer(accessible=False)
    [request] = renku_double.requests
    assert (request.path, request.query) == (IMAGES_PATH, {"image_url": IMAGE})
    assert request.authorized is False
    assert counted("sessions_images", "200") == before + 1


async def test_platforms_renku_saw_come_back_as_strings(
    lookups: RenkuLookups, renku_double: RenkuDouble
) -> None:
    renku_double.set_image_platforms(IMAGE, ["linux/amd64", "linux/arm/v7"])

    answer = await lookups.check_image(IMAGE)

    assert answer == PullAnswer(accessible=True, platforms=("linux/amd64", "linux/arm/v7"))


async def test_a_renku_without_the_image_check_is_not_found(
    lookups: RenkuLookups, renku_double: RenkuDouble
) -> None:
    renku_double.remove_image_check()

    with pytest.raises(RenkuNotFoundError):
        await lookups.check_image(IMAGE)


async def test_a_reference_renku_refuses_is_a_validation_error(
    lookups: RenkuLookups, renku_double: RenkuDouble
) -> None:
    with pytest.raises(RenkuValidationError, match="malformed"):
        await lookups.check_image("team/env: 1.0")


async def test_a_failure_is_unavailable_and_not_retried(
    lookups: RenkuLookups, renku_double: RenkuDouble
) -> None:
    renku_double.fail_next_lookup(IMAGES_PATH, 503)

    with pytest.raises(RenkuUnavailableError):
        await lookups.check_image(IMAGE)
    assert renku_double.count("GET", IMAGES_PATH) == 1


async def test_pools_are_listed_as_the_operator_with_their_platforms(
    lookups: RenkuLookups, renku_double: RenkuDouble
) -> None:
    renku_double.add_resource_pool("private arm64 pool", "linux/arm64", public=False)

    pools = await lookups.list_resource_pools()

    assert pools == [
        ResourcePool(id=1, name="Default pool", platform="linux/amd64"),
        ResourcePool(id=2, name="private arm64 pool", platform="linux/arm64"),
    ]
    [request] = renku_double.requests
    assert (request.path, request.user, request.query) == (POOLS_PATH, "admin1", {})


async def test_a_pools_failure_is_an_error(
    lookups: RenkuLookups, renku_double: RenkuDouble
) -> None:
    renku_double.fail_next_lookup(POOLS_PATH, 500)

    with pytest.raises(RenkuUnavailableError):
        await lookups.list_resource_pools()


async def test_a_body_beyond_the_bound_is_refused() -> None:
    big = b'{"accessible": true, "padding": "' + b"x" * 2048 + b'"}'
    client = RenkuLookups(
        "http://renku.test/api/data",
        None,
        transport=httpx.MockTransport(lambda _: httpx.Response(200, content=big)),
        max_body_bytes=1024,
    )

    with pytest.raises(RenkuError, match="larger than 1024 bytes"):
        await client.check_image(IMAGE)
    await client.aclose()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"<html>", "not JSON"), (b'{"ok": 1}', "no 'accessible' boolean")],
)
async def test_an_answer_that_is_not_renkus_is_an_error(content: bytes, message: str) -> None:
    client = RenkuLookups(
        "http://renku.test/api/data",
        None,
        transport=httpx.MockTransport(lambda _: httpx.Response(200, content=content)),
    )

    with pytest.raises(RenkuError, match=message):
        await client.check_image(IMAGE)
    await client.aclose()


async def test_one_deadline_bounds_a_call() -> None:
    async def hang(_: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # never answers
        return httpx.Response(200, json=[])

    client = RenkuLookups(
        "http://renku.test/api/data", None, transport=httpx.MockTransport(hang), timeout=0.2
    )

    with pytest.raises(RenkuUnavailableError, match="in time"):
        await asyncio.wait_for(client.list_resource_pools(), 5)
    await client.aclose()
