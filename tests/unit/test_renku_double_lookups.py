"""The Renku double's image check and resource pools follow CONTRACT.md and their excerpts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.renku_double import (
    IMAGES_PATH,
    IMAGES_SPEC_PATH,
    POOLS_PATH,
    POOLS_SPEC_PATH,
    SHARED_SPEC_PATH,
    RenkuDouble,
)

IMAGE = "registry.example.org/team/env:1.0.0"


@pytest.fixture
def api(renku_double: RenkuDouble) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=renku_double.url, timeout=5) as client:
        yield client


def admin(double: RenkuDouble) -> dict[str, str]:
    return {"Authorization": f"Bearer {double.admin_token}"}


def test_an_image_is_accessible_unless_the_test_says_otherwise(
    api: httpx.Client, renku_double: RenkuDouble
) -> None:
    renku_double.set_inaccessible(f"{IMAGE}-private")

    yes = api.get("/sessions/images", params={"image_url": IMAGE})
    no = api.get("/sessions/images", params={"image_url": f"{IMAGE}-private"})

    assert (yes.status_code, yes.json()) == (200, {"accessible": True})
    assert (no.status_code, no.json()) == (200, {"accessible": False})
    assert [r.authorized for r in renku_double.requests] == [False, False]


def test_platforms_are_reported_where_the_test_sets_them(
    api: httpx.Client, renku_double: RenkuDouble
) -> None:
    renku_double.set_image_platforms(IMAGE, ["linux/amd64", "linux/arm/v7"])

    body = api.get("/sessions/images", params={"image_url": IMAGE}).json()

    assert body["platforms"] == [
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "arm", "variant": "v7"},
    ]


def test_a_missing_or_malformed_reference_is_a_422_and_a_request_violation(
    api: httpx.Client, renku_double: RenkuDouble
) -> None:
    renku_double.allow_invalid_requests()

    missing = api.get("/sessions/images")
    malformed = api.get("/sessions/images", params={"image_url": "a b"})

    assert (missing.status_code, malformed.status_code) == (422, 422)
    assert missing.json()["error"]["code"] == 1422
    # Only the missing parameter breaks the spec; a malformed value is Renku's own verdict.
    assert [(v.kind, v.path) for v in renku_double.violations] == [("request", IMAGES_PATH)]


def test_an_older_renku_has_no_image_check(api: httpx.Client, renku_double: RenkuDouble) -> None:
    renku_double.remove_image_check()

    answer = api.get("/sessions/images", params={"image_url": IMAGE})

    assert answer.status_code == 404
    assert "Requested URL" in answer.json()["error"]["message"]
    assert renku_double.violations == []


def test_anyone_lists_the_public_pools_and_an_admin_all(
    api: httpx.Client, renku_double: RenkuDouble
) -> None:
    renku_double.add_resource_pool("arm64 pool", "linux/arm64")
    renku_double.add_resource_pool("private pool", "linux/amd64", public=False)

    anonymous = api.get("/resource_pools").json()
    everything = api.get("/resource_pools", headers=admin(renku_double)).json()

    assert [p["name"] for p in anonymous] == ["Default pool", "arm64 pool"]
    assert [(p["name"], p["platform"]) for p in everything] == [
        ("Default pool", "linux/amd64"),
        ("arm64 pool", "linux/arm64"),
        ("private pool", "linux/amd64"),
    ]
    assert [r.user for r in renku_double.requests] == [None, "admin1"]


def test_unknown_pool_filters_are_refused(api: httpx.Client, renku_double: RenkuDouble) -> None:
    renku_double.allow_invalid_requests()

    refused = api.get("/resource_pools", params={"colour": "red"})

    assert refused.status_code == 422
    assert "colour: Extra inputs are not permitted" in refused.json()["error"]["message"]


def test_injected_lookup_failures_answer_in_renkus_error_shape(
    api: httpx.Client, renku_double: RenkuDouble
) -> None:
    renku_double.fail_next_lookup(POOLS_PATH, 503)
    renku_double.fail_next_lookup(IMAGES_PATH, 500)

    pools = api.get("/resource_pools")
    image = api.get("/sessions/images", params={"image_url": IMAGE})
    again = api.get("/resource_pools")

    assert (pools.status_code, image.status_code, again.status_code) == (503, 500, 200)
    assert pools.json()["error"]["code"] == 1503


@pytest.mark.parametrize("vendored", [IMAGES_SPEC_PATH, POOLS_SPEC_PATH], ids=lambda p: p.name)
def test_the_vendored_excerpts_are_the_shared_ones(vendored: Path) -> None:
    shared = SHARED_SPEC_PATH.with_name(vendored.name)
    if not shared.exists():
        pytest.skip(f"no shared excerpt at {shared}")
    assert vendored.read_bytes() == shared.read_bytes(), (
        "copy shared/renku's excerpt into tests/data/renku"
    )
