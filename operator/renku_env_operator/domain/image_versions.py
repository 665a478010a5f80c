"""Semver tags and update ranges: which newer image versions an admin may want.

Uses node-semver (npm's range grammar: `^2.10`, `~2.10.3`, `>=2.10 <3`; AND is a space).
Non-semver tags (`latest`, `3.12`) are filtered out before any comparison.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import nodesemver


class InvalidVersionRange(ValueError):
    """An update range is not an npm-style semver range; the message says what to fix."""


def is_semver_tag(tag: str) -> bool:
    """Whether a tag is a strict semantic version, optionally prefixed with v (v1.2.3)."""
    return nodesemver.valid(tag, False) is not None


def validate_version_range(allowed_range: str) -> str:
    """The normalised npm-style range, or InvalidVersionRange saying how to write one."""
    normalised = nodesemver.valid_range(allowed_range, False)
    if normalised is not None:
        return str(normalised)
    hint = " (conditions are ANDed with a space, not a comma)" if "," in allowed_range else ""
    raise InvalidVersionRange(
        f"{allowed_range!r} is not a valid npm-style semver range{hint}: write for example "
        "'^2.10', '~2.10.3' or '>=2.10 <3'"
    )


def newer_versions(
    current_tag: str, tags: Iterable[str], allowed_range: str | None = None
) -> list[str]:
    """Tags newer than `current_tag` within the range, highest first.

    Default range: the same major version. Only tags in the current tag's style count (`v1.2.3`
    vs `1.2.3`); prereleases only when the current tag is one. A current tag that is not semver
    has no "newer": the result is empty.
    """
    # A bad range is reported at once, not only once the image gets a semver tag.
    range_ = validate_version_range(allowed_range) if allowed_range is not None else None
    current = nodesemver.valid(current_tag, False)
    if current is None:
        return []
    prerelease = bool(current.prerelease)
    if range_ is None:  # same major; `-0` keeps the next major's prereleases out
        range_ = f">={current.version} <{current.major + 1}.0.0-0"
    prefix = _prefix(current_tag)
    newer = [
        tag
        for tag in set(tags)
        if _prefix(tag) == prefix
        and (version := nodesemver.valid(tag, False)) is not None
        and (prerelease or not version.prerelease)
        and nodesemver.gt(tag, current_tag, False)
        and nodesemver.satisfies(tag, range_, False, include_prerelease=prerelease)
    ]
    return sorted(newer, key=functools.cmp_to_key(_compare), reverse=True)


def _prefix(tag: str) -> str:
    return "v" if tag.startswith("v") else ""


def _compare(a: str, b: str) -> int:
    return int(nodesemver.compare(a, b, False))
