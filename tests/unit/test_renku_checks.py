"""Renku's answers and pools judged against our facts: the pure functions."""

from __future__ import annotations

import pytest

from renku_env_operator.domain import conditions as cond
from renku_env_operator.domain.images import Finding
from renku_env_operator.domain.renku_checks import (
    REASONS,
    PullAnswer,
    ResourcePool,
    amend_verdict,
    check_pool_platforms,
    check_pull,
    published_reference,
)

REF = "registry.example.org/team/env:1.0.0"
AMD = ResourcePool(id=1, name="Default pool", platform="linux/amd64")
ARM = ResourcePool(id=2, name="arm64 pool", platform="linux/arm64")
UNKNOWN = ResourcePool(id=3, name="old pool", platform=None)


def test_the_published_reference_is_pinned_only_with_pin_digest() -> None:
    pinned = f"{REF}@sha256:{'a' * 64}"
    assert published_reference(REF, pinned, pin_digest=True) == pinned
    assert published_reference(REF, pinned, pin_digest=False) == REF


def test_an_inaccessible_image_is_a_warning_or_with_error_an_error() -> None:
    answer = PullAnswer(accessible=False)

    warning = check_pull(REF, answer, "Warn")
    error = check_pull(REF, answer, "Error")

    assert warning is not None
    assert error is not None
    assert (warning.severity, error.severity) == ("Warning", "Error")
    assert warning.reason == "RenkuCannotPull"
    assert REF in warning.message
    assert "Renku's data service cannot pull" in warning.message
    assert "although the operator's registry check found it" in warning.message
    assert "sessions will fail" in warning.message


@pytest.mark.parametrize(
    "answer",
    [PullAnswer(accessible=True), PullAnswer(accessible=None, note="no check here")],
    ids=["accessible", "no answer"],
)
def test_an_accessible_image_or_no_answer_is_no_finding(answer: PullAnswer) -> None:
    assert check_pull(REF, answer, "Error") is None


def test_off_never_finds_anything() -> None:
    assert check_pull(REF, PullAnswer(accessible=False), "Off") is None
    assert check_pool_platforms(["linux/amd64"], [ARM], "Off") is None


def test_without_our_registry_check_the_message_does_not_claim_it() -> None:
    finding = check_pull(REF, PullAnswer(accessible=False), "Warn", registry_checked=False)

    assert finding is not None
    assert "registry check found it" not in finding.message
    assert "registry checks are off (IMAGE_CHECKS)" in finding.message


def test_a_reference_renku_refuses_quotes_renku() -> None:
    answer = PullAnswer(accessible=False, refused="The image url is malformed.")

    finding = check_pull(REF, answer, "Warn")

    assert finding is not None
    assert "The image url is malformed." in finding.message


def test_an_amd64_only_image_names_the_arm64_pool() -> None:
    finding = check_pool_platforms(["linux/amd64"], [AMD, ARM], "Warn")

    assert finding is not None
    assert (finding.severity, finding.reason) == ("Warning", "PoolPlatformMissing")
    assert "'arm64 pool' (linux/arm64)" in finding.message
    assert "Default pool" not in finding.message
    assert "--platform linux/amd64,linux/arm64" in finding.message
    assert "NODE_ARCHITECTURES" in finding.message


def test_a_missing_pool_platform_blocks_with_error() -> None:
    finding = check_pool_platforms(["linux/amd64"], [AMD, ARM], "Error")
    assert finding is not None
    assert finding.severity == "Error"


def test_no_pool_at_all_is_no_matching_platform_whatever_the_mode() -> None:
    finding = check_pool_platforms(["linux/arm64"], [AMD], "Warn")

    assert finding is not None
    assert (finding.severity, finding.reason) == ("Error", "NoMatchingPlatform")
    assert "no resource pool of Renku can run it" in finding.message
    assert "'Default pool' (linux/amd64)" in finding.message


def test_a_variant_counts_for_its_architecture_and_unknown_pools_are_left_out() -> None:
    assert (
        check_pool_platforms(["linux/arm64/v8", "linux/amd64"], [AMD, ARM, UNKNOWN], "Error")
        is None
    )


@pytest.mark.parametrize(
    ("platforms", "pools"), [([], [ARM]), (["linux/amd64"], []), (["linux/amd64"], [UNKNOWN])]
)
def test_unknown_platforms_are_not_a_finding(
    platforms: list[str], pools: list[ResourcePool]
) -> None:
    assert check_pool_platforms(platforms, pools, "Error") is None


def make_finding(severity: str, reason: str, message: str) -> Finding:
    return Finding.model_validate(
        {"check": "RenkuPull", "severity": severity, "reason": reason, "message": message}
    )


def test_a_warning_turns_verified_into_verified_with_warnings() -> None:
    status, reason, message = amend_verdict(
        "True", "Verified", "x is public.", [make_finding("Warning", "RenkuCannotPull", "no pull")]
    )
    assert (status, reason, message) == (
        "True",
        "VerifiedWithWarnings",
        "x is public. RenkuPull: no pull",
    )


def test_an_error_makes_image_verified_false_with_its_reason() -> None:
    status, reason, message = amend_verdict(
        "True",
        "VerifiedWithWarnings",
        "USER: root",
        [
            make_finding("Warning", "PoolPlatformMissing", "pools"),
            make_finding("Error", "RenkuCannotPull", "no pull"),
        ],
    )
    assert (status, reason) == ("False", "RenkuCannotPull")
    assert message == "RenkuPull: no pull RenkuPull: pools"


def test_a_note_is_said_in_the_message_and_changes_nothing_else() -> None:
    assert amend_verdict("True", "Verified", "x is public.", [], ["no check here."]) == (
        "True",
        "Verified",
        "x is public. no check here.",
    )


def test_the_blocking_reasons_are_in_the_catalogue() -> None:
    assert REASONS <= cond.NEEDS_HUMAN
