"""Newer semver tags: default same-major range, npm ranges, tag prefix style, prereleases."""

from __future__ import annotations

import pytest

from renku_env_operator.domain.images import (
    InvalidVersionRange,
    is_semver_tag,
    newer_versions,
    validate_version_range,
)

# What a real repository's tag list looks like: versions, moving tags, variants, junk.
TAGS = [
    "latest",
    "main",
    "sha-1a2b3c4",
    "2.9.0",
    "2.10.0",
    "2.10.3",
    "2.10.4",
    "2.11.0",
    "2.11.0-rc.1",
    "2.12.0-rc.2",
    "2.12",
    "3.0.0",
    "3.1.0",
    "v2.10.5",
    "v2.13.0",
    "1.9.9",
]


@pytest.mark.parametrize(
    ("current", "allowed", "expected"),
    [
        ("2.10.3", None, ["2.11.0", "2.10.4"]),
        ("2.10.3", "~2.10.3", ["2.10.4"]),
        ("2.10.3", "^2.10", ["2.11.0", "2.10.4"]),
        ("2.10.3", ">=2.10 <4", ["3.1.0", "3.0.0", "2.11.0", "2.10.4"]),
        ("2.10.3", "2.x || 3.0.x", ["3.0.0", "2.11.0", "2.10.4"]),
        ("2.10.3", "<2.10.3", []),
        ("3.1.0", None, []),
        # The v style only compares with v tags.
        ("v2.10.3", None, ["v2.13.0", "v2.10.5"]),
        ("v2.10.3", "~2.10", ["v2.10.5"]),
        # A prerelease current tag lets newer prereleases in, next major's excluded.
        ("2.11.0-rc.1", None, ["2.12.0-rc.2", "2.11.0"]),
        # Not semver: nothing is "newer".
        ("latest", None, []),
        ("2.12", None, []),
        ("main", "^2", []),
    ],
)
def test_newer_versions(current: str, allowed: str | None, expected: list[str]) -> None:
    assert newer_versions(current, TAGS, allowed) == expected


def test_zero_major_default_range_stays_in_major_zero() -> None:
    assert newer_versions("0.2.3", ["0.2.4", "0.3.0", "1.0.0"]) == ["0.3.0", "0.2.4"]


def test_sorted_highest_first_not_lexically() -> None:
    tags = ["1.2.10", "1.2.9", "1.10.0", "1.9.0"]
    assert newer_versions("1.2.3", tags) == ["1.10.0", "1.9.0", "1.2.10", "1.2.9"]


def test_duplicates_collapse() -> None:
    assert newer_versions("1.0.0", ["1.0.1", "1.0.1"]) == ["1.0.1"]


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        (">=2.10,<3", "not a comma"),
        ("garbage", "'^2.10'"),
        (">=1 <", "'>=2.10 <3'"),
    ],
)
def test_invalid_range_says_how_to_write_one(text: str, hint: str) -> None:
    with pytest.raises(InvalidVersionRange) as error:
        newer_versions("2.10.3", TAGS, text)
    assert hint in str(error.value)
    assert text in str(error.value)


def test_invalid_range_is_reported_even_for_non_semver_current_tags() -> None:
    # Otherwise a bad range would stay hidden until the image gets a semver tag.
    with pytest.raises(InvalidVersionRange):
        newer_versions("latest", TAGS, ">=2,<3")


def test_validate_version_range_normalises() -> None:
    assert validate_version_range("^2.10") == ">=2.10.0 <3.0.0"
    assert validate_version_range("~2.10.3") == ">=2.10.3 <2.11.0"


@pytest.mark.parametrize(
    ("tag", "semver"),
    [
        ("1.2.3", True),
        ("v1.2.3", True),
        ("1.2.3-rc.1", True),
        ("1.2.3+build.5", True),
        ("1.2", False),
        ("latest", False),
        ("V1.2.3", False),
        ("01.2.3", False),
    ],
)
def test_is_semver_tag(tag: str, semver: bool) -> None:
    assert is_semver_tag(tag) is semver
