"""The status write's arithmetic: merge patches, progress and confirmations that are not news."""

from __future__ import annotations

from typing import Any

from renku_env_operator.domain.status_patch import merge_patch, progress_only, worth_writing


def running(message: str, **fields: Any) -> dict[str, Any]:
    smoke = {"result": "Running", "reason": "Created", "message": message, "podName": "p"}
    condition = {"type": "SmokeTested", "status": "Unknown", "reason": "Running"}
    return {"smokeTest": smoke | fields, "conditions": [condition | {"message": message}]}


def test_a_merge_patch_carries_only_what_changed_and_removes_what_is_gone() -> None:
    old = {"renkuId": "a", "image": {"digest": "d1", "stale": 1}, "createAttempt": {"x": 1}}
    new = {"renkuId": "a", "image": {"digest": "d2"}}

    assert merge_patch(old, new) == {
        "image": {"digest": "d2", "stale": None},
        "createAttempt": None,
    }
    assert merge_patch(new, new) == {}


def test_lists_are_replaced_whole() -> None:
    old = {"conditions": [{"type": "Ready", "status": "True"}]}
    new = {"conditions": [{"type": "Ready", "status": "False"}]}

    assert merge_patch(old, new) == new


def test_the_progress_of_a_running_test_is_only_progress() -> None:
    assert progress_only(running("pulling"), running("ready 3/5", reason="Ready", checks=[1]))
    assert not progress_only(running("pulling"), running("pulling"))  # no change at all
    assert not progress_only(running("pulling"), running("pulling", podName="other"))
    verdict = running("passed", result="Passed")
    assert not progress_only(running("pulling"), verdict)


def test_a_confirmation_alone_is_not_worth_a_write() -> None:
    old = {"renkuId": "a", "lastSyncTime": "2026-01-01T00:00:00Z"}

    assert not worth_writing(old, {**old, "lastSyncTime": "2026-01-01T00:05:00Z"})
    assert worth_writing(old, {**old, "renkuId": "b", "lastSyncTime": "2026-01-01T00:05:00Z"})
