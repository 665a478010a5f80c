"""Image references, registry facts, checks and updates: the one import for other layers.

The code lives in image_reference (parsing), image_checks (facts and checks) and
image_versions (semver updates); this module gathers their public names.
"""

from __future__ import annotations

from .image_checks import (
    Finding,
    ImageConfig,
    ImageFacts,
    Platform,
    Severity,
    TagPolicy,
    check_config,
    check_platforms,
    check_tag_policy,
)
from .image_reference import (
    DOCKER_HUB,
    DOCKER_HUB_API_HOST,
    ImageReference,
    InvalidImageReference,
    image_reference_problem,
    parse_image_reference,
)
from .image_versions import (
    InvalidVersionRange,
    is_semver_tag,
    newer_versions,
    validate_version_range,
)

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API_HOST",
    "Finding",
    "ImageConfig",
    "ImageFacts",
    "ImageReference",
    "InvalidImageReference",
    "InvalidVersionRange",
    "Platform",
    "Severity",
    "TagPolicy",
    "check_config",
    "check_platforms",
    "check_tag_policy",
    "image_reference_problem",
    "is_semver_tag",
    "newer_versions",
    "parse_image_reference",
    "validate_version_range",
]
